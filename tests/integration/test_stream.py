"""The customer-state store against a real Redis, and the worker plus replay against the real
broker: what the offer API reads is what the worker wrote, and a replay of the log rebuilds it."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from kafka import KafkaProducer

from domain.catalog import load_catalog
from domain.features import FeatureParams, apply_all
from simulator.bank import TYPE_NAMES, Simulator
from domain.state import CustomerState
from schemas.codec import decode, encode
from schemas.events import DepositPosted
from schemas.topics import DEPOSITS, HOTLINE, TOPIC_FOR_TYPE
from services.runtime import ManagedProcess, child_env, nbo_command
from adapters import keys
from adapters.redis_store import AsyncRedisStateStore, RedisStateStore, SourcedEvent

pytestmark = pytest.mark.integration
P = FeatureParams()
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _deposit(customer_id: str, i: int, event_id: str | None = None) -> DepositPosted:
    return DepositPosted(event_id=event_id or f"ev-{uuid.uuid4().hex}", customer_id=customer_id,
                         occurred_at=T0 + timedelta(minutes=i), source="core_banking", kind="deposit",
                         amount_minor=1_000 * (i + 1), channel="mobile", balance_after_minor=10_000 * (i + 1))


@pytest.mark.parametrize("cache_size", [0, 100])
def test_store_applies_once_per_offset_and_per_event_id(servers, key_prefix, unique_customer_id, cache_size):
    store = RedisStateStore(servers.redis_url, key_prefix, cache_size=cache_size)
    assert store.get(unique_customer_id) is None
    events = [_deposit(unique_customer_id, i) for i in range(3)]
    sourced = [SourcedEvent(e, DEPOSITS, 2, 100 + i) for i, e in enumerate(events)]
    assert store.apply_batch(sourced, P, time.time()).applied == 3
    want = apply_all(CustomerState(unique_customer_id), events, P)
    assert store.get(unique_customer_id) == want

    again = store.apply_batch(sourced[1:], P, time.time())  # a redelivery: same offsets
    assert (again.applied, again.redelivered) == (0, 2)
    copy = SourcedEvent(events[0], DEPOSITS, 2, 250)  # an upstream duplicate at a new offset
    assert store.apply_batch([copy], P, time.time()).duplicates == 1
    assert store.get(unique_customer_id) == want
    raw = redis.Redis.from_url(servers.redis_url).hgetall(keys.state_key(key_prefix, unique_customer_id))
    assert int(raw[keys.offset_field(DEPOSITS, 2).encode()]) == 250
    store.close()


def test_keys_carry_the_customer_as_hash_tag(key_prefix):
    assert keys.state_key("nbo", "C000000042") == "nbo:{C000000042}:state"
    assert keys.seen_key("nbo", "C000000042").startswith("nbo:{C000000042}:")


@pytest.mark.parametrize("cache_size", [0, 100])
def test_two_writers_of_one_customer_from_two_topics_both_land(servers, key_prefix, unique_customer_id, cache_size):
    """Compare-and-set: writers of different topics interleave without losing an update, also
    when each keeps its own (then stale) copy of the state."""
    a = RedisStateStore(servers.redis_url, key_prefix, cache_size=cache_size)
    b = RedisStateStore(servers.redis_url, key_prefix, cache_size=cache_size)
    deposits = [_deposit(unique_customer_id, i) for i in range(40)]
    for i, event in enumerate(deposits):
        writer = a if i % 2 else b
        topic = DEPOSITS if i % 2 else HOTLINE  # two sources, as two agents would be
        writer.apply_batch([SourcedEvent(event, topic, 0, i)], P, time.time())
    state = a.get(unique_customer_id)
    assert state is not None and state.events_applied == 40
    # An upstream duplicate of an event the other writer applied is dropped, cached or not.
    assert a.apply_batch([SourcedEvent(deposits[0], HOTLINE, 0, 99)], P, time.time()).duplicates == 1
    assert a.get(unique_customer_id) == state
    assert state.inflow_minor == pytest.approx(sum(e.amount_minor for e in deposits), rel=1e-3)


def test_async_reader_sees_what_the_worker_store_wrote(servers, key_prefix, unique_customer_id):
    store = RedisStateStore(servers.redis_url, key_prefix)
    store.apply_batch([SourcedEvent(_deposit(unique_customer_id, 0), DEPOSITS, 0, 1)], P, time.time())

    async def read():
        reader = AsyncRedisStateStore(servers.redis_url, key_prefix, timeout_s=0.5)
        try:
            return await reader.get(unique_customer_id), await reader.get("C999999999999")
        finally:
            await reader.close()

    found, missing = asyncio.run(read())
    assert found == store.get(unique_customer_id) and found.balance_minor == 10_000
    assert missing is None
    store.close()


def _tagged_records(tag: str, customers: int, days: int) -> list[tuple[str, bytes, bytes]]:
    """Simulated traffic with customer ids unique to this test (C<tag><9 digits>)."""
    out = []
    for batch in Simulator(load_catalog(), customers, 17).run(days):
        for line, type_code in zip(batch.lines, batch.types.tolist()):
            value = line.replace('"customer_id":"C', f'"customer_id":"C{tag}', 1).encode()
            out.append((TOPIC_FOR_TYPE[TYPE_NAMES[type_code]], decode(value).customer_id.encode(), value))
    return out


def _wait(condition, deadline_s: float, what: str, proc: ManagedProcess | None = None):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and not proc.alive():
            pytest.fail(f"{proc.name} exited while waiting for {what}:\n{proc.tail(40)}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}" + (f"\n{proc.tail(40)}" if proc else ""))


def test_replay_rebuilds_the_live_state_and_switches_to_it(servers, tmp_path: Path, key_prefix):
    tag = uuid.uuid4().hex[:3].upper()
    records = _tagged_records(tag, customers=60, days=20)
    mine = sorted({k.decode() for _, k, _ in records})
    producer = KafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all", linger_ms=5)
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    env = child_env(servers, NBO_REDIS__KEY_PREFIX=key_prefix, NBO_STREAM__GROUP_ID=f"g-{key_prefix}",
                    NBO_DATA_DIR=str(tmp_path))
    worker = ManagedProcess("worker", nbo_command("worker"), tmp_path / "worker.log", env=env)
    live = RedisStateStore(servers.redis_url, key_prefix)
    worker.start()
    try:
        expected_events = len(records)
        _wait(lambda: sum((live.get(c) or CustomerState(c)).events_applied for c in mine) >= expected_events,
              90, "the worker to apply the test's events", worker)
    finally:
        worker.stop()
    live_states = {c: live.get(c) for c in mine}

    rebuilt = f"{key_prefix}-r"
    done = subprocess.run(nbo_command("replay", "--prefix", rebuilt, "--idle-s", "1.5", "--switch"), env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"switched_customers"' in done.stdout
    replayed = RedisStateStore(servers.redis_url, key_prefix)  # the live namespace, now the rebuilt one
    for customer_id in mine:
        got, want = replayed.get(customer_id), live_states[customer_id]
        assert got is not None and want is not None
        assert got.events_applied == want.events_applied
        assert got.holdings == want.holdings and got.contacts == want.contacts
        assert got.balance_minor == want.balance_minor and got.vs_segment == want.vs_segment
        assert got.tokens.keys() == want.tokens.keys()
        for token, weight in want.tokens.items():
            assert got.tokens[token] == pytest.approx(weight, rel=1e-9)
    assert next(RedisStateStore(servers.redis_url, rebuilt).customer_ids(), None) is None  # moved, not copied
    live.close()
    replayed.close()


def test_replay_refuses_a_namespace_that_holds_state(servers, key_prefix, unique_customer_id):
    from streams.replay import replay

    store = RedisStateStore(servers.redis_url, key_prefix)
    store.apply_batch([SourcedEvent(_deposit(unique_customer_id, 0), DEPOSITS, 0, 1)], P, time.time())
    with pytest.raises(ValueError, match="already holds"):
        replay(servers.kafka_bootstrap, servers.redis_url, key_prefix, P, idle_s=0.5)
    store.close()


@pytest.mark.parametrize("engine", ["direct", "faust"])
def test_offsets_are_committed_only_once_the_redis_writes_have_settled(servers, tmp_path: Path, key_prefix,
                                                                       unique_customer_id, engine):
    """A Redis killed right after a write may not have it on disk yet; the worker must not have
    committed the offset past it by then, or a restart would never re-read it."""
    from kafka import KafkaAdminClient, TopicPartition

    group = f"g-{key_prefix}"
    env = child_env(servers, NBO_REDIS__KEY_PREFIX=key_prefix, NBO_STREAM__GROUP_ID=group,
                    NBO_STREAM__COMMIT_LAG_MS="4000", NBO_STREAM__ENGINE=engine, NBO_DATA_DIR=str(tmp_path))
    worker = ManagedProcess("worker", nbo_command("worker"), tmp_path / "worker.log", env=env)
    live = RedisStateStore(servers.redis_url, key_prefix)
    admin = KafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    producer = KafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all")
    worker.start()
    try:
        sent = [producer.send(DEPOSITS, key=unique_customer_id.encode(), value=encode(_deposit(unique_customer_id, i)))
                .get(timeout=10) for i in range(3)]
        tp, last = TopicPartition(DEPOSITS, sent[-1].partition), sent[-1].offset

        def committed() -> int:
            found = admin.list_group_offsets(group).get(group, {}).get(tp)
            return found.offset if found is not None else -1

        _wait(lambda: (live.get(unique_customer_id) or CustomerState(unique_customer_id)).events_applied >= 3,
              60, "the worker to apply the deposits", worker)
        applied_at = time.monotonic()
        assert committed() <= last, "committed past records whose Redis writes had not settled"
        _wait(lambda: committed() == last + 1, 30, "the offset to be committed after the lag", worker)
        assert time.monotonic() - applied_at >= 3.0
    finally:
        worker.stop()
        producer.close()
        admin.close()
        live.close()
