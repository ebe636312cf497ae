"""Rebuild every customer's state from the log into a fresh Redis namespace, and switch to it.

``replay`` reads every partition of every input topic from the beginning (a plain consumer
without a group: it commits nothing and disturbs no worker) and applies the records through
the same ``split_batch`` and ``RedisStateStore.apply_batch`` as the workers, so the rebuilt state
carries the same per-partition offsets and is what a live worker would have written. It stops
when no record arrived for ``idle_s`` (end offsets are not trusted: some brokers report them
wrong).

``switch`` moves the rebuilt keys over the live namespace key by key (``RENAME`` within one
customer's hash-tag slot, so it works on Redis Cluster) and deletes live customers the log does
not know. Stop the workers before switching and start them after: they resume from their
committed offsets, and the store skips what the replay already applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from domain.features import FeatureParams
from schemas.topics import INPUT_TOPICS
from adapters import keys
from streams.core import KnownProducts, split_batch
from adapters.redis_store import RedisStateStore


@dataclass
class ReplayResult:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    customers: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)


def replay(bootstrap: str, redis_url: str, prefix: str, params: FeatureParams, *, idle_s: float = 2.0,
           batch_size: int = 2000, topics: tuple[str, ...] = INPUT_TOPICS, fresh: bool = True,
           products: KnownProducts | None = None) -> ReplayResult:
    """Fold the whole log into namespace ``prefix``; with ``fresh``, refuse a non-empty one.
    ``products``: the catalog's ids, refused as the workers refuse them; ``reasons`` counts the
    refused records by their (masked) reason."""
    from kafka import KafkaConsumer, TopicPartition

    store = RedisStateStore(redis_url, prefix)
    if fresh and next(iter(store.customer_ids()), None) is not None:
        store.close()
        raise ValueError(f"namespace {prefix!r} already holds customer state; choose another --prefix")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=100, max_poll_records=batch_size)
    result = ReplayResult()
    started = time.perf_counter()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        last_record_at = time.monotonic()
        while time.monotonic() - last_record_at < idle_s:
            polled = consumer.poll(timeout_ms=200, max_records=batch_size)
            raw = [(r.topic, r.partition, r.offset, r.key, r.value) for records in polled.values() for r in records]
            if not raw:
                continue
            last_record_at = time.monotonic()
            good, bad = split_batch(raw, products)
            result.records += len(raw)
            result.dead_letters += len(bad)
            for letter in bad:
                result.reasons[letter.reason] = result.reasons.get(letter.reason, 0) + 1
            if good:
                applied = store.apply_batch(good, params, time.time())
                result.applied += applied.applied
                result.duplicates += applied.duplicates + applied.redelivered
        store.count("dead_letters", result.dead_letters)
        result.customers = sum(1 for _ in store.customer_ids())
    finally:
        consumer.close()
        store.close()
    result.seconds = time.perf_counter() - started
    return result


def switch(redis_url: str, new_prefix: str, live_prefix: str) -> int:
    """Move namespace ``new_prefix`` over ``live_prefix``; returns the customers now live."""
    import redis

    if new_prefix == live_prefix:
        raise ValueError("the rebuilt and the live namespace are the same")
    client = redis.Redis.from_url(redis_url)
    try:
        live = {_customer(k) for k in client.scan_iter(match=keys.customer_pattern(live_prefix), count=1000)}
        moved: set[str] = set()
        pipe = client.pipeline(transaction=False)
        for key in client.scan_iter(match=keys.customer_pattern(new_prefix), count=1000):
            customer_id = _customer(key)
            moved.add(customer_id)
            pipe.rename(keys.state_key(new_prefix, customer_id), keys.state_key(live_prefix, customer_id))
            pipe.delete(keys.seen_key(live_prefix, customer_id))
            if client.exists(keys.seen_key(new_prefix, customer_id)):
                pipe.rename(keys.seen_key(new_prefix, customer_id), keys.seen_key(live_prefix, customer_id))
            if len(pipe) >= 1000:
                pipe.execute()
        for customer_id in live - moved:
            pipe.delete(keys.state_key(live_prefix, customer_id), keys.seen_key(live_prefix, customer_id))
        if client.exists(keys.stats_key(new_prefix)):
            pipe.rename(keys.stats_key(new_prefix), keys.stats_key(live_prefix))
        pipe.execute()
        return len(moved)
    finally:
        client.close()


def _customer(key: bytes) -> str:
    text = key.decode()
    return text[text.index("{") + 1:text.index("}")]
