"""``nbo tune``: a small grid search of model parameters on the validation window.

    nbo tune --events events.jsonl
    nbo tune --events events.jsonl --grid '{"l2": [1, 3, 10], "factors": [0, 16]}'

The validation window is the last ``--window-days`` before the cutoff: each candidate trains on
the windows before it and ranks the purchases inside it (NDCG@k from the log, never the
simulator's holdout, so tuning cannot overfit the test). Prints the candidates best first and
the best parameters as JSON for ``nbo train --params``; they are saved with the model, and its
``similar_weight`` is the weight the offer API's chain ranks with. The after-purchase weights
cost no extra training: each point of the other parameters trains once and ranks with every weight. Rankings are masked by the
decisioning's eligibility on the teller (``recommender.evaluation.EVAL_CHANNEL``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from bootstrap import build_trainer, catalog, load_settings  # noqa: E402
from bootstrap.settings import CATALOG_OPTION_HELP as CATALOG_HELP  # noqa: E402
from domain.catalog import CatalogError  # noqa: E402
from recommender.evaluation import fold_for_training, validation_split  # noqa: E402
from recommender.matrix import read_lines  # noqa: E402
from recommender.model import ModelParams  # noqa: E402
from services.commands.train import log_window  # noqa: E402

DEFAULT_GRID = {"l2": [1.0, 3.0, 10.0], "factors": [0, 16], "similar_weight": [0.0, 0.3, 1.0, 3.0, 10.0]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, default=None, help="JSONL event log (default: simulate --customers)")
    parser.add_argument("--customers", type=int, default=5000, help="customers to simulate without --events")
    parser.add_argument("--days", type=int, default=30, help="days to simulate without --events (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation and of training (default 1)")
    parser.add_argument("--grid", default=None, help=f"JSON grid (default {json.dumps(DEFAULT_GRID)})")
    parser.add_argument("--k", type=int, default=3, help="cut-off of the validation metric, NDCG@k (default 3)")
    parser.add_argument("--window-days", type=float, default=None,
                        help="label window in days (default NBO_MODEL__WINDOW_DAYS, 14)")
    parser.add_argument("--windows", type=int, default=3, help="windows folded (validation uses the newest)")
    parser.add_argument("--catalog", type=Path, default=None, help=CATALOG_HELP)
    parser.add_argument("--json", action="store_true", help="end with one JSON object")


def grid_points(grid: dict[str, list]) -> list[dict]:
    known = set(ModelParams.__dataclass_fields__)
    unknown = sorted(set(grid) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s) in --grid: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    names = sorted(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def tune_events(events: Path, args: argparse.Namespace) -> list[tuple[dict, dict]]:
    parts = build_trainer(load_settings(), args.catalog)
    served, base = parts.catalog, parts.params
    window = args.window_days or base.window_days
    cutoff_s, start_s = log_window(events, None, None)
    split = fold_for_training(read_lines(events), cutoff_s, window, args.windows, start_s,
                              features=parts.features, rules=parts.contract)
    results = []
    grid = json.loads(args.grid) if args.grid else DEFAULT_GRID
    weights = [float(w) for w in grid.get("similar_weight", [])]
    rest = {name: values for name, values in grid.items() if name != "similar_weight"}
    # One training per point of the other parameters; every after-purchase weight ranks with it.
    for point in grid_points(rest):
        params = ModelParams.from_dict({**base.to_dict(), **point})
        report = validation_split(split, served, params, window, args.k, args.seed, similar_weights=weights)
        for w in weights or [None]:
            row = report.rows["model" if w is None else f"model_w{w:g}"]
            full = dict(point) if w is None else {**point, "similar_weight": w}
            full = {name: full[name] for name in sorted(full)}
            results.append((full, row | {"popularity_ndcg": report.rows["popularity"]["ndcg"]}))
            print(f"  {json.dumps(full)}: ndcg@{args.k} {row['ndcg']:.4f}", file=sys.stderr)
    results.sort(key=lambda r: -r[1]["ndcg"])
    return results


def run(args: argparse.Namespace) -> int:
    try:
        if args.events is None:
            from simulator.bank import write_jsonl

            with tempfile.TemporaryDirectory(prefix="nbo-tune-") as tmp:
                events = Path(tmp) / "events.jsonl"
                print(f"simulating {args.customers:,} customers x {args.days} days ...", file=sys.stderr)
                write_jsonl(events, catalog(load_settings(), args.catalog), args.customers, args.days, args.seed,
                            progress=False)
                results = tune_events(events, args)
        elif not args.events.exists():
            print(f"nbo tune: --events {args.events}: file not found", file=sys.stderr)
            return 2
        else:
            results = tune_events(args.events, args)
    except (CatalogError, ValueError, json.JSONDecodeError) as exc:
        print(f"nbo tune: {exc}", file=sys.stderr)
        return 2
    print(f"{'parameters':<60}{'ndcg@' + str(args.k):>10}{'map':>10}{'recall':>10}{'x popularity':>14}")
    for point, row in results:
        ratio = row["ndcg"] / row["popularity_ndcg"] if row["popularity_ndcg"] else float("nan")
        print(f"{json.dumps(point):<60}{row['ndcg']:>10.4f}{row['map']:>10.4f}{row['recall']:>10.4f}{ratio:>14.2f}")
    best = results[0][0]
    print(f"\nbest: nbo train --params '{json.dumps(best)}'")
    if args.json:
        print(json.dumps({"best": best, "k": args.k,
                          "candidates": [{"params": p, **r} for p, r in results]}))
    return 0
