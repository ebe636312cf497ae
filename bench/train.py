"""Benchmark of training at bank scale: from a raw simulated history (default 1,000,000 customers
x 30 days, ~33M events) to a promoted model, by the path ``nbo train --events LOG --workers N
--promote`` takes (``services.commands.train.train_events``): the fold of the whole log over
customer partitions on ``--workers`` processes, the stacked training matrix, the model fit, the
registry save and promotion. Then the fold-in scoring latency of the promoted model.

Simulating the history is not part of the timed path: the log is written once to ``--cache-dir``
(``events-<customers>x<days>-s<seed>.jsonl`` with its truth) and reused by later runs (``--events``
names any other log). The timed figures are wall clock; the CPU seconds of this process and of
its worker processes are printed too (on a shared machine they say what a quiet one would take).

    .venv/bin/python bench/train.py                         # 1M x 30 days, updates docs/BENCHMARKS.md
    .venv/bin/python bench/train.py --customers 20000 --no-doc --json    # a quick run
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.model_registry import ModelRegistry  # noqa: E402
from bootstrap import load_settings  # noqa: E402
from domain.catalog import load_catalog  # noqa: E402
from recommender.matrix import fold_event_log, row_of  # noqa: E402
from services.commands.train import train_events  # noqa: E402
from simulator.bank import DEFAULT_START, simulate, write_jsonl  # noqa: E402

SECTION = "## bench/train.py"
DAY_S = 86_400.0


def cpu_s() -> tuple[float, float]:
    """(this process, its finished children) user + system CPU seconds."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def simulated_log(args: argparse.Namespace) -> tuple[Path, float | None]:
    """The log to train on and, if it was simulated in this run, how long that took (s)."""
    if args.events is not None:
        return args.events, None
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    path = args.cache_dir / f"events-{args.customers}x{args.days}-s{args.seed}.jsonl"
    if path.exists() and path.with_suffix(".truth.json").exists():
        return path, None
    print(f"simulating {args.customers:,} customers x {args.days} days to {path} (once; not timed) ...",
          file=sys.stderr)
    summary = write_jsonl(path, load_catalog(), args.customers, args.days, args.seed, progress=False)
    return path, summary.elapsed_s


