"""``nbo evaluate``: offline evaluation of the model against popularity, segment popularity,
random and the simulator's oracle (true propensities).

    nbo evaluate                                  # simulate 20,000 customers x 30 days, time split
    nbo evaluate --events events.jsonl --json     # a simulated log with its truth file
    nbo evaluate --events log.jsonl --mode loo    # leave-one-out, for data without time structure
    nbo evaluate --ope --decisions d.jsonl --outcomes o.jsonl --events e.jsonl   # off-policy, see commands/ope.py

Time split: train on the windows before the cutoff, rank every customer at the cutoff, score the
purchases of the next window (the simulator's holdout; without a truth file the last
``--window-days`` of the log are held out). Each ranking holds only what the decisioning's
eligibility allows the customer on a channel: the headline rows are for ``--channel`` (teller),
and the report has every channel's rows. Prints a table, writes the report JSON and a PNG
chart; with ``--json`` the last line of stdout is ``{"k": .., "rows": {"model": {...}, ...}}``.
``model`` ranks with the after-purchase boost at the model's ``similar_weight`` (or, with
``--tune-similar-weight``, the weight that did best on the last window before the cutoff, from
the log, never the holdout), ``model_no_similar`` without it; the ``recency`` rows split every
ranker into customers with a purchase in the 30 days before the cutoff and the others.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

from bootstrap import build_trainer, catalog, load_settings  # noqa: E402
from bootstrap.settings import CATALOG_OPTION_HELP as CATALOG_HELP  # noqa: E402
from domain.catalog import CatalogError  # noqa: E402
from decisioning.policy import CHANNELS  # noqa: E402
from recommender.evaluation import (  # noqa: E402
    DAY_S, EVAL_CHANNEL, EvalReport, fold_for_training, leave_one_out, time_split, tune_similar_weight,
)
from recommender.evaluation import scan_history  # noqa: E402
from recommender.matrix import build_matrix, token_vocabulary  # noqa: E402
from services.commands.train import MIN_LABEL_PURCHASES, history_lines, label_windows, log_window  # noqa: E402
from services.evaluation_chart import write_chart  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, default=None, help="JSONL event log (default: simulate --customers)")
    parser.add_argument("--truth", type=Path, default=None, help="simulator truth (default <events>.truth.npz if present)")
    parser.add_argument("--customers", type=int, default=20_000, help="customers to simulate without --events")
    parser.add_argument("--days", type=int, default=30, help="days to simulate without --events")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation and of training (default 1)")
    parser.add_argument("--mode", choices=("time", "loo"), default="time", help="time split or leave-one-out")
    parser.add_argument("--k", type=int, default=3, help="cut-off of the ranking metrics")
    parser.add_argument("--window-days", type=float, default=None, help="label window (default NBO_MODEL__WINDOW_DAYS)")
    parser.add_argument("--windows", type=int, default=None, help="stacked training windows")
    parser.add_argument("--params", default=None, help="JSON of model parameters")
    parser.add_argument("--min-purchases", type=int, default=MIN_LABEL_PURCHASES,
                        help="labelled purchases the training windows should hold (as nbo train)")
    parser.add_argument("--channel", choices=CHANNELS, default=EVAL_CHANNEL,
                        help="channel of the headline rows (the others are reported per channel too)")
    parser.add_argument("--catalog", type=Path, default=None, help=CATALOG_HELP)
    parser.add_argument("--out", type=Path, default=None, help="report JSON (default <data_dir>/evaluation.json)")
    parser.add_argument("--chart", type=Path, default=None, help="PNG chart (default <data_dir>/evaluation.png)")
    parser.add_argument("--json", action="store_true", help="end stdout with the report as one JSON object")
    parser.add_argument("--tune-similar-weight", action="store_true",
                        help="pick the after-purchase weight on the last window before the cutoff (time split)")
    # Off-policy evaluation from the decision log (services/commands/ope.py).
    parser.add_argument("--ope", action="store_true",
                        help="off-policy evaluation: estimate a model's acceptance rate from logged decisions and "
                             "outcomes (IPS, SNIPS, DR; --events then holds the customer events the states are folded from)")
    parser.add_argument("--decisions", type=Path, default=None, help="with --ope: JSONL of OfferDecisionMade records")
    parser.add_argument("--outcomes", type=Path, default=None, help="with --ope: JSONL of OfferOutcomeRecorded records")
    parser.add_argument("--candidate", default=None,
                        help="with --ope: the registry version to evaluate (default: the current, serving one)")


def evaluate_events(events: Path, args: argparse.Namespace) -> EvalReport:
    from simulator.bank import load_truth, truth_path_for

    settings = load_settings()
    parts = build_trainer(settings, args.catalog, params_override=args.params)
    served, params = parts.catalog, parts.params
    window = args.window_days or params.window_days
    windows = args.windows or settings.model.training_windows
    truth_file = args.truth or truth_path_for(events)
    truth = load_truth(truth_file) if truth_file.exists() else None
    if truth is not None and truth.meta.get("catalog_hash") not in (None, served.content_hash()):
        raise ValueError(f"{truth_file} was simulated with another catalog")
    scan = scan_history(history_lines(events))
    end_s, start_s = log_window(events, truth_file if truth is not None else None, None, scan)
    if args.mode == "loo":
        split = fold_for_training(history_lines(events), end_s, window, 1, start_s,
                              features=parts.features, rules=parts.contract)
        states = split.folded.states[-1]
        vocab = token_vocabulary(states.values(), end_s, params.max_token_columns, params.min_token_customers)
        matrix = build_matrix(states, served.ids, vocab, end_s)
        return leave_one_out(matrix, served, params, args.k, args.seed)
    cutoff_s = end_s if truth is not None else end_s - window * DAY_S
    # the label windows training would choose at this cutoff (nbo train does the same)
    choice = label_windows(scan, cutoff_s, start_s, settings, args.window_days, args.windows, params.window_days,
                           getattr(args, "min_purchases", MIN_LABEL_PURCHASES))
    window, windows = choice.window_days, choice.windows
    params = replace(params, window_days=window)
    split = fold_for_training(history_lines(events), cutoff_s, window, windows, start_s,
                              features=parts.features, rules=parts.contract)
    channels = (args.channel, *(ch for ch in CHANNELS if ch != args.channel))
    tuned = None
    if args.tune_similar_weight:
        best, ndcg = tune_similar_weight(split, served, params, window, args.k, args.seed)
        params = replace(params, similar_weight=best)
        tuned = {"best": best, f"ndcg_at_{args.k}": {f"{w:g}": v for w, v in ndcg.items()}}
        print(f"similar_weight {best:g} (validation ndcg@{args.k}: "
              + ", ".join(f"{w:g}: {v:.4f}" for w, v in ndcg.items()) + ")", file=sys.stderr)
    report, _ = time_split(split.folded, served, cutoff_s, window, params, args.k, args.seed, truth=truth,
                           label_end_s=end_s, train_starts_s=split.starts_s, channels=channels)
    report.info["events"] = str(events)
    report.info["training_windows"] = len(split.starts_s)
    report.info["label_windows"] = choice.to_dict()
    if tuned is not None:
        report.info["similar_weight_validation"] = tuned
    return report


def run(args: argparse.Namespace) -> int:
    if args.ope:
        from services.commands.ope import evaluate_command

        return evaluate_command(args)
    settings = load_settings()
    try:
        if args.events is None:
            from simulator.bank import write_jsonl

            with tempfile.TemporaryDirectory(prefix="nbo-evaluate-") as tmp:
                events = Path(tmp) / "events.jsonl"
                print(f"simulating {args.customers:,} customers x {args.days} days ...", file=sys.stderr)
                write_jsonl(events, catalog(settings, args.catalog), args.customers, args.days, args.seed,
                            progress=False)
                report = evaluate_events(events, args)
        elif not args.events.exists():
            print(f"nbo evaluate: --events {args.events}: file not found", file=sys.stderr)
            return 2
        else:
            report = evaluate_events(args.events, args)
    except (CatalogError, ValueError) as exc:
        print(f"nbo evaluate: {exc}", file=sys.stderr)
        return 2
    out = args.out or settings.data_dir / "evaluation.json"
    chart = args.chart or settings.data_dir / "evaluation.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    chart.parent.mkdir(parents=True, exist_ok=True)
    charted = write_chart(report, chart)
    print(report.table())
    print(f"\nreport {out}" + (f", chart {chart}" if charted else " (no chart: matplotlib is not installed)"))
    if args.json:
        print(json.dumps({"k": report.k, "rows": report.rows, "ratios": report.ratios(), "recency": report.recency,
                          "info": report.info}))
    return 0
