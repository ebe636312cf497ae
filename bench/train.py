"""Benchmark of training and scoring: training time and peak memory at 1,000,000 customers, and
the median fold-in scoring latency per customer.

Simulating and folding 1M customers x 30 days of events takes far longer than training (the
fold runs at ~10-20k events/s per core, see the "fold" line), so the 1M training set is made of
the rows of a smaller simulated population (``--base-customers``, folded for real), resampled
with replacement to ``--customers`` customers. The training set then has the real shape,
sparsity and label rate of 1M simulated customers; timing covers everything ``nbo train`` does
after the fold: stacking the windows, subsampling, implicit ALS, item-item cosine, the logistic
layer, and the after-purchase transitions (fitted on the resampled customers' purchases, in
order). Fold-in latency is ``NboModel.score`` on real customer states (median over customers).

    .venv/bin/python bench/train.py                     # 1M customers, updates docs/BENCHMARKS.md
    .venv/bin/python bench/train.py --customers 200000 --no-doc --json
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

from domain.catalog import load_catalog  # noqa: E402
from recommender.evaluation import fold_for_training, training_set  # noqa: E402
from recommender.matrix import read_lines, row_of  # noqa: E402
from recommender.after_purchase import transitions_from_arrays  # noqa: E402
from recommender.model import ModelParams, train_model  # noqa: E402
from simulator.bank import DEFAULT_START, write_jsonl  # noqa: E402

SECTION = "## bench/train.py"
DAY_S = 86_400.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--base-customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()
    catalog = load_catalog()
    params = ModelParams()
    window = params.window_days
    with tempfile.TemporaryDirectory(prefix="nbo-bench-train-") as tmp:
        events = Path(tmp) / "events.jsonl"
        summary = write_jsonl(events, catalog, args.base_customers, args.days, args.seed, progress=False)
        cutoff_s = DEFAULT_START.timestamp() + args.days * DAY_S
        t0 = time.perf_counter()
        split = fold_for_training(read_lines(events), cutoff_s, window, 2, DEFAULT_START.timestamp())
        fold_s = time.perf_counter() - t0
    base = training_set(split.folded, catalog, split.starts_s, window * DAY_S, None, params)
    c = args.base_customers
    n_windows = len(split.starts_s)
    rng = np.random.default_rng(args.seed)
    picks = rng.integers(0, c, args.customers)
    rows = np.concatenate([w * c + picks for w in range(n_windows)])
    x = base.x.x[rows]
    y = base.labels[rows]
    segments = [base.x.segments[r] for r in rows]
    single = np.array([not p.multi_hold for p in catalog.products])
    # The picked customers' purchases, each pick a customer of its own (arrays, as the fit takes them).
    customer_row = {cid: i for i, cid in enumerate(base.x.customer_ids[:c])}
    bought = [(customer_row[p.customer_id], catalog.index[p.product_id], p.at_s) for p in split.folded.purchases
              if p.customer_id in customer_row and p.product_id in catalog.index]
    base_rows, base_cols, base_times = (np.array(v) for v in zip(*bought))
    by_customer = np.argsort(base_rows, kind="stable")
    counts = np.bincount(base_rows, minlength=c)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    take = np.concatenate([by_customer[offsets[k]: offsets[k + 1]] for k in picks])
    pick_rows = np.repeat(np.arange(args.customers), counts[picks])
    rss_before = peak_rss_mb()
    t1 = time.perf_counter()
    transitions = transitions_from_arrays(pick_rows, base_cols[take], base_times[take], single,
                                          split.starts_s[-1] - window * DAY_S, cutoff_s, params.after_purchase_days)
    transitions_s = time.perf_counter() - t1
    model = train_model(x, y, segments, catalog.ids, base.x.token_ids, single, params, version="bench", seed=args.seed,
                        transitions=transitions)
    train_s = time.perf_counter() - t1
    # Fold-in scoring latency on real states at the cutoff.
    states = list(split.folded.states[-1].values())[:5000]
    inputs = [(row_of(s, cutoff_s), [(p, float(t)) for p, t in s.recent_purchases], s.value_tier) for s in states]
    timings = []
    for (held, tokens), recent, tier in inputs:
        t = time.perf_counter()
        model.score(held, tokens, recent, cutoff_s, tier)
        timings.append(time.perf_counter() - t)
    result = {
        "customers": args.customers,
        "rows": int(x.shape[0]),
        "nnz": int(x.nnz),
        "purchases": int(y.nnz),
        "columns": int(x.shape[1]),
        "train_s": round(train_s, 2),
        "transitions_s": round(transitions_s, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_train_mb": round(rss_before, 1),
        "foldin_median_us": round(1e6 * float(np.median(timings)), 1),
        "foldin_p99_us": round(1e6 * float(np.percentile(timings, 99)), 1),
        "fold_events_per_s": round(summary.events / fold_s),
        "base_customers": c,
        "threads": f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, implicit num_threads=0 (all cores)",
    }
    print(f"train {result['customers']:,} customers ({result['rows']:,} rows x {result['columns']} columns, "
          f"{result['nnz']:,} non-zeros, {result['purchases']:,} purchases): {train_s:.1f} s, "
          f"peak RSS {result['peak_rss_mb']:,.0f} MB (after-purchase transitions: {transitions_s:.1f} s of it)")
    print(f"fold-in score: median {result['foldin_median_us']} us, p99 {result['foldin_p99_us']} us per customer")
    print(f"fold of the event log (matrix input): {result['fold_events_per_s']:,} events/s")
    if not args.no_doc:
        update_doc(result, args)
        print("updated docs/BENCHMARKS.md")
    if args.json:
        print(json.dumps(result))
    return 0


def update_doc(r: dict, args: argparse.Namespace) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = (
        f"{SECTION}\n\n"
        f"Machine: {machine}. Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n"
        f"Command: `.venv/bin/python bench/train.py --customers {args.customers} --base-customers {args.base_customers}`\n\n"
        "| what | figure |\n|---|---|\n"
        f"| train {r['customers']:,} customers ({r['rows']:,} stacked rows x {r['columns']} columns, "
        f"{r['purchases']:,} purchases): ALS + item-item + logistic layer + after-purchase transitions "
        f"({r['transitions_s']:.1f} s) | **{r['train_s']:.1f} s** |\n"
        f"| peak memory (max RSS of the process) | {r['peak_rss_mb']:,.0f} MB |\n"
        f"| fold-in scoring (`NboModel.score`), median / p99 per customer | **{r['foldin_median_us']} us** / "
        f"{r['foldin_p99_us']} us |\n"
        f"| folding the event log into states (input of the matrix) | {r['fold_events_per_s']:,} events/s |\n\n"
        f"The 1M training set is {args.base_customers:,} simulated and folded customers' rows resampled with "
        "replacement (same shape, sparsity and label rate). ALS and the logistic layer train on an "
        "importance subsample of 120,000 rows (at most half buyers, weighted to stand for the rest). Threads: "
        f"{r['threads']}.\n"
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