def foldin_latency(registry: Path, seed: int) -> tuple[float, float]:
    """Median and p99 (us) of ``NboModel.score`` with the promoted model on the states of 5,000
    other simulated customers at their cutoff."""
    catalog = load_catalog()
    model = ModelRegistry(registry).load(catalog=catalog)
    small = simulate(catalog, 5000, 30, seed + 1)
    cutoff_s = DEFAULT_START.timestamp() + 30 * DAY_S
    states = list(fold_event_log(small.records, [cutoff_s], validate=False).states[0].values())
    timings = []
    for s in states:
        held, tokens = row_of(s, cutoff_s)
        recent = [(p, float(t)) for p, t in s.recent_purchases]
        t = time.perf_counter()
        model.score(held, tokens, recent, cutoff_s, s.value_tier)
        timings.append(time.perf_counter() - t)
    return 1e6 * float(np.median(timings)), 1e6 * float(np.percentile(timings, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers of the simulated history")
    parser.add_argument("--days", type=int, default=30, help="days of the simulated history")
    parser.add_argument("--seed", type=int, default=1, help="simulation and training seed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="fold processes (default: all cores)")
    parser.add_argument("--validate", action="store_true",
                        help="validate every event again while folding (default: the simulator's own log is trusted, "
                             "as nbo train --no-validate)")
    parser.add_argument("--events", type=Path, default=None, help="train on this log instead of a simulated one")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "nbo-bench-train",
                        help="where simulated logs are kept between runs")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()

    events, simulate_s = simulated_log(args)
    load_before = os.getloadavg()
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="nbo-bench-registry-") as registry:
        cpu0 = cpu_s()
        t0 = time.perf_counter()
        version, info = train_events(events, settings, registry_dir=Path(registry), promote=True, seed=args.seed,
                                     workers=args.workers, validate=args.validate)
        total_s = time.perf_counter() - t0
        cpu1 = cpu_s()
        load_after = os.getloadavg()
        promoted = ModelRegistry(Path(registry)).current_version() == version
        rss_parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        rss_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        median_us, p99_us = foldin_latency(Path(registry), args.seed)
    result = {
        "customers": info["customers"], "events": info["events"], "log_mb": round(events.stat().st_size / 1e6),
        "workers": args.workers, "validated": args.validate,
        "simulate_s": round(simulate_s, 1) if simulate_s is not None else None,
        "fold_s": info["fold_s"], "fold_phases_s": info.get("fold_phases_s"), "matrix_s": info["matrix_s"],
        "train_s": info["train_s"], "scan_s": info.get("scan_s"), "gate_s": info.get("gate_s"),
        "total_s": round(total_s, 1),
        "save_and_promote_s": round(total_s - info["fold_s"] - info["matrix_s"] - info["train_s"]
                                    - (info.get("scan_s") or 0.0) - (info.get("gate_s") or 0.0), 1),
        "fold_events_per_s": round(info["events"] / info["fold_s"]),
        "cpu_parent_s": round(cpu1[0] - cpu0[0], 1), "cpu_workers_s": round(cpu1[1] - cpu0[1], 1),
        "rows": info["rows"], "purchases": info["purchases"], "tokens": info["tokens"],
        "promoted": promoted, "peak_rss_parent_mb": round(rss_parent), "peak_rss_worker_mb": round(rss_child),
        "foldin_median_us": round(median_us, 1), "foldin_p99_us": round(p99_us, 1),
        "load_average_1m": [round(load_before[0], 2), round(load_after[0], 2)],
        "threads": f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, implicit num_threads=0 (all cores)",
    }
    if simulate_s is not None:
        print(f"simulate (not timed): {simulate_s:.1f} s")
    print(f"raw history -> promoted model: {result['customers']:,} customers, {result['events']:,} events "
          f"({result['log_mb']:,} MB) on {args.workers} worker(s): {total_s:.1f} s")
    print(f"  scan (label windows; on several workers the same pass cuts the log) {result['scan_s']} s, "
          f"promotion gate (validation model and ranking) {result['gate_s']} s")
    print(f"  fold {result['fold_s']:.1f} s ({result['fold_events_per_s']:,} events/s; partition / fold / merge "
          f"{_phases(result['fold_phases_s'])}), matrix {result['matrix_s']:.1f} s "
          f"({result['rows']:,} rows), train {result['train_s']:.1f} s, save + promote {result['save_and_promote_s']:.1f} s")
    print(f"  CPU: {result['cpu_parent_s']:.0f} s in this process, {result['cpu_workers_s']:.0f} s in the workers; "
          f"peak RSS {result['peak_rss_parent_mb']:,} MB here, {result['peak_rss_worker_mb']:,} MB the largest worker; "
          f"load average {result['load_average_1m'][0]} -> {result['load_average_1m'][1]}")
    print(f"fold-in score: median {result['foldin_median_us']} us, p99 {result['foldin_p99_us']} us per customer")
    if not args.no_doc:
        update_doc(result, args)
        print("updated docs/BENCHMARKS.md")
    if args.json:
        print(json.dumps(result))
    return 0


def _phases(phases: dict | None) -> str:
    if not phases:
        return "-"
    return " / ".join(f"{phases[k]:.1f} s" for k in ("partition_s", "fold_s", "merge_s"))


def update_doc(r: dict, args: argparse.Namespace) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = f".venv/bin/python bench/train.py --customers {args.customers} --days {args.days} --workers {args.workers}"
    command += " --validate" if args.validate else ""
    text = (
        f"{SECTION}\n\n"
        f"Machine: {machine}. Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Load average (1 min) at the "
        f"start and end: {r['load_average_1m'][0]} / {r['load_average_1m'][1]}.\n"
        f"Command: `{command}`\n\n"
        "| what | figure |\n|---|---|\n"
        f"| raw history -> promoted model (`nbo train --events LOG --workers {r['workers']} --promote"
        f"{'' if r['validated'] else ' --no-validate'}`): {r['customers']:,} customers, {r['events']:,} events, "
        f"{r['log_mb']:,} MB JSONL | **{r['total_s']:.1f} s** |\n"
        f"| reading the log's times to choose the label windows (in the pass that cuts the log into customer "
        f"partitions) | {r.get('scan_s')} s |\n"
        f"| fold over customer partitions ({r['workers']} processes; partition / fold / merge "
        f"{_phases(r['fold_phases_s'])}; the partition is the pass of the row above when that row is not 0) | "
        f"{r['fold_s']:.1f} s = {r['fold_events_per_s']:,} events/s |\n"
        f"| training matrix ({r['rows']:,} stacked rows, {r['tokens']} tokens) | {r['matrix_s']:.1f} s |\n"
        f"| fit (ALS + item-item + logistic layer + after-purchase transitions, {r['purchases']:,} purchases) | "
        f"{r['train_s']:.1f} s |\n"
        f"| promotion gate: validation model on the earlier windows, ranking and NDCG@3 against popularity "
        f"(at most 200,000 customers) | {r.get('gate_s')} s |\n"
        f"| registry save + promote | {r['save_and_promote_s']:.1f} s |\n"
        f"| CPU seconds: trainer process / fold workers | {r['cpu_parent_s']:.0f} / {r['cpu_workers_s']:.0f} |\n"
        f"| peak memory (max RSS): trainer / largest worker | {r['peak_rss_parent_mb']:,} MB / "
        f"{r['peak_rss_worker_mb']:,} MB |\n"
        f"| fold-in scoring (`NboModel.score`), median / p99 per customer | **{r['foldin_median_us']} us** / "
        f"{r['foldin_p99_us']} us |\n\n"
        "Simulating the history is not timed (the log is written once and reused). Target: under 10 minutes "
        "from the raw history to a promoted model on 2 cores. ALS and the logistic layer train on an "
        f"importance subsample of 120,000 rows (at most half buyers, weighted to stand for the rest). Threads: "
        f"{r['threads']}. On a shared machine the wall times stretch with the load; the CPU seconds divided "
        "by the cores say what a quiet machine takes.\n\n"
    )
    doc = ROOT / "docs" / "BENCHMARKS.md"
    current = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    doc.write_text(updated, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
