"""Benchmark of the simulator: throughput (events/s) of ``nbo simulate`` to a JSONL file, and a
check that the planted signal is learnable from the events alone.

The signal check reads only the written events (what a model sees), builds simple binary
features per customer (products held, hotline intents of the last 30 days, hotel tier, luxury
and foreign spend, large inflows, value tier, employment, age band), fits a co-occurrence lift
model on a training split inside the simulated days, and ranks products for the holdout window.
It reports NDCG@3 on held-out purchases for popularity, that lift model and the oracle (the
simulator's true propensities). Updates the "bench/simulate.py" section of docs/BENCHMARKS.md.

    .venv/bin/python bench/simulate.py                       # 200k x 30 throughput, 50k signal check
    .venv/bin/python bench/simulate.py --customers 1000000   # the 1M x 30 figure
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.catalog import load_catalog, value_tier_for_assets  # noqa: E402
from simulator.bank import DEFAULT_START, load_truth, write_jsonl  # noqa: E402

SECTION = "## bench/simulate.py"
LARGE_INFLOW_MINOR = 5_000_000  # 50,000 CNY


def features_at(path: Path, cutoff_s: float, window_s: float = 30 * 86400):
    """Binary features per customer from events strictly before ``cutoff_s`` and the purchases
    in [cutoff_s, cutoff_s + 14 days). Returns (features: dict[cust_idx, set[str]], purchases)."""
    feats: dict[int, set[str]] = defaultdict(set)
    balance: dict[int, int] = {}
    later: list[tuple[int, str]] = []
    label_end = cutoff_s + 14 * 86400
    for raw in open(path, "rb"):
        e = orjson.loads(raw)
        c = int(e["customer_id"][1:])
        at = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp()
        t = e["type"]
        if at >= cutoff_s:
            if t == "purchase" and at < label_end:
                later.append((c, e["product_id"]))
            continue
        recent = at >= cutoff_s - window_s
        f = feats[c]
        if t == "profile":
            f.add(f"emp:{e['employment']}")
            age = datetime.fromtimestamp(cutoff_s, timezone.utc).year - e["birth_year"]
            f.add(f"age:{min(age // 10, 7)}")
            f.add(f"risk:{e['risk_tolerance']}")
        elif t == "purchase":
            f.add(f"held:{e['product_id']}")
        elif t == "deposit":
            balance[c] = e["balance_after_minor"]
            if e["purpose"] in ("salary", "pension"):
                f.add(f"credit:{e['purpose']}")
            if recent and e["kind"] == "deposit" and e["amount_minor"] >= LARGE_INFLOW_MINOR and e["purpose"] in (
                    "transfer", "other") and e["channel"] != "counter":
                f.add("large_inflow")
        elif t == "hotline" and recent:
            f.add(f"intent:{e['intent']}")
        elif t == "pos":
            if e["hotel_stars"] >= 4:
                f.add(f"hotel:{e['hotel_stars']}")
            if e["luxury"]:
                f.add("luxury")
            if e["country"] != "CN":
                f.add("abroad")
            if recent and e["merchant_category"] in ("travel", "hotel"):
                f.add("recent_travel")
    for c, bal in balance.items():
        feats[c].add(f"tier:{value_tier_for_assets(bal)}")
    return feats, later


def lift_model(feats, purchases, n_customers: int, product_ids: tuple[str, ...], alpha: float = 20.0):
    """log P(p) + sum over features of log lift(p | f), smoothed toward P(p)."""
    index = {p: j for j, p in enumerate(product_ids)}
    vocab = sorted({f for fs in feats.values() for f in fs})
    fidx = {f: i for i, f in enumerate(vocab)}
    X = np.zeros((n_customers, len(vocab)), dtype=np.float32)
    for c, fs in feats.items():
        X[c, [fidx[f] for f in fs]] = 1
    Y = np.zeros((n_customers, len(product_ids)), dtype=np.float32)
    for c, p in purchases:
        Y[c, index[p]] = 1
    prior = (Y.sum(0) + 1) / (n_customers + len(product_ids))
    n_f = X.sum(0)
    n_fp = X.T @ Y
    cond = (n_fp + alpha * prior) / (n_f[:, None] + alpha)
    weights = np.log(cond / prior)
    return vocab, fidx, np.log(prior), weights


def score(feats, n_customers, fidx, log_prior, weights):
    X = np.zeros((n_customers, len(fidx)), dtype=np.float32)
    for c, fs in feats.items():
        cols = [fidx[f] for f in fs if f in fidx]
        X[c, cols] = 1
    return log_prior + X @ weights


def ndcg_at_3(scores: np.ndarray, labels: np.ndarray, exclude: np.ndarray) -> float:
    users = np.nonzero(labels.any(1))[0]
    s = np.where(exclude, -np.inf, scores)[users]
    top = np.argsort(-s, axis=1, kind="stable")[:, :3]
    gains = labels[users[:, None], top] / np.log2(np.arange(2, 5))
    ideal = np.array([(1 / np.log2(np.arange(2, 2 + min(k, 3)))).sum() for k in labels[users].sum(1)])
    return float((gains.sum(1) / ideal).mean())


def signal_check(customers: int, days: int, seed: int, workdir: Path) -> dict:
    catalog = load_catalog()
    out = workdir / "signal.jsonl"
    write_jsonl(out, catalog, customers, days, seed, progress=False)
    truth = load_truth(out.with_name("signal.truth.npz"))
    P = len(catalog)
    start_s = DEFAULT_START.timestamp()
    cutoff_s = start_s + days * 86400
    train_cut = cutoff_s - 14 * 86400
    train_feats, train_purchases = features_at(out, train_cut)
    _, fidx, log_prior, weights = lift_model(train_feats, train_purchases, customers, catalog.ids)
    test_feats, _ = features_at(out, cutoff_s)
    labels = np.zeros((customers, P), bool)
    labels[truth.holdout_pairs[:, 0], truth.holdout_pairs[:, 1]] = True
    multi = np.array([p.multi_hold for p in catalog.products])
    exclude = truth.held_at_cutoff & ~multi
    popularity = np.tile(log_prior, (customers, 1))
    model = score(test_feats, customers, fidx, log_prior, weights)
    result = {
        "customers": customers, "days": days, "labelled_customers": int(labels.any(1).sum()),
        "holdout_purchases": int(len(truth.holdout_pairs)),
        "ndcg3_popularity": ndcg_at_3(popularity, labels, exclude),
        "ndcg3_lift_model": ndcg_at_3(model, labels, exclude),
        "ndcg3_oracle": ndcg_at_3(truth.propensity, labels, exclude),
    }
    result["model_over_popularity"] = result["ndcg3_lift_model"] / result["ndcg3_popularity"]
    result["oracle_over_popularity"] = result["ndcg3_oracle"] / result["ndcg3_popularity"]
    return result


def throughput(customers: int, days: int, seed: int, workdir: Path) -> dict:
    out = workdir / "throughput.jsonl"
    t0 = time.perf_counter()
    summary = write_jsonl(out, load_catalog(), customers, days, seed, progress=True)
    elapsed = time.perf_counter() - t0
    return {"customers": customers, "days": days, "events": summary.events, "seconds": elapsed,
            "events_per_s": summary.events / elapsed, "bytes": out.stat().st_size,
            "truth_bytes": summary.truth_path.stat().st_size if summary.truth_path else 0}


def update_doc(text: str) -> None:
    doc = ROOT / "docs" / "BENCHMARKS.md"
    current = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    doc.write_text(updated, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--signal-customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-doc", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbo-bench-sim-") as tmp:
        tp = throughput(args.customers, args.days, args.seed, Path(tmp))
        print(f"throughput: {tp['events']:,} events in {tp['seconds']:.1f} s = {tp['events_per_s']:,.0f} events/s "
              f"({tp['bytes'] / 1e6:,.0f} MB JSONL, truth {tp['truth_bytes'] / 1e6:,.1f} MB)")
        sig = signal_check(args.signal_customers, 30, args.seed, Path(tmp))
        print(f"signal: NDCG@3 popularity {sig['ndcg3_popularity']:.3f}, lift model {sig['ndcg3_lift_model']:.3f} "
              f"({sig['model_over_popularity']:.2f}x), oracle {sig['ndcg3_oracle']:.3f} "
              f"({sig['oracle_over_popularity']:.2f}x); {sig['labelled_customers']:,} labelled customers")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = (
        f"{SECTION}\n\n"
        f"Machine: {machine}. Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n"
        f"Command: `.venv/bin/python bench/simulate.py --customers {args.customers} --days {args.days}`\n\n"
        f"| what | figure |\n|---|---|\n"
        f"| simulate {tp['customers']:,} customers x {tp['days']} days to JSONL (+ truth) | "
        f"{tp['events']:,} events in {tp['seconds']:.1f} s = **{tp['events_per_s']:,.0f} events/s** |\n"
        f"| output size | {tp['bytes'] / 1e6:,.0f} MB JSONL, {tp['truth_bytes'] / 1e6:,.1f} MB truth |\n"
        f"| peak memory (max RSS of the process) | {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:,.2f} GB |\n"
        f"| NDCG@3 on 14-day holdout, popularity ({sig['customers']:,} customers, {sig['labelled_customers']:,} "
        f"with purchases) | {sig['ndcg3_popularity']:.3f} |\n"
        f"| NDCG@3, co-occurrence lift model on the events (held products + behaviour tokens) | "
        f"{sig['ndcg3_lift_model']:.3f} ({sig['model_over_popularity']:.2f}x popularity) |\n"
        f"| NDCG@3, oracle (true propensities) | {sig['ndcg3_oracle']:.3f} "
        f"({sig['oracle_over_popularity']:.2f}x popularity) |\n\n"
        "Held single-hold products are excluded from every ranking. The lift model is a deliberately\n"
        "simple check that the planted signal can be learned from the events alone; it is not the engine's model.\n"
    )
    if not args.no_doc:
        update_doc(text)
        print("updated docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
