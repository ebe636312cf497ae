"""Every customer's decision on every channel, for a fixed simulated population, as JSON; and a
comparison of two such files. Shows whether a change to the code moved any ranking.

    .venv/bin/python bench/compare_decisions.py --out after.json          # this tree
    (cd /other/tree && .venv/bin/python /path/to/bench/compare_decisions.py --out before.json)
    .venv/bin/python bench/compare_decisions.py --compare before.json after.json

For ``--seed`` it simulates ``--customers`` x ``--days`` (``write_jsonl``, the same bytes for the
same seed in any tree), folds the log, trains one model on the ``--windows`` x 14-day windows
before the cutoff (``train_at``, seed 0), and ranks every customer at the cutoff with the
shipped levers file on the teller, call centre and mobile channels (3 offers each). A decision
is the product ids in order with their scores (9 significant digits), the service action and the
degraded flag. ``--similar-weight`` sets the model's ``similar_weight`` and, in a tree whose
policy still has its own ``similar_weight`` (the chain used that one), the policy's too, so both
trees rank with the same weight.

Runs unchanged in the layered tree (``domain``, ``decisioning``, ``simulator``) and in the one
before it (``recommender.catalog``, ``recommender.decisioning``, ``recommender.simulator``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, os.getcwd())  # the tree it is run from, whichever tree holds this file

try:  # the layered tree
    from decisioning import load_policy, rank
    from domain.catalog import load_catalog
    from simulator.bank import DEFAULT_START, write_jsonl

    LAYOUT = "layered"
except ImportError:  # the tree before the re-layout
    from recommender.catalog import load_catalog  # type: ignore[no-redef]
    from recommender.decisioning import load_policy, rank  # type: ignore[no-redef]
    from recommender.simulator import DEFAULT_START, write_jsonl  # type: ignore[no-redef]

    LAYOUT = "recommender"
from recommender.evaluation import fold_for_training, train_at  # noqa: E402
from recommender.matrix import read_lines  # noqa: E402
from recommender.model import ModelParams  # noqa: E402

CHANNELS = ("teller", "call_centre", "mobile")
WINDOW_DAYS = 14.0


def decisions(customers: int, days: int, seed: int, similar_weight: float, windows: int = 2,
              limit: int = 3) -> dict:
    t0 = time.perf_counter()
    catalog = load_catalog()
    with tempfile.TemporaryDirectory(prefix="nbo-compare-") as tmp:
        events = Path(tmp) / "events.jsonl"
        write_jsonl(events, catalog, customers, days, seed, progress=False)
        cutoff_s = (DEFAULT_START + timedelta(days=days)).timestamp()
        split = fold_for_training(read_lines(events), cutoff_s, WINDOW_DAYS, windows, DEFAULT_START.timestamp())
    params = ModelParams(similar_weight=similar_weight)
    model, _ = train_at(split, catalog, params, WINDOW_DAYS, version="compare", seed=0)
    policy = load_policy()
    pinned_policy = "similar_weight" in {f.name for f in dataclasses.fields(policy)}
    if pinned_policy:  # this tree's chain weights the boost with the policy's own knob: pin it too
        policy = dataclasses.replace(policy, similar_weight=similar_weight)
    states = split.folded.states[split.folded.cutoffs_s.index(cutoff_s)]
    out: dict[str, dict[str, dict]] = {}
    for customer_id in sorted(states):
        state = states[customer_id]
        out[customer_id] = {}
        for channel in CHANNELS:
            decision = rank(state, model, catalog, policy, channel, cutoff_s, limit)
            out[customer_id][channel] = {
                "offers": [[o.product.product_id, float(f"{o.score:.9g}")] for o in decision.offers],
                "service_action": decision.service_action, "degraded": decision.degraded,
            }
    return {
        "meta": {"layout": LAYOUT, "customers": customers, "days": days, "seed": seed, "windows": windows,
                 "limit": limit, "similar_weight": similar_weight, "policy_weight_pinned": pinned_policy,
                 "cutoff": datetime.fromtimestamp(cutoff_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "states": len(states),
                 "seconds": round(time.perf_counter() - t0, 1)},
        "decisions": out,
    }


def compare(before: dict, after: dict) -> dict:
    """Decisions compared (customer x channel present in both) and how many differ: in the
    product ids or their order, and in ids, order or any score."""
    a, b = before["decisions"], after["decisions"]
    compared = order_differs = any_differs = 0
    examples = []
    for customer_id in sorted(set(a) & set(b)):
        for channel in sorted(set(a[customer_id]) & set(b[customer_id])):
            x, y = a[customer_id][channel], b[customer_id][channel]
            compared += 1
            ids_x, ids_y = [p for p, _ in x["offers"]], [p for p, _ in y["offers"]]
            if ids_x != ids_y or x["service_action"] != y["service_action"]:
                order_differs += 1
                if len(examples) < 5:
                    examples.append({"customer_id": customer_id, "channel": channel, "before": x, "after": y})
            if x != y:
                any_differs += 1
    return {"compared": compared, "only_before": len(set(a) - set(b)), "only_after": len(set(b) - set(a)),
            "ids_or_order_differ": order_differs, "anything_differs": any_differs, "examples": examples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--similar-weight", type=float, default=ModelParams().similar_weight,
                        help="the model's similar_weight (and the policy's, where it has one)")
    parser.add_argument("--out", type=Path, help="write the decisions here")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="compare two files")
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(p.read_text(encoding="utf-8")) for p in args.compare)
        result = compare(before, after)
        result["before"], result["after"] = before["meta"], after["meta"]
        print(json.dumps(result, indent=2))
        return 0
    if args.out is None:
        parser.error("--out or --compare is needed")
    result = decisions(args.customers, args.days, args.seed, args.similar_weight, args.windows)
    args.out.write_text(json.dumps(result, sort_keys=True) + "\n", encoding="utf-8")
    meta = result["meta"]
    print(f"{meta['states']:,} customers x {len(CHANNELS)} channels ranked ({meta['layout']} layout, "
          f"similar_weight {meta['similar_weight']}, policy pinned: {meta['policy_weight_pinned']}) "
          f"in {meta['seconds']} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
