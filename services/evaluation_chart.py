"""The offline evaluation's chart: a grouped bar chart of every metric per ranker, as a PNG.

Presentation and file output, so it lives with the ``nbo evaluate`` command, not in the pure
``recommender.evaluation`` that computes the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recommender.evaluation import METRICS, EvalReport


def write_chart(report: EvalReport, path: Path) -> bool:
    """Write the chart of ``report.rows`` to ``path`` (PNG, 1100 x 495 px). False when matplotlib
    is not installed (nothing is written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(report.rows)
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
