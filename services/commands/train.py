"""``nbo train``: fold an event log into customer states, train the model, write it to the registry.

    nbo simulate --customers 20000 --days 30 --out events.jsonl
    nbo train --events events.jsonl --promote
    nbo train --customers 5000            # simulate in memory first (demo)

The cutoff is the simulator's (from ``<events>.truth.json``) when present, else ``--cutoff``,
else the time of the last event. Training stacks time splits before the cutoff (features at the
window start, purchases in the window as labels): ``NBO_MODEL__TRAINING_WINDOWS`` x
``NBO_MODEL__WINDOW_DAYS`` when they hold at least ``--min-purchases`` (1,000) purchases, else
more windows, then longer ones, as far as the history goes (``recommender.evaluation.
choose_windows``); the windows chosen are printed and saved with the model. ``--window-days`` /
``--windows`` (or those settings, when set) are kept as given.
``--tune-similar-weight`` first picks the after-purchase weight (``similar_weight``, the one the
offer API ranks with) on the last window before the cutoff, then trains with it.

Every trained version is validated: the last window before the cutoff is held out, a model
trained on the windows before it ranks every customer (decisioning's eligibility, teller) and
its NDCG@3 is compared with popularity's (``recommender.evaluation.promotion_gate``). The result
is saved with the version. ``--promote`` promotes only a model with at least 200 labelled
purchases that does not rank worse than popularity there; otherwise the version is saved, not
promoted, the reasons are printed and the exit code is 1. ``--force`` promotes it anyway and
the registry records that it was forced (``nbo promote --list`` shows it).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit: one BLAS thread, its own thread pool

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterator, Sequence  # noqa: E402

from adapters.model_registry import RegistryError  # noqa: E402
from bootstrap import Settings, build_trainer, catalog, load_settings  # noqa: E402
from bootstrap.settings import CATALOG_OPTION_HELP as CATALOG_HELP  # noqa: E402
from domain.catalog import CatalogError  # noqa: E402
from recommender.evaluation import (  # noqa: E402
    MIN_LABEL_PURCHASES, GateResult, HistoryScan, WindowChoice, choose_windows, fold_for_training, promotion_gate,
    scan_history, train_at, tune_similar_weight,
)
from recommender.matrix import iso_epoch_s, read_lines  # noqa: E402
from recommender.partitioned_fold import PartitionedLog  # noqa: E402


class PromotionRefused(Exception):
    """The promotion gate refused a trained version: it is saved, not promoted."""

    def __init__(self, version: str, gate: GateResult, info: dict[str, Any]) -> None:
        self.version, self.gate, self.info = version, gate, info
        super().__init__(refusal_message(version, gate.reasons))


def refusal_message(version: str, reasons: Sequence[str]) -> str:
    return (f"{version} was not promoted: " + "; ".join(reasons) + ". The current model is unchanged. Give a "
            "longer history (more days or customers, so the label windows hold more purchases), or promote it "
            f"anyway with nbo promote {version} --force (nbo train --promote --force); the registry records a "
            "forced promotion")


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
    parser.add_argument("--promote", action="store_true",
                        help="make the new version current, if it passes the promotion gate")
    parser.add_argument("--force", action="store_true",
                        help="with --promote: promote even a version the gate refuses (recorded as forced)")
    parser.add_argument("--min-purchases", type=int, default=MIN_LABEL_PURCHASES,
                        help="labelled purchases the label windows should hold; windows are widened until they do")
    parser.add_argument("--tune-similar-weight", action="store_true",
                        help="pick the after-purchase weight on the last window before the cutoff first")
    parser.add_argument("--snapshot", type=Path, default=None,
                        help="start from this nbo snapshot directory; --events then needs only the events from its "
                             "time on (older ones are skipped: they are in it)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes folding the log's customer partitions in parallel (1 = in this process)")
    parser.add_argument("--no-validate", action="store_true",
                        help="the log was written by this system (nbo simulate, nbo import, a dump of the topics): "
                             "skip validating each event again (about a third faster fold)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")


def log_window(events: Path, truth: Path | None, cutoff: str | None,
               scan: HistoryScan | None = None) -> tuple[float, float | None]:
    """(cutoff, first behaviour day) in UTC epoch seconds for an event log (``scan``: its times,
    when already read)."""
    from simulator.bank import truth_path_for

    sidecar = (truth.with_suffix(".json") if truth else truth_path_for(events).with_suffix(".json"))
    meta: dict[str, Any] = {}
    if sidecar.exists():
        meta = json.loads(sidecar.read_text(encoding="utf-8")).get("meta", {})
    if cutoff:
        return iso_epoch_s(cutoff), iso_epoch_s(meta["start"]) if "start" in meta else None
    if "cutoff" in meta:
        return iso_epoch_s(meta["cutoff"]), iso_epoch_s(meta["start"])
    if scan is None:
        scan = scan_history(history_lines(events))
    return scan.last_event_s + 1.0, None


def label_windows(scan: HistoryScan, cutoff_s: float, start_s: float | None, settings: Settings,
                  window_days: float | None, windows: int | None, params_window_days: float,
                  min_purchases: int = MIN_LABEL_PURCHASES) -> WindowChoice:
    """The label windows before ``cutoff_s`` (``choose_windows``): ``window_days`` / ``windows``
    given on the command line, or set in ``NBO_MODEL__WINDOW_DAYS`` / ``NBO_MODEL__TRAINING_WINDOWS``,
    are kept; the history starts at ``start_s`` (the simulator's first day) or the first event."""
    explicit = settings.model.model_fields_set
    return choose_windows(scan.purchase_times_s, cutoff_s, start_s if start_s is not None else scan.first_event_s,
                          window_days or params_window_days, windows or settings.model.training_windows,
                          min_purchases, fixed_window_days=window_days is not None or "window_days" in explicit,
                          fixed_windows=windows is not None or "training_windows" in explicit)


def history_lines(events: Path) -> Iterator[bytes]:
    """The event lines of a JSONL log, or of a training store directory (``iter_history``): the one
    place training, evaluation and the backtest read their input."""
    if events.is_dir():
        from adapters.history_store import iter_history

        return iter_history(events)
    return read_lines(events)


def fold_source(events: Path, *, workers: int = 1, validate: bool = True, snapshot: Path | None = None,
                rules: Any = None) -> PartitionedLog:
    """How ``events`` is folded: a JSONL log, or a training store directory (``nbo import``) whose
    buckets are the customer partitions; on ``workers`` processes, from ``snapshot`` if given."""
    from schemas.rules import DEFAULT_RULES

    log: Any = events
    if events.is_dir():
        from adapters.history_partitions import StorePartitions

        log = StorePartitions(events)
    return PartitionedLog(log, workers=workers, validate=validate, snapshot=snapshot, rules=rules or DEFAULT_RULES)


def train_events(events: Path, settings: Settings, *, truth: Path | None = None, cutoff: str | None = None,
                 window_days: float | None = None, windows: int | None = None, params_json: str | None = None,
                 catalog_path: Path | None = None, registry_dir: Path | None = None, promote: bool = False,
                 seed: int = 0, tune_weight: bool = False, force: bool = False, gate: bool = True,
                 min_purchases: int = MIN_LABEL_PURCHASES, workers: int = 1, snapshot: Path | None = None,
                 validate: bool = True) -> tuple[str, dict[str, Any]]:
    """Train on an event log and save (and optionally promote) a version; returns (version, info).
    ``tune_weight``: pick ``similar_weight`` on the validation window first (``tune_similar_weight``).
    ``gate``: validate the version (``promotion_gate``, saved in ``info["promotion_gate"]``) and
    promote only one that passes, unless ``force`` (then recorded as forced); a refusal raises
    ``PromotionRefused`` after the version was saved. ``gate=False`` (the demo's simulated
    population) promotes without validating. ``workers``, ``snapshot``, ``validate``: how the log
    is folded (``fold_source``, ``recommender.partitioned_fold.PartitionedLog``)."""
    parts = build_trainer(settings, catalog_path, registry_dir, params_json)
    if workers < 1:
        raise ValueError(f"--workers {workers}: at least 1")
    source = fold_source(events, workers=workers, validate=validate, snapshot=snapshot, rules=parts.contract)
    t0 = time.perf_counter()
    scan = source.scan()  # on several workers, the same pass cuts the log into customer partitions
    scan_s = round(time.perf_counter() - t0, 2)
    cutoff_s, start_s = log_window(events, truth, cutoff, scan)
    choice = label_windows(scan, cutoff_s, start_s, settings, window_days, windows, parts.params.window_days,
                           min_purchases)
    window = choice.window_days
    t0 = time.perf_counter()
    split = fold_for_training(source, cutoff_s, window, choice.windows, start_s, features=parts.features,
                              rules=parts.contract)
    fold_s = round(time.perf_counter() - t0, 2)
    params = replace(parts.params, window_days=window)
    tuned: dict[str, Any] = {}
    if tune_weight:
        best, ndcg = tune_similar_weight(split, parts.catalog, params, window, seed=seed)
        params = replace(params, similar_weight=best)
        tuned = {"similar_weight_validation": {"best": best, "ndcg_at_3": {f"{w:g}": v for w, v in ndcg.items()}}}
    model, info = train_at(split, parts.catalog, params, window, version="pending", seed=seed,
                           max_rows=settings.model.max_train_rows)
    info.update(tuned)
    info["label_windows"] = choice.to_dict()
    info.update({"scan_s": scan_s, "fold_s": fold_s, "fold_phases_s": source.timings, "events": split.folded.events,
                 "workers": workers, "snapshot": str(snapshot) if snapshot is not None else None})
    if promote and info["purchases"] == 0:
        raise ValueError(f"no purchase in the label window(s) before {info['cutoff']} ({info['customers']:,} "
                         "customers): a model trained on no purchase has nothing to rank by; nothing was saved or "
                         "promoted. Give a longer history, a longer --window-days, or more --windows")
    verdict = None
    if gate:
        t0 = time.perf_counter()
        verdict = promotion_gate(split, parts.catalog, params, window, info["purchases"], seed=seed)
        info["promotion_gate"] = verdict.to_dict()
        info["gate_s"] = round(time.perf_counter() - t0, 2)
    version = parts.registry.save(model, {"source": str(events), "training": info})
    if promote:
        if verdict is None or verdict.passed:
            parts.registry.promote(version)
        elif force:
            parts.registry.promote(version, forced=True, overrode=verdict.reasons)
        else:
            raise PromotionRefused(version, verdict, info)
    return version, info


def small_data_warning(info: dict[str, Any]) -> str | None:
    """A warning to print when the label windows hold fewer purchases than wanted, else None."""
    chosen = info.get("label_windows") or {}
    if chosen.get("enough", True):
        return None
    return (f"warning: only {info['purchases']:,} purchases in the label windows ({chosen['reason']}); each "
            "product's propensity is shrunk toward its popularity by its own label count, and arbitration does not "
            "let value decide where the model knows little (docs/MODEL.md)")


def describe_gate(gate: dict[str, Any]) -> str:
    """One line: the validation window's figures and the gate's verdict."""
    rows = gate.get("validation")
    if not rows:
        return "validation: " + "; ".join(gate["reasons"])
    figures = ", ".join(f"{name} {row['ndcg']:.4f}" for name, row in rows.items())
    window = gate.get("window") or ["?", "?"]
    verdict = "passes the promotion gate" if gate["passed"] else "refused by the promotion gate: " + "; ".join(
        gate["reasons"])
    return (f"validation {window[0][:10]}..{window[1][:10]} ({gate.get('customers', 0):,} customers) ndcg@3: "
            f"{figures}; {verdict}")


def train_on_simulation(settings: Settings, customers: int = 5000, seed: int = 1, promote: bool = True,
                        days: int = 30, registry_dir: Path | None = None) -> str:
    """Simulate ``customers`` x ``days``, train on it and save (and promote) a version (the demo)."""
    from simulator.bank import write_jsonl

    with tempfile.TemporaryDirectory(prefix="nbo-train-") as tmp:
        events = Path(tmp) / "events.jsonl"
        write_jsonl(events, catalog(settings), customers, days, seed, progress=False)
        version, _ = train_events(events, settings, promote=promote, registry_dir=registry_dir, gate=False)
    return version


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.force and not args.promote:
        print("nbo train: --force only goes with --promote", file=sys.stderr)
        return 2
    options = dict(window_days=args.window_days, windows=args.windows, params_json=args.params,
                   catalog_path=args.catalog, registry_dir=args.registry, promote=args.promote, seed=args.seed,
                   tune_weight=args.tune_similar_weight, force=args.force, min_purchases=args.min_purchases,
                   workers=args.workers, snapshot=args.snapshot, validate=not args.no_validate)
    refused: PromotionRefused | None = None
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
        try:
            if args.events is None:
                from simulator.bank import write_jsonl

                with tempfile.TemporaryDirectory(prefix="nbo-train-") as tmp:
                    events = Path(tmp) / "events.jsonl"
                    print(f"simulating {args.customers:,} customers x {args.days} days ...", file=sys.stderr)
                    write_jsonl(events, catalog(settings, args.catalog), args.customers, args.days, args.seed,
                                progress=False)
                    version, info = train_events(events, settings, **options)
            else:
                if not args.events.exists():
                    print(f"nbo train: --events {args.events}: file not found", file=sys.stderr)
                    return 2
                version, info = train_events(args.events, settings, truth=args.truth, cutoff=args.cutoff, **options)
        except PromotionRefused as exc:
            refused = exc
            version = exc.version
            info = exc.info
    except (CatalogError, RegistryError, ValueError) as exc:
        print(f"nbo train: {exc}", file=sys.stderr)
        return 2
    registry = args.registry or settings.registry_dir
    chosen = info["label_windows"]
    print(f"label windows: {chosen['windows']} x {chosen['window_days']:g} days before {info['cutoff']} "
          f"({chosen['purchases']:,} purchases; {chosen['reason']})", file=sys.stderr)
    print(f"trained {version} on {info['customers']:,} customers ({info['rows']:,} rows, {info['purchases']:,} "
          f"purchases, {info['tokens']} tokens) in {info['train_s']:.1f} s (+{info['matrix_s']:.1f} s matrix); "
          f"saved to {registry}", file=sys.stderr)
    warning = small_data_warning(info)
    if warning:
        print(warning, file=sys.stderr)
    if "promotion_gate" in info:
        print(describe_gate(info["promotion_gate"]), file=sys.stderr)
    if refused is not None:
        print(f"nbo train: {refused}", file=sys.stderr)
    elif args.promote:
        forced = not info.get("promotion_gate", {}).get("passed", True)
        print(f"promoted: {version} is now the current model" + (" (forced past the promotion gate; recorded)"
                                                                 if forced else ""), file=sys.stderr)
    else:
        print(f"not promoted (the current model is unchanged; nbo promote {version} serves this one)", file=sys.stderr)
    promoted = bool(args.promote) and refused is None
    if args.json:
        print(json.dumps({"version": version, "promoted": promoted, **info}))
    else:
        print(version)
    return 1 if refused is not None else 0

