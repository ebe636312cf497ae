"""``nbo train``: fold an event log into customer states, train the model, write it to the registry.

    nbo simulate --customers 20000 --days 30 --out events.jsonl
    nbo train --events events.jsonl --promote
    nbo train --customers 5000            # simulate in memory first (demo)

The cutoff is the simulator's (from ``<events>.truth.json``) when present, else ``--cutoff``,
else the time of the last event. Training stacks ``--windows`` time splits of ``--window-days``
before the cutoff (features at the window start, purchases in the window as labels).
``--tune-similar-weight`` first picks the after-purchase weight (``similar_weight``, the one the
offer API ranks with) on the last window before the cutoff, then trains with it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit: one BLAS thread, its own thread pool

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterator  # noqa: E402

from adapters.model_registry import RegistryError  # noqa: E402
from bootstrap import Settings, build_trainer, catalog, load_settings  # noqa: E402
from bootstrap.settings import CATALOG_OPTION_HELP as CATALOG_HELP  # noqa: E402
from domain.catalog import CatalogError  # noqa: E402
from recommender.evaluation import fold_for_training, train_at, tune_similar_weight  # noqa: E402
from recommender.matrix import read_lines  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, default=None, help="JSONL event log (default: simulate --customers)")
    parser.add_argument("--history", type=Path, default=None,
                        help="training store written by nbo import, instead of --events (default: --events)")
    parser.add_argument("--truth", type=Path, default=None, help="simulator truth (default <events>.truth.json if present)")
    parser.add_argument("--cutoff", default=None, help="train on events before this ISO time (UTC if no zone)")
    parser.add_argument("--customers", "--simulate-customers", dest="customers", type=int, default=5000,
                        help="customers to simulate when --events is not given")
    parser.add_argument("--days", type=int, default=30, help="days to simulate when --events is not given")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation and of training (default 1)")
    parser.add_argument("--window-days", type=float, default=None, help="label window (default NBO_MODEL__WINDOW_DAYS)")
    parser.add_argument("--windows", type=int, default=None, help="stacked windows (default NBO_MODEL__TRAINING_WINDOWS)")
    parser.add_argument("--params", default=None, help='JSON of model parameters, e.g. \'{"l2": 3}\' (from nbo tune)')
    parser.add_argument("--catalog", type=Path, default=None, help=CATALOG_HELP)
    parser.add_argument("--registry", type=Path, default=None, help="registry directory (default NBO_MODEL__REGISTRY_DIR)")
    parser.add_argument("--promote", action="store_true", help="make the new version current")
    parser.add_argument("--tune-similar-weight", action="store_true",
                        help="pick the after-purchase weight on the last window before the cutoff first")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")


def _iso_s(text: str) -> float:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def log_window(events: Path, truth: Path | None, cutoff: str | None) -> tuple[float, float | None]:
    """(cutoff, first behaviour day) in UTC epoch seconds for an event log."""
    from simulator.bank import truth_path_for

    sidecar = (truth.with_suffix(".json") if truth else truth_path_for(events).with_suffix(".json"))
    meta: dict[str, Any] = {}
    if sidecar.exists():
        meta = json.loads(sidecar.read_text(encoding="utf-8")).get("meta", {})
    if cutoff:
        return _iso_s(cutoff), _iso_s(meta["start"]) if "start" in meta else None
    if "cutoff" in meta:
        return _iso_s(meta["cutoff"]), _iso_s(meta["start"])
    if events.is_dir():  # a training store (nbo import)
        from adapters.history_store import HistoryStore

        return (HistoryStore(events).summary().last_s or 0.0) + 1.0, None
    last = 0.0
    import orjson

    for raw in read_lines(events):
        last = max(last, _iso_s(orjson.loads(raw)["occurred_at"]))
    return last + 1.0, None


def history_lines(events: Path) -> Iterator[bytes]:
    """The event lines of a JSONL log, or of a training store directory (``iter_history``)."""
    if events.is_dir():
        from adapters.history_store import iter_history

        return iter_history(events)
    return read_lines(events)


def train_events(events: Path, settings: Settings, *, truth: Path | None = None, cutoff: str | None = None,
                 window_days: float | None = None, windows: int | None = None, params_json: str | None = None,
                 catalog_path: Path | None = None, registry_dir: Path | None = None, promote: bool = False,
                 seed: int = 0, tune_weight: bool = False) -> tuple[str, dict[str, Any]]:
    """Train on an event log and save (and optionally promote) a version; returns (version, info).
    ``tune_weight``: pick ``similar_weight`` on the validation window first (``tune_similar_weight``)."""
    parts = build_trainer(settings, catalog_path, registry_dir, params_json)
    window = window_days or parts.params.window_days
    cutoff_s, start_s = log_window(events, truth, cutoff)
    split = fold_for_training(history_lines(events), cutoff_s, window, windows or settings.model.training_windows, start_s,
                              features=parts.features)
    params = parts.params
    tuned: dict[str, Any] = {}
    if tune_weight:
        best, ndcg = tune_similar_weight(split, parts.catalog, params, window, seed=seed)
        params = replace(params, similar_weight=best)
        tuned = {"similar_weight_validation": {"best": best, "ndcg_at_3": {f"{w:g}": v for w, v in ndcg.items()}}}
    model, info = train_at(split, parts.catalog, params, window, version="pending", seed=seed,
                           max_rows=settings.model.max_train_rows)
    info.update(tuned)
    if promote and info["purchases"] == 0:
        raise ValueError(f"no purchase in the label window(s) before {info['cutoff']} ({info['customers']:,} "
                         "customers): a model trained on no purchase has nothing to rank by; nothing was saved or "
                         "promoted. Give a longer history, a longer --window-days, or more --windows")
    version = parts.registry.save(model, {"source": str(events), "training": info})
    if promote:
        parts.registry.promote(version)
    return version, info


#: Below this many labelled purchases a trained model has usually ranked worse than popularity
#: (measured on a real bank's data: it lost badly with a few dozen and won with thousands).
FEW_PURCHASES = 1000


def small_data_warning(info: dict[str, Any]) -> str | None:
    """A warning to print when the training data is too small to trust the model, else None."""
    if info["purchases"] >= FEW_PURCHASES:
        return None
    return (f"warning: only {info['purchases']:,} purchases in the label windows; a model trained on fewer than "
            f"{FEW_PURCHASES:,} usually ranks worse than popularity. Check it with nbo evaluate on the same log "
            "before promoting it")


def train_on_simulation(settings: Settings, customers: int = 5000, seed: int = 1, promote: bool = True,
                        days: int = 30, registry_dir: Path | None = None) -> str:
    """Simulate ``customers`` x ``days``, train on it and save (and promote) a version (the demo)."""
    from simulator.bank import write_jsonl

    with tempfile.TemporaryDirectory(prefix="nbo-train-") as tmp:
        events = Path(tmp) / "events.jsonl"
        write_jsonl(events, catalog(settings), customers, days, seed, progress=False)
        version, _ = train_events(events, settings, promote=promote, registry_dir=registry_dir)
    return version


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        if args.history is not None:
            if args.events is not None:
                print("nbo train: give --events or --history, not both", file=sys.stderr)
                return 2
            from adapters.history_store import HistoryStore, HistoryStoreError

            try:
                HistoryStore(args.history)
            except HistoryStoreError as exc:
                print(f"nbo train: --history {exc}", file=sys.stderr)
                return 2
            args.events = args.history
        if args.events is None:
            from simulator.bank import write_jsonl

            with tempfile.TemporaryDirectory(prefix="nbo-train-") as tmp:
                events = Path(tmp) / "events.jsonl"
                print(f"simulating {args.customers:,} customers x {args.days} days ...", file=sys.stderr)
                write_jsonl(events, catalog(settings, args.catalog), args.customers, args.days, args.seed,
                            progress=False)
                version, info = train_events(events, settings, window_days=args.window_days, windows=args.windows,
                                             params_json=args.params, catalog_path=args.catalog,
                                             registry_dir=args.registry, promote=args.promote, seed=args.seed,
                                             tune_weight=args.tune_similar_weight)
        else:
            if not args.events.exists():
                print(f"nbo train: --events {args.events}: file not found", file=sys.stderr)
                return 2
            version, info = train_events(args.events, settings, truth=args.truth, cutoff=args.cutoff,
                                         window_days=args.window_days, windows=args.windows, params_json=args.params,
                                         catalog_path=args.catalog, registry_dir=args.registry,
                                         promote=args.promote, seed=args.seed,
                                         tune_weight=args.tune_similar_weight)
    except (CatalogError, RegistryError, ValueError) as exc:
        print(f"nbo train: {exc}", file=sys.stderr)
        return 2
    registry = args.registry or settings.registry_dir
    print(f"trained {version} on {info['customers']:,} customers ({info['rows']:,} rows, {info['purchases']:,} "
          f"purchases, {info['tokens']} tokens) in {info['train_s']:.1f} s (+{info['matrix_s']:.1f} s matrix); "
          f"saved to {registry}", file=sys.stderr)
    warning = small_data_warning(info)
    if warning:
        print(warning, file=sys.stderr)
    print(f"promoted: {version} is now the current model" if args.promote else
          f"not promoted (the current model is unchanged; nbo promote {version} serves this one)", file=sys.stderr)
    if args.json:
        print(json.dumps({"version": version, "promoted": bool(args.promote), **info}))
    else:
        print(version)
    return 0
