"""The offline evaluation's chart: a grouped bar chart of every metric per ranker, as a PNG.

Presentation and file output, so it lives with the ``nbo evaluate`` command, not in the pure
``recommender.evaluation`` that computes the report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.evaluation import METRICS, EvalReport

if TYPE_CHECKING:
    from recommender.backtest import BacktestReport


def write_chart(report: EvalReport, path: Path) -> bool:
    """Write the chart of ``report.rows`` to ``path`` (PNG, 1100 x 495 px; 1100 x 880 px with a
    second panel of NDCG@k for recent purchasers and the others when ``report.recency`` is set).
    False when matplotlib is not installed (nothing is written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(report.rows)
    channel = report.info.get("channel")
    groups = [g for g in report.recency if channel in report.recency[g]]
    if groups:
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 8), gridspec_kw={"height_ratios": [1.1, 0.9]})
    else:
        fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(names)
    xs = np.arange(len(METRICS))
    for i, name in enumerate(names):
        values = [report.rows[name][m] for m in METRICS]
        ax.bar(xs + i * width, values, width, label=name)
    ax.set_xticks(xs + width * (len(names) - 1) / 2)
    ax.set_xticklabels([f"{m}@{report.k}" if m != "coverage" else m for m in METRICS])
    ax.set_ylim(0, 1)
    ax.set_title(f"Offline evaluation ({report.info.get('mode', '')}, {report.info.get('customers', '')} customers)")
    ax.legend(fontsize=8, ncol=3)
    if groups:
        gx = np.arange(len(groups))
        for i, name in enumerate(names):
            ax2.bar(gx + i * width, [report.recency[g][channel][name]["ndcg"] for g in groups], width, label=name)
        ax2.set_xticks(gx + width * (len(names) - 1) / 2)
        ax2.set_xticklabels([f"{g.replace('_', ' ')} ({report.recency[g][channel][names[0]]['customers']:,})"
                             for g in groups])
        ax2.set_ylim(0, 1)
        ax2.set_ylabel(f"ndcg@{report.k}")
        ax2.set_title(f"By purchase recency ({channel}): a purchase in the 30 days before the cutoff, or not")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_backtest_chart(report: "BacktestReport", path: Path) -> bool:
    """Write the chart of a backtest (``nbo backtest``) to ``path``: hit rate at 1 and 3, NDCG@3
    and coverage per ranker, grouped by metric (PNG, 1100 x 495 px). False when matplotlib is not
    installed (nothing is written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from recommender.backtest import METRICS as BACKTEST_METRICS

    names = list(report.rows)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(names)
    xs = np.arange(len(BACKTEST_METRICS))
    for i, name in enumerate(names):
        values = [report.rows[name][m] for m in BACKTEST_METRICS]
        bars = ax.bar(xs + i * width, values, width, label=name)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(xs + width * (len(names) - 1) / 2)
    ax.set_xticklabels([m.replace("_at_", "@").replace("_", " ") for m in BACKTEST_METRICS])
    ax.set_ylim(0, 1.05)
    info = report.info
    ax.set_title(f"Backtest as of {info['as_of'][:10]}, {info['horizon_days']:g}-day horizon, {info['channel']} "
                 f"({info['counted_customers']:,} customers who bought)")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
