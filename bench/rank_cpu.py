"""In-process CPU of ``decisioning.rank`` alone for one customer, with and without online evidence
for every product, segment and channel, on an exploit channel (call centre: calibration by the
posterior mean) and an explore channel (mobile: a Thompson draw and the Monte Carlo estimate of
its logged probabilities). The difference between the first two rows is the calibration step's
cost on every offer request once the stream has written evidence. Run it in two trees to compare
them on the same machine in the same minute; it writes the evidence in the stored form of the
tree it runs in (``[accepts, others, as_of_s, expected]`` with the ``*`` and ``@<channel>``
fields, or ``[accepts, others, as_of_s]`` in a tree before the multiplicative calibration).

    .venv/bin/python bench/rank_cpu.py [--calls 2000] [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.getcwd())  # the tree it is run from

import domain.learning  # noqa: E402
from decisioning import LoopParams, Policy, rank  # noqa: E402
from domain.catalog import load_catalog  # noqa: E402
from domain.learning import Evidence  # noqa: E402
from domain.state import CustomerState, Holding  # noqa: E402
from recommender.model import PriorModel  # noqa: E402

NOW_S = datetime(2026, 6, 10, 9, tzinfo=timezone.utc).timestamp()
DAY_S = 86_400.0


def evidence_for_every_product(catalog) -> dict[str, Evidence]:  # type: ignore[no-untyped-def]
    multiplicative = hasattr(domain.learning, "ALL_PRODUCTS")

    def value(accepts: float, others: float, expected: float) -> Evidence:
        if multiplicative:
            return Evidence(accepts, others, NOW_S - 3600, expected)
        return Evidence(accepts, others, NOW_S - 3600)

    evidence = {}
    for p in catalog.products:
        evidence[p.product_id] = value(30, 400, 25)
        for segment in "ABCDEFG":
            evidence[f"{p.product_id}|{segment}"] = value(8, 60, 6)
        if multiplicative:
            for channel in ("teller", "call_centre", "mobile"):
                evidence[f"{p.product_id}@{channel}"] = value(10, 130, 8)
    if multiplicative:
        n = len(catalog.products)
        evidence["*"] = value(30 * n, 400 * n, 25 * n)
        for channel in ("teller", "call_centre", "mobile"):
            evidence[f"*@{channel}"] = value(10 * n, 130 * n, 8 * n)
    return evidence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    catalog = load_catalog()
    model = PriorModel(catalog)
    state = CustomerState("C000000007", as_of_s=NOW_S - DAY_S, events_applied=5, birth_year=1980, risk_tolerance=4,
                          employment="salaried", balance_minor=50_000_000, last_balance_at_s=NOW_S - DAY_S,
                          vs_segment="B", value_tier="affluent")
    state.holdings = {"demand_deposit": Holding(1, NOW_S - 400 * DAY_S, NOW_S - 400 * DAY_S, 0.0)}
    evidence = evidence_for_every_product(catalog)
    explore = LoopParams(explore_channels=frozenset({"mobile"}))
    cases = {"call_centre, no evidence": ("call_centre", LoopParams(), {}),
             "call_centre, evidence": ("call_centre", LoopParams(), evidence),
             "mobile explore, no evidence": ("mobile", explore, {}),
             "mobile explore, evidence": ("mobile", explore, evidence)}
    results = {}
    for name, (channel, loop, found) in cases.items():
        for seed in range(300):  # warm the memos
            rank(state, model, catalog, Policy(), channel, NOW_S, 3, loop=loop, evidence=found, seed=seed)
        rounds = []
        for _ in range(args.rounds):
            began = time.process_time()
            for seed in range(args.calls):
                rank(state, model, catalog, Policy(), channel, NOW_S, 3, loop=loop, evidence=found, seed=seed)
            rounds.append((time.process_time() - began) / args.calls * 1e6)
        results[name] = {"us_per_rank_median": round(statistics.median(rounds), 1), "us_per_rank_min": round(min(rounds), 1)}
    for name, r in results.items():
        print(f"{name:30s} {r['us_per_rank_median']:7.1f} us (min {r['us_per_rank_min']:.1f})")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
