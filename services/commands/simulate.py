"""``nbo simulate``: write simulated bank traffic to a JSONL file and/or the Kafka topics, plus
the ground truth for offline evaluation.

    nbo simulate --customers 1000 --days 7 --seed 1 --out events.jsonl
    nbo simulate --customers 1000 --days 7 --start now --to-kafka

The same seed, size and start write the same bytes. Every event is validated against the
contract before it is written or published (``--validate-every`` samples on very large runs).
The truth goes to ``<out>.truth.npz`` (+ ``.truth.json``), see ``simulator.bank``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping


from bootstrap import catalog as served_catalog
from bootstrap.connections import kafka_python_options
from bootstrap.settings import CATALOG_OPTION_HELP as CATALOG_HELP, load_settings
from domain.catalog import CatalogError
from simulator.bank import DEFAULT_HOLDOUT_DAYS, DEFAULT_START, TYPE_NAMES, EventBatch, write_jsonl
from schemas.codec import InvalidEvent, decode, encode
from schemas.events import MAX_CLOCK_SKEW_S, Event
from schemas.topics import TOPIC_FOR_TYPE, partition_key

#: Runs with more customer-days than this validate a sample of events unless told otherwise.
FULL_VALIDATION_LIMIT = 2_000_000
_SAMPLE_EVERY = 97


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=int, default=1000, help="customers to simulate (default 1000)")
    parser.add_argument("--days", type=int, default=7, help="days of behaviour before the cutoff (default 7)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same bytes (default 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSONL file to write, one event a line (default: none; give --out, --to-kafka or both)")
    parser.add_argument("--holdout-days", type=int, default=DEFAULT_HOLDOUT_DAYS,
                        help=f"days after the cutoff whose purchases are the labels (default {DEFAULT_HOLDOUT_DAYS})")
    parser.add_argument("--start", default=DEFAULT_START.date().isoformat(),
                        help="first simulated day, YYYY-MM-DD or ISO time (UTC if no zone), or 'now' for "
                             "traffic that ends now (default %(default)s)")
    parser.add_argument("--truth", type=Path, default=None, help="truth file (default <out>.truth.npz)")
    parser.add_argument("--catalog", type=Path, default=None, help=CATALOG_HELP)
    parser.add_argument("--to-kafka", action="store_true",
                        help="publish the events to the Kafka topics (default: off)")
    parser.add_argument("--bootstrap", default=None, help="Kafka host:port (default NBO_KAFKA__BOOTSTRAP)")
    parser.add_argument("--validate-every", type=int, default=0,
                        help="validate every Nth event (1 = all; default: all up to "
                             f"{FULL_VALIDATION_LIMIT:,} customer-days, else every {_SAMPLE_EVERY}th)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (default: a progress bar on stderr)")


def parse_start(value: str, days: int, now: datetime) -> datetime:
    """``now`` -> ``now - days`` (traffic ending now); a date or ISO time -> that instant (UTC if naive)."""
    if value == "now":
        return now.astimezone(timezone.utc).replace(microsecond=0) - timedelta(days=days)
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--start must be YYYY-MM-DD, an ISO time or 'now', got {value!r}") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return start.astimezone(timezone.utc)


def publish(events: Iterable[Event | bytes | str], bootstrap: str, *, flush_timeout_s: float = 60.0,
            connection: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Publish events to their topics (``TOPIC_FOR_TYPE``), keyed by customer id, ``acks=all``;
    flushes before returning. Accepts event models or encoded JSON (validated first).
    Returns the count per topic. ``connection``: the producer's security arguments
    (``bootstrap.connections.kafka_python_options``)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024,
                             max_in_flight_requests_per_connection=1, retries=5, client_id="nbo-simulate",
                             **(connection or {}))
    counts: Counter[str] = Counter()
    futures = []
    try:
        for item in events:
            event = item if isinstance(item, Event) else decode(item.encode("utf-8") if isinstance(item, str) else item)
            topic = TOPIC_FOR_TYPE[event.type]  # type: ignore[attr-defined]
            value = item.encode("utf-8") if isinstance(item, str) else item if isinstance(item, bytes) else encode(event)
            futures.append(producer.send(topic, key=partition_key(event.customer_id), value=value))
            counts[topic] += 1
            if len(futures) >= 10_000:
                _settle(producer, futures, flush_timeout_s)
        _settle(producer, futures, flush_timeout_s)
    finally:
        producer.close(timeout=10)
    return dict(counts)


def _publish_batches(bootstrap: str, flush_timeout_s: float = 60.0,  # type: ignore[no-untyped-def]
                     connection: Mapping[str, Any] | None = None):
    """A producer for ``EventBatch``es (already validated); returns (on_batch, close) callables."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024,
                             max_in_flight_requests_per_connection=1, retries=5, client_id="nbo-simulate",
                             **(connection or {}))
    counts: Counter[str] = Counter()
    topics = [TOPIC_FOR_TYPE[name] for name in TYPE_NAMES]
    futures: list = []

    def on_batch(batch: EventBatch) -> None:
        for record, type_code, cust in zip(batch.records, batch.types.tolist(), batch.customers.tolist()):
            topic = topics[type_code]
            futures.append(producer.send(topic, key=partition_key(f"C{cust:09d}"), value=record))
            counts[topic] += 1
            if len(futures) >= 10_000:
                _settle(producer, futures, flush_timeout_s)

    def close() -> dict[str, int]:
        try:
            _settle(producer, futures, flush_timeout_s)
        finally:
            producer.close(timeout=10)
        return dict(counts)

    return on_batch, close


