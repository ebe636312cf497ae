"""The effectiveness report's chart (``nbo report --png``), in the house style of
``services.evaluation_chart``: matplotlib's Agg backend, one PNG.

Presentation and file output, so it lives with the command, not in the pure
``recommender.effectiveness`` that computes the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recommender.effectiveness import EffectivenessReport


def write_report_chart(report: EffectivenessReport, path: Path, top: int = 15) -> bool:
    """Write the chart of ``report`` to ``path`` (PNG, 1320 x 990 px): the conversion rate per
    product in treatment and control with 95 % intervals, the lift per product with its interval,
    the top decline reasons per product and the revenue proxy. The ``top`` products with the most
    shows. False when matplotlib is not installed (nothing is written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = list(report.by["product"][:top])[::-1]  # the most shows at the top
    names = [g.key for g in groups]
    ys = np.arange(len(groups))
    fig, ((ax_rate, ax_lift), (ax_declines, ax_revenue)) = plt.subplots(2, 2, figsize=(12, 9))
    lift = report.overall.lift
    fig.suptitle(f"Offer effectiveness, offers shown {report.day_from} to {report.day_to}\n"
                 f"conversion rate lift, treatment vs control: {lift.text}", fontsize=11)

    for offset, arm, colour in ((0.2, "treatment", "#12355b"), (-0.2, "control", "#9aa6b6")):
        rates, low, high = [], [], []
        for g in groups:
            counts = g.arms.get(arm)
            interval = counts.to_dict()["conversion_interval"] if counts is not None else None
            rate = counts.conversion_rate if counts is not None else None
            rates.append(rate or 0.0)
            low.append((rate or 0.0) - interval[0] if interval else 0.0)
            high.append(interval[1] - (rate or 0.0) if interval else 0.0)
        ax_rate.barh(ys + offset, rates, 0.38, xerr=[low, high], color=colour, label=arm, capsize=2)
    ax_rate.set_yticks(ys, names, fontsize=8)
    ax_rate.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax_rate.set_title("Conversion rate per show (95 % Wilson intervals)", fontsize=10)
    ax_rate.legend(fontsize=8)

    for y, g in zip(ys, groups):
        value = g.lift
        if value.lift is None:
            continue
        colour = ("#1f7a4d" if value.lift > 0 else "#b42318") if value.significant else "#7a5400"
        if value.low is not None:
            ax_lift.plot([value.low, value.high], [y, y], color=colour, linewidth=1.5)
        ax_lift.plot([value.lift], [y], "o", color=colour, markerfacecolor=colour if value.significant else "white")
    ax_lift.axvline(0, color="#b42318", linestyle="--", linewidth=1)
    ax_lift.set_yticks(ys, names, fontsize=8)
    ax_lift.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax_lift.set_title("Lift vs control (filled: significant at 95 %)", fontsize=10)

    reasons = sorted({r for g in groups for r, _ in g.total.top_declines()})
    left = np.zeros(len(groups))
    for reason in reasons:
        counts = np.array([g.total.declined.get(reason, 0) if reason in dict(g.total.top_declines()) else 0
                           for g in groups], dtype=float)
        ax_declines.barh(ys, counts, 0.6, left=left, label=reason.replace("_", " "))
        left += counts
    ax_declines.set_yticks(ys, names, fontsize=8)
    ax_declines.set_title("Top decline reasons per product (declines)", fontsize=10)
    if reasons:
        ax_declines.legend(fontsize=7, loc="lower right")

    scale = 10 ** report.minor_unit_exponent
    ax_revenue.barh(ys, [g.total.revenue_minor / scale for g in groups], 0.6, color="#1f7a4d")
    ax_revenue.set_yticks(ys, names, fontsize=8)
    ax_revenue.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax_revenue.set_title(f"Revenue proxy: conversions x annual value ({report.currency})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
