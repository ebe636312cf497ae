"""``nbo report``: how well the offers work, treatment against control, from the loop's live
counters in Redis (``NBO_REDIS__URL``, read through ``LoopStatsReader``).

    nbo report                                   # the last 30 UTC days, a table on stdout
    nbo report --from 2026-05-01 --to 2026-05-31 --png may.png
    nbo report --json                            # the report as one JSON object (the API's shape)

The days are those the offers were shown on (a later answer or purchase counts for the day of
its showing). The maths is ``recommender.effectiveness``'s (docs/LOOP.md, "Reading the results").
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bootstrap import catalog, load_settings
from bootstrap.root import loop_stats
from bootstrap.settings import CATALOG_OPTION_HELP
from domain.catalog import CatalogError
from recommender.effectiveness import MAX_REPORT_DAYS, EffectivenessReport, Group, Lift, effectiveness, range_problem
from schemas.currencies import minor_unit_exponent

DEFAULT_DAYS = 30


def _day(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: write it as YYYY-MM-DD (a UTC day)") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="day_from", type=_day, default=None, metavar="YYYY-MM-DD",
                        help="first UTC day of showing (default: 29 days before --to)")
    parser.add_argument("--to", dest="day_to", type=_day, default=None, metavar="YYYY-MM-DD",
                        help=f"last UTC day of showing (default: today); at most {MAX_REPORT_DAYS} days in all")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object instead of tables")
    parser.add_argument("--png", type=Path, default=None, metavar="FILE",
                        help="also write a chart of the report to FILE (PNG)")
    parser.add_argument("--top", type=int, default=15, help="products in the table and the chart, most shows first")
    parser.add_argument("--catalog", type=Path, default=None, help=CATALOG_OPTION_HELP)


def run(args: argparse.Namespace) -> int:
    day_to = args.day_to or datetime.now(timezone.utc).date()
    day_from = args.day_from or day_to - timedelta(days=DEFAULT_DAYS - 1)
    problem = range_problem(day_from, day_to)
    if problem is not None:
        print(f"nbo report: {problem.replace('to (', '--to (').replace('from (', '--from (')}", file=sys.stderr)
        return 2
    settings = load_settings()
    try:
        served = catalog(settings, args.catalog)
    except CatalogError as exc:
        print(f"nbo report: {exc}", file=sys.stderr)
        return 2
    reader = loop_stats(settings)
    try:
        rows = reader.counts(day_from, day_to)
    except Exception as exc:  # Redis down, refusing the credentials, a cluster in trouble: say which
        print(f"nbo report: the loop counters could not be read from {settings.redis.url} "
              f"({type(exc).__name__}: {exc}); check NBO_REDIS__URL and that Redis runs", file=sys.stderr)
        return 1
    finally:
        reader.close()
    currency = settings.money.base_currency
    report = effectiveness(rows, served, day_from, day_to, currency, minor_unit_exponent(currency))
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(render(report, args.top))
    if args.png is not None:
        from services.report_chart import write_report_chart

        if not write_report_chart(report, args.png, args.top):
            print("nbo report: matplotlib is not installed; no chart written", file=sys.stderr)
            return 1
        print(f"chart written to {args.png}", file=sys.stderr)
    return 0


def pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}"


def money(report: EffectivenessReport, minor: int) -> str:
    return f"{report.currency} {minor / 10 ** report.minor_unit_exponent:,.0f}"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def short_verdict(lift: Lift) -> str:
    """The verdict for a table cell: the interval has a column of its own."""
    if lift.significant:
        return "significant"
    return lift.text.replace("not yet: need ~", "not yet: ~")


def _lift_cells(group: Group) -> list[str]:
    lift = group.lift
    interval = "" if lift.low is None else f" [{signed(lift.low)}, {signed(lift.high)}]"
    return [pct(lift.treatment_rate), pct(lift.control_rate), signed(lift.lift) + interval]


def render(report: EffectivenessReport, top: int = 15) -> str:
    """The report as plain-text tables: the headline, then by product, channel, segment, model."""
    total, lift = report.overall.total, report.overall.lift
    out = [f"Offer effectiveness, offers shown {report.day_from} to {report.day_to} (UTC)", ""]
    if not total.shows:
        return "\n".join(out + ["No offer was shown in these days."])
    t, c = report.overall.treatment, report.overall.control
    out += [
        f"shows {total.shows:,} (treatment {t.shows:,}, control {c.shows:,}); accepted {total.accepted:,} "
        f"({pct(total.acceptance_rate)}); declined {total.declines:,}; ignored {total.ignored:,}",
        f"conversions {total.conversions:,} ({pct(total.conversion_rate)} of shows; "
        f"{total.conversions_accepted:,} accepted at the touchpoint); revenue proxy {money(report, total.revenue_minor)}",
        f"conversion rate: treatment {pct(lift.treatment_rate)}, control {pct(lift.control_rate)}; "
        f"lift {signed(lift.lift)}" + ("" if lift.low is None else f" (95 % interval {signed(lift.low)} to {signed(lift.high)})"),
        f"verdict: {lift.text}",
        f"acceptance rate lift: {signed(report.overall.acceptance_lift.lift)}; {report.overall.acceptance_lift.text}",
        "", "By product",
    ]
    rows = []
    for g in report.by["product"][:top]:
        declines = ", ".join(f"{r} {n}" for r, n in g.total.top_declines()) or "-"
        rows.append([g.key, f"{g.treatment.shows:,}", f"{g.control.shows:,}", pct(g.total.acceptance_rate),
                     *_lift_cells(g), short_verdict(g.lift), declines, money(report, g.total.revenue_minor)])
    out += _table(["product", "shows T", "shows C", "accept", "conv T", "conv C", "lift [95 %]", "verdict",
                   "top declines", "revenue proxy"], rows, {1, 2, 3, 4, 5, 9})
    if len(report.by["product"]) > top:
        out.append(f"... {len(report.by['product']) - top} more products (--top, or --json for all)")
    for dimension, title in (("channel", "By channel"), ("segment", "By segment (value x satisfaction)"),
                             ("model_version", "By model version")):
        rows = [[g.key, f"{g.total.shows:,}", f"{g.total.conversions:,}", *_lift_cells(g), short_verdict(g.lift)]
                for g in report.by[dimension]]
        out += ["", title, *_table([dimension, "shows", "conversions", "conv T", "conv C", "lift [95 %]", "verdict"],
                                   rows, {1, 2, 3, 4})]
    if report.unpriced:
        out += ["", "not in the catalog (revenue proxy 0): " + ", ".join(report.unpriced)]
    return "\n".join(out)
