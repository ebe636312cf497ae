"""Redis memory per customer: a simulated population folded into Valkey through the real store.

``simulator.bank.Simulator`` (``--customers`` x ``--days``) gives the traffic; it is applied with
``adapters.redis_store.RedisStateStore.apply_batch`` in 2,000-record batches, as the worker does,
each (topic, partition) getting its own increasing offsets. The store's clock is the simulated
day's end, so each customer's ``seen`` set (event ids for redelivery checks, kept
``NBO_STREAM__DEDUPE_TTL_S``, 7 days) holds what it would in production: the last week's ids.
Then, per customer (all of them, or a ``--sample``): ``MEMORY USAGE`` (``SAMPLES 0``, exact) of
the state hash and of the seen set, and the state JSON's length; and ``INFO memory``'s
``used_memory`` before and after, per customer. Embedded Valkey unless ``NBO_REDIS__URL`` is set
(then a fresh key prefix is used and only that prefix is measured by key).

Usage: ``python bench/redis_memory.py [--customers 20000] [--days 30] [--sample 0] [--json]
[--write-doc]``. The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from domain.catalog import load_catalog  # noqa: E402
from domain.features import FeatureParams  # noqa: E402
from simulator.bank import TYPE_NAMES, Simulator  # noqa: E402
from schemas.codec import decode  # noqa: E402
from schemas.topics import TOPIC_FOR_TYPE  # noqa: E402
from adapters import keys  # noqa: E402
from adapters.ports import SourcedEvent  # noqa: E402
from adapters.decision_cache import encode_decision  # noqa: E402
from adapters.redis_store import RedisStateStore  # noqa: E402
from bootstrap.settings import load_settings  # noqa: E402
from services.runtime import start_valkey  # noqa: E402

BATCH = 2_000
PARTITIONS = 8


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def fold(store: RedisStateStore, customers: int, days: int, seed: int) -> tuple[int, float, set[str]]:
    """Apply the simulated traffic; returns (events, seconds, customer ids)."""
    params = FeatureParams()
    offsets: dict[tuple[str, int], int] = {}
    ids: set[str] = set()
    events = 0
    started = time.perf_counter()
    for batch in Simulator(load_catalog(), customers, seed).run(days):
        sourced: list[SourcedEvent] = []
        latest = 0.0
        for record, type_code in zip(batch.records, batch.types.tolist()):
            event = decode(record)
            topic = TOPIC_FOR_TYPE[TYPE_NAMES[type_code]]
            partition = zlib.crc32(event.customer_id.encode()) % PARTITIONS
            offset = offsets.get((topic, partition), 0)
            offsets[(topic, partition)] = offset + 1
            sourced.append(SourcedEvent(event, topic, partition, offset))
            latest = max(latest, event.occurred_at.timestamp())
            ids.add(event.customer_id)
        for first in range(0, len(sourced), BATCH):
            store.apply_batch(sourced[first:first + BATCH], params, latest)  # now = the simulated day's end
        events += len(sourced)
        log(f"  {events:,} events folded, {len(ids):,} customers")
    return events, time.perf_counter() - started, ids


def percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[int]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 1), "p50": percentile(values, 0.5),
            "p99": percentile(values, 0.99), "max": max(values)}


def measure(store: RedisStateStore, ids: list[str]) -> dict[str, dict[str, float]]:
    client = store.client
    state, seen, json_len, seen_ids = [], [], [], []
    for first in range(0, len(ids), 500):
        chunk = ids[first:first + 500]
        pipe = client.pipeline(transaction=False)
        for customer in chunk:
            pipe.memory_usage(store.state_key(customer), samples=0)
            pipe.memory_usage(keys.seen_key(store.prefix, customer), samples=0)
            pipe.hstrlen(store.state_key(customer), "state")
            pipe.zcard(keys.seen_key(store.prefix, customer))
        replies = pipe.execute()
        for i in range(len(chunk)):
            s, z, j, n = replies[4 * i: 4 * i + 4]
            state.append(int(s or 0))
            seen.append(int(z or 0))
            json_len.append(int(j or 0))
            seen_ids.append(int(n or 0))
    both = [a + b for a, b in zip(state, seen)]
    return {"state_key_bytes": summary(state), "seen_key_bytes": summary(seen), "state_json_bytes": summary(json_len),
            "seen_ids": summary(seen_ids), "keys_bytes": summary(both)}


def decision_keys(store: RedisStateStore, count: int = 2_000) -> dict[str, float]:
    """``MEMORY USAGE`` of remembered decisions, written as the offer API's decision cache writes
    them (``SET <prefix>:decision:<id> <json> PX <window>``, id "d-" + 32 hex digits), three offers each."""
    client = store.client
    pipe = client.pipeline(transaction=False)
    names = [keys.decision_key(store.prefix, f"d-{uuid.uuid4().hex}") for _ in range(count)]
    for i, name in enumerate(names):
        pipe.execute_command("SET", name, encode_decision(f"C{i:09d}", "call_centre",
                                                          ("fund_sip", "credit_card", "term_deposit"), time.time()),
                             "PX", 24 * 3600 * 1000)
    pipe.execute()
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
    return summary([int(n) for n in pipe.execute()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sample", type=int, default=0, help="customers measured by key (0: all)")
    parser.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    parser.add_argument("--write-doc", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()

    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="nbo-redis-mem-") as tmp:
        proc = None
        url = settings.redis.url
        if url is None:
            proc, url = start_valkey(Path(tmp) / "redis")
        prefix = "mem" + uuid.uuid4().hex[:6]
        store = RedisStateStore(url, prefix, settings.stream.dedupe_ttl_s, cache_size=settings.stream.state_cache_size,
                                mode=settings.redis.mode)
        try:
            before = int(store.client.info("memory")["used_memory"])
            log(f"folding {args.customers:,} customers x {args.days} days through the store ...")
            events, seconds, ids = fold(store, args.customers, args.days, args.seed)
            info = store.client.info("memory")
            after = int(info["used_memory"])  # before the decisions below
            chosen = sorted(ids)
            if args.sample and args.sample < len(chosen):
                chosen = random.Random(args.seed).sample(chosen, args.sample)
            per_key = measure(store, chosen)
            per_key["decision_key_bytes"] = decision_keys(store)
            encodings = {"state": store.client.object("encoding", store.state_key(chosen[0])).decode(),
                         "seen": store.client.object("encoding", keys.seen_key(store.prefix, chosen[0])).decode()}
            server = store.client.info("server")
        finally:
            store.close()
            if proc is not None:
                proc.stop()
    result = {
        "customers": len(ids), "days": args.days, "events": events, "events_per_customer": round(events / len(ids), 1),
        "fold_events_per_s": round(events / seconds, 1), "measured_customers": len(chosen),
        "used_memory_per_customer_bytes": round((after - before) / len(ids), 1),
        "used_memory_bytes": after, "used_memory_before_bytes": before,
        "mem_fragmentation_ratio": info.get("mem_fragmentation_ratio"),
        "server": f"{server.get('server_name', 'redis')} {server.get('valkey_version', server.get('redis_version'))}",
        "encodings": encodings, **per_key,
    }
    if args.write_doc:
        write_doc(result, "python bench/redis_memory.py " + " ".join(sys.argv[1:]))
    print(json.dumps(result))
    return 0


def write_doc(r: dict, command: str) -> None:
    row = lambda name, s: f"| {name} | {s['mean']:,.0f} | {s['p50']:,} | {s['p99']:,} | {s['max']:,} |"  # noqa: E731
    lines = [
        "## bench/redis_memory.py", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {r['server']}. "
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Command: `{command}` ({r['customers']:,} simulated customers x {r['days']} days = {r['events']:,} events, "
        f"{r['events_per_customer']} per customer, folded through `RedisStateStore.apply_batch` in 2,000-record "
        "batches with the simulated day as the store's clock)", "",
        "| per customer, bytes | mean | p50 | p99 | max |", "|---|---|---|---|---|",
        row("`MEMORY USAGE` state hash (state JSON, version, offsets)", r["state_key_bytes"]),
        row("`MEMORY USAGE` seen set (event ids of the last 7 days)", r["seen_key_bytes"]),
        row("both keys", r["keys_bytes"]),
        row("state JSON alone", r["state_json_bytes"]),
        row("event ids in the seen set", r["seen_ids"]),
        row("a remembered decision (offer API, 3 offers, kept `NBO_API__OUTCOME_WINDOW_S`)", r["decision_key_bytes"]),
        "",
        "The decision row is per decision, not per customer. "
        f"`INFO memory` `used_memory` grew by **{r['used_memory_per_customer_bytes']:,.0f} bytes per customer** "
        f"(the keys plus the keyspace's own tables; fragmentation ratio {r['mem_fragmentation_ratio']}). Encodings: "
        f"state {r['encodings']['state']}, seen {r['encodings']['seen']}. Fold rate (one process, informative only): "
        f"{r['fold_events_per_s']:,.0f} events/s. docs/CAPACITY.md sizes Redis from these figures.", "",
    ]
    write_section("## bench/redis_memory.py", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
