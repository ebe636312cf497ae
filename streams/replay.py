"""Rebuild every customer's state from the log into a fresh Redis namespace, and switch to it.

``replay`` reads every partition of every input topic from the beginning (a plain consumer
without a group: it commits nothing and disturbs no worker) and applies the records through
the same ``split_batch`` and ``RedisStateStore.apply_batch`` as the workers, so the rebuilt state
carries the same per-partition offsets and is what a live worker would have written. It stops
when no record arrived for ``idle_s`` (end offsets are not trusted: some brokers report them
wrong).

``switch`` moves the rebuilt keys over the live namespace key by key and deletes live customers
the log does not know. Every command of it touches one slot, so it works on a Redis Cluster
as on one server: a customer's rebuilt and live keys share the customer's hash tag
(``RENAME nbo-replay:{C1}:state nbo:{C1}:state`` stays in one slot), the keys are found by SCAN
over every primary, and the counters hash, one key per namespace in slots of their own, is
copied (read, then replaced in one transaction on the live key) rather than renamed. Stop the
workers before switching and start them after: they resume from their committed offsets, and
the store skips what the replay already applied.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from domain.features import FeatureParams
from schemas.rules import DEFAULT_RULES, ContractRules
from schemas.topics import INPUT_TOPICS
from adapters import keys
from streams.core import KnownProducts, split_batch
from adapters.redis_connect import (
    NO_SECURITY,
    Mode,
    RedisSecurity,
    cluster_errors_as_unavailable,
    connect,
    is_cluster,
    scan_keys,
)
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
           products: KnownProducts | None = None, mode: Mode = "auto", kafka_options: Mapping[str, Any] | None = None,
           security: RedisSecurity = NO_SECURITY, contract: ContractRules = DEFAULT_RULES) -> ReplayResult:
    """Fold the whole log into namespace ``prefix``; with ``fresh``, refuse a non-empty one.
    ``products``: the catalog's ids, refused as the workers refuse them; ``contract``: the bank's
    contract rules, and ``params.rates`` the conversion into the base currency, both as the
    workers apply them; ``reasons`` counts the
    refused records by their (masked) reason. ``mode``: the Redis client's (``auto``: ask the
    server whether it is a cluster node)."""
    from kafka import KafkaConsumer, TopicPartition

    # No outbox: the loop's counters and evidence were added live, once; a rebuild adds nothing.
    store = RedisStateStore(redis_url, prefix, mode=mode, security=security, outbox=False)
    if fresh and next(iter(store.customer_ids()), None) is not None:
        store.close()
        raise ValueError(f"namespace {prefix!r} already holds customer state; choose another --prefix")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=100, max_poll_records=batch_size,
                             **(kafka_options or {}))
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
            good, bad = split_batch(raw, products, rules=contract, rates=params.rates)
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


def switch(redis_url: str, new_prefix: str, live_prefix: str, mode: Mode = "auto",
           security: RedisSecurity = NO_SECURITY) -> int:
    """Move namespace ``new_prefix`` over ``live_prefix``; returns the customers now live."""
    if new_prefix == live_prefix:
        raise ValueError("the rebuilt and the live namespace are the same")
    client = connect(redis_url, mode, security=security)
    try:
        with cluster_errors_as_unavailable() if is_cluster(client) else contextlib.nullcontext():
            return _switch(client, new_prefix, live_prefix)
    finally:
        client.close()


def _switch(client: Any, new_prefix: str, live_prefix: str) -> int:
    live = {_customer(k) for k in scan_keys(client, keys.customer_pattern(live_prefix))}
    moved: set[str] = set()
    pipe = client.pipeline(transaction=False)
    may_be_missing: list[bool] = []  # per queued command: may it answer "no such key"?
    for key in scan_keys(client, keys.customer_pattern(new_prefix)):
        customer_id = _customer(key)
        moved.add(customer_id)
        pipe.execute_command("RENAME", keys.state_key(new_prefix, customer_id),
                             keys.state_key(live_prefix, customer_id))
        pipe.execute_command("DEL", keys.seen_key(live_prefix, customer_id))
        # A customer whose seen ids all expired has no seen key: that RENAME answers "no such key".
        pipe.execute_command("RENAME", keys.seen_key(new_prefix, customer_id), keys.seen_key(live_prefix, customer_id))
        may_be_missing += [False, False, True]
        if len(may_be_missing) >= 1000:
            _execute(pipe, may_be_missing)
    for customer_id in live - moved:
        pipe.execute_command("DEL", keys.state_key(live_prefix, customer_id), keys.seen_key(live_prefix, customer_id))
        may_be_missing.append(False)
    _execute(pipe, may_be_missing)
    counters = client.hgetall(keys.stats_key(new_prefix))
    if counters:
        replace = client.pipeline(transaction=True)  # one key: one slot, one transaction
        replace.execute_command("DEL", keys.stats_key(live_prefix))
        replace.hset(keys.stats_key(live_prefix), mapping=counters)
        replace.execute()
        client.delete(keys.stats_key(new_prefix))
    return len(moved)


def _execute(pipe: Any, may_be_missing: list[bool]) -> None:
    """Run the queued commands; any error but a seen key that is not there stops the switch."""
    if not may_be_missing:
        return
    outcomes = pipe.execute(raise_on_error=False)
    for tolerated, outcome in zip(may_be_missing, outcomes):
        if isinstance(outcome, Exception) and not (tolerated and "no such key" in str(outcome).lower()):
            raise outcome
    may_be_missing.clear()


def _customer(key: bytes) -> str:
    text = key.decode()
    return text[text.index("{") + 1:text.index("}")]
