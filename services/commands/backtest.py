"""``nbo backtest``: what the engine would have offered at a past date, against what customers
then bought, next to popularity and segment popularity.

    nbo backtest --events log.jsonl --as-of 2024-06-30 --horizon 30d
    nbo backtest --events log.jsonl --as-of 2024-06-30 --horizon 30d --channel mobile --json
    nbo backtest --history store/ --as-of 2024-06-30 --horizon 30d    # a training store (nbo import)

It trains on what was known before the as-of date (events strictly before it; label windows
ending by it, chosen as ``nbo train`` chooses them: ``--window-days`` / ``--windows`` win), ranks
every customer as of that date with the decisioning chain (the catalog in use, the levers file
``NBO_API__LEVERS_FILE`` or ``--levers``: the real offers, not raw scores) and scores the
purchases of the ``--horizon`` after it: hit rate at 1 and 3, NDCG@3, and how many distinct
products were offered (``recommender.backtest``). The as-of date is the decision time
throughout, never the clock, so years-old history works. Prints a table; writes the report JSON
and a PNG chart; with ``--json`` the last line of stdout is the report.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

from bootstrap import build_trainer, load_settings  # noqa: E402
from bootstrap.settings import CATALOG_OPTION_HELP as CATALOG_HELP  # noqa: E402
from decisioning import PolicyError, load_policy  # noqa: E402
from decisioning.policy import CHANNELS  # noqa: E402
from domain.catalog import CatalogError  # noqa: E402
from recommender.backtest import BacktestReport, backtest  # noqa: E402
from recommender.evaluation import EVAL_CHANNEL, fold_for_training, scan_history  # noqa: E402
from services.commands.train import MIN_LABEL_PURCHASES, history_lines, label_windows, log_window  # noqa: E402
from services.evaluation_chart import write_backtest_chart  # noqa: E402

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dwh]?)\s*$")
_UNIT_S = {"": 86_400.0, "d": 86_400.0, "w": 7 * 86_400.0, "h": 3600.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", type=Path, help="JSONL event log (the bank's history)")
    source.add_argument("--history", type=Path, help="training store written by nbo import, instead of --events")
    parser.add_argument("--as-of", required=True,
                        help="the date to decide at: YYYY-MM-DD (00:00 UTC) or an ISO time (UTC if no zone)")
    parser.add_argument("--horizon", default="30d", help="purchases scored after the as-of date: 30d, 4w, 72h")
    parser.add_argument("--channel", choices=CHANNELS, default=EVAL_CHANNEL, help="the channel the offers are for")
    parser.add_argument("--limit", type=int, default=3, help="offers per customer")
    parser.add_argument("--window-days", type=float, default=None, help="label window (default: chosen from the data)")
    parser.add_argument("--windows", type=int, default=None, help="stacked windows (default: chosen from the data)")
    parser.add_argument("--min-purchases", type=int, default=MIN_LABEL_PURCHASES,
                        help="labelled purchases the training windows should hold")
    parser.add_argument("--params", default=None, help="JSON of model parameters")
    parser.add_argument("--seed", type=int, default=0, help="seed of training")
    parser.add_argument("--catalog", type=Path, default=None, help=CATALOG_HELP)
    parser.add_argument("--levers", type=Path, default=None,
                        help="marketing policy JSON (default NBO_API__LEVERS_FILE, else the packaged one)")
    parser.add_argument("--out", type=Path, default=None, help="report JSON (default <data_dir>/backtest.json)")
    parser.add_argument("--chart", type=Path, default=None, help="PNG chart (default <data_dir>/backtest.png)")
    parser.add_argument("--json", action="store_true", help="end stdout with the report as one JSON object")


def parse_as_of(text: str) -> float:
    """``2024-06-30`` (00:00 UTC) or an ISO time (UTC if it has no zone) -> UTC epoch seconds."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--as-of {text!r}: expected a date (2024-06-30) or an ISO time (2024-06-30T18:00:00Z)") \
            from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def parse_horizon(text: str) -> float:
    """``30d`` / ``4w`` / ``72h`` / ``30`` (days) -> seconds, > 0."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--horizon {text!r}: expected a positive duration such as 30d, 4w or 72h")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def backtest_events(events: Path, args: argparse.Namespace) -> BacktestReport:
    settings = load_settings()
    parts = build_trainer(settings, args.catalog, params_override=args.params)
    policy = load_policy(args.levers or settings.api.levers_file)
    as_of_s, horizon_s = parse_as_of(args.as_of), parse_horizon(args.horizon)
    if args.limit < 1:
        raise ValueError("--limit: at least 1 offer")
    scan = scan_history(history_lines(events))
    if as_of_s <= scan.first_event_s:
        raise ValueError(f"--as-of {args.as_of}: the log starts later ({_day(scan.first_event_s)}); nothing was known "
                         "before it")
    if as_of_s + horizon_s > scan.last_event_s + 86_400.0:  # a log's last day is seldom complete
        print(f"note: the log ends {_day(scan.last_event_s)}, before the horizon does "
              f"({_day(as_of_s + horizon_s)}): purchases after its end are not seen", file=sys.stderr)
    _, start_s = log_window(events, None, args.as_of, scan)
    choice = label_windows(scan, as_of_s, start_s, settings, args.window_days, args.windows, parts.params.window_days,
                           args.min_purchases)
    split = fold_for_training(history_lines(events), as_of_s, choice.window_days, choice.windows, start_s,
                              features=parts.features, rules=parts.contract)
    params = replace(parts.params, window_days=choice.window_days)
    report, _ = backtest(split, parts.catalog, policy, params, choice.window_days, horizon_s, args.channel,
                         args.limit, args.seed, settings.model.max_train_rows)
    report.info["events"] = str(events)
    report.info["label_windows"] = choice.to_dict()
    return report


def _day(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%d")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    source = args.events if args.events is not None else args.history
    if not source.exists():
        print(f"nbo backtest: --{'events' if args.events is not None else 'history'} {source}: not found",
              file=sys.stderr)
        return 2
    try:
        report = backtest_events(source, args)
    except (CatalogError, PolicyError, ValueError) as exc:
        print(f"nbo backtest: {exc}", file=sys.stderr)
        return 2
    out = args.out or settings.data_dir / "backtest.json"
    chart = args.chart or settings.data_dir / "backtest.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    chart.parent.mkdir(parents=True, exist_ok=True)
    charted = write_backtest_chart(report, chart)
    chosen = report.info["label_windows"]
    print(f"trained on {chosen['windows']} x {chosen['window_days']:g}-day label windows before {report.info['as_of']} "
          f"({report.info['training']['purchases']:,} purchases; {chosen['reason']})", file=sys.stderr)
    print(report.table())
    print(f"\nreport {out}" + (f", chart {chart}" if charted else " (no chart: matplotlib is not installed)"))
    if args.json:
        print(json.dumps(report.to_json()))
    return 0