def _settle(producer, futures: list, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    producer.flush(timeout=timeout_s)
    for future in futures:
        future.get(timeout=timeout_s)  # raises the broker's error if a send failed
    futures.clear()


def _validator(every: int):  # type: ignore[no-untyped-def]
    def check(batch: EventBatch) -> None:
        for record in batch.records[::every]:
            decode(record)
    return check


def run(args: argparse.Namespace) -> int:
    if args.out is None and not args.to_kafka:
        print("nbo simulate: give --out FILE, --to-kafka, or both", file=sys.stderr)
        return 2
    if args.customers < 1 or args.days < 0 or args.holdout_days < 0 or args.seed < 0:
        print("nbo simulate: --customers must be >= 1; --days, --holdout-days and --seed >= 0", file=sys.stderr)
        return 2
    now = datetime.now(timezone.utc)
    try:
        start = parse_start(args.start, args.days, now)
        catalog = served_catalog(load_settings(), args.catalog)
    except (ValueError, CatalogError) as exc:
        print(f"nbo simulate: {exc}", file=sys.stderr)
        return 2
    end = start + timedelta(days=args.days)
    if (end - now).total_seconds() > MAX_CLOCK_SKEW_S:
        print(f"nbo simulate: the simulated days end {end.isoformat()}, in the future; events would be refused. "
              "Use an earlier --start or --start now.", file=sys.stderr)
        return 2

    every = args.validate_every or (1 if args.customers * max(args.days, 1) <= FULL_VALIDATION_LIMIT else _SAMPLE_EVERY)
    check = _validator(every)
    sinks = [check]
    close_kafka = None
    if args.to_kafka:
        kafka = load_settings().kafka
        bootstrap = args.bootstrap or kafka.bootstrap
        if not bootstrap:
            print("nbo simulate: --to-kafka needs --bootstrap or NBO_KAFKA__BOOTSTRAP", file=sys.stderr)
            return 2
        on_batch, close_kafka = _publish_batches(bootstrap, connection=kafka_python_options(kafka))
        sinks.append(on_batch)

    def on_batch_all(batch: EventBatch) -> None:
        for sink in sinks:
            sink(batch)

    t0 = time.perf_counter()
    try:
        summary = write_jsonl(args.out, catalog, args.customers, args.days, args.seed, start=start,
                              holdout_days=args.holdout_days, truth_path=args.truth, progress=not args.quiet,
                              on_batch=on_batch_all)
    except InvalidEvent as exc:
        print(f"nbo simulate: the simulator produced an invalid event ({exc}); nothing more written", file=sys.stderr)
        if args.out is not None:
            args.out.unlink(missing_ok=True)
        return 1
    finally:
        per_topic = close_kafka() if close_kafka is not None else None
    elapsed = time.perf_counter() - t0
    checked = "all" if every == 1 else f"every {every}th"
    print(f"{summary.events:,} events ({checked} validated) in {elapsed:.1f} s, "
          f"{summary.events / max(elapsed, 1e-9):,.0f} events/s; start {start.isoformat()}, cutoff {end.isoformat()}")
    for name, count in summary.events_by_type.items():
        print(f"  {name:<9} {count:>12,}")
    if args.out is not None:
        print(f"events  {args.out}")
    if summary.truth_path is not None:
        print(f"truth   {summary.truth_path} (+ {summary.truth_path.with_suffix('.json').name})")
    if per_topic is not None:
        print(f"published to {bootstrap}:")
        for topic, count in sorted(per_topic.items()):
            print(f"  {topic:<20} {count:>12,}")
    return 0


def read_jsonl(path: Path) -> Iterable[bytes]:
    """The lines of a JSONL events file (for ``publish``)."""
    with open(path, "rb") as handle:
        for line in handle:
            line = line.rstrip(b"\n")
            if line:
                yield line


__all__ = ["add_arguments", "run", "publish", "parse_start", "read_jsonl"]
