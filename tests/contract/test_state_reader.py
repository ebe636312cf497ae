"""The StateReader contract (the offer API's side), against ``MemoryStateStore.reader()`` and
``AsyncRedisStateStore``: it reads what the stream side wrote, None for a customer never seen,
and an unreachable store raises (the API then degrades) instead of answering "unknown"."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import redis

from adapters.ports import SourcedEvent
from domain.features import FeatureParams
from schemas.events import DepositPosted
from schemas.topics import DEPOSITS
from portkit import run

P = FeatureParams()
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def deposit(customer_id: str, minute: int) -> DepositPosted:
    return DepositPosted(event_id=f"ev-{uuid.uuid4().hex}", customer_id=customer_id,
                         occurred_at=T0 + timedelta(minutes=minute), source="core_banking", kind="deposit",
                         amount_minor=1_000, channel="counter", balance_after_minor=5_000 + minute)


def test_the_reader_sees_what_the_store_wrote_and_none_for_a_stranger(state, unique_customer_id):
    state.store.apply_batch([SourcedEvent(deposit(unique_customer_id, i), DEPOSITS, 0, i) for i in range(3)],
                            P, T0.timestamp())

    async def read():
        reader = state.open_reader()
        try:
            assert await reader.ping() is True
            return await reader.get(unique_customer_id), await reader.get("C" + uuid.uuid4().hex[:12].upper())
        finally:
            await reader.close()

    found, stranger = run(read())
    assert found == state.store.get(unique_customer_id)
    assert (found.balance_minor, found.events_applied) == (5_002, 3)
    assert stranger is None


def test_the_reader_sees_a_later_write_without_reopening(state, unique_customer_id):
    async def read_twice():
        reader = state.open_reader()
        try:
            before = await reader.get(unique_customer_id)
            state.store.apply_batch([SourcedEvent(deposit(unique_customer_id, 0), DEPOSITS, 0, 0)], P,
                                    T0.timestamp())
            return before, await reader.get(unique_customer_id)
        finally:
            await reader.close()

    before, after = run(read_twice())
    assert before is None
    assert after is not None and after.balance_minor == 5_000


def test_an_unreachable_store_raises_on_read_and_ping(unreachable_reader):
    async def attempt():
        try:
            with pytest.raises(redis.exceptions.ConnectionError):
                await unreachable_reader.get("C000000042")
            with pytest.raises(redis.exceptions.ConnectionError):
                await unreachable_reader.ping()
        finally:
            await unreachable_reader.close()

    run(attempt())


def test_the_reader_reports_the_stream_counters(state, unique_customer_id):
    """What /metrics exports as the stream's counters: applied and duplicates from the writes,
    and any counter a worker adds (dead letters)."""
    record = SourcedEvent(deposit(unique_customer_id, 0), DEPOSITS, 0, 0)
    state.store.apply_batch([record], P, T0.timestamp())
    state.store.apply_batch([record], P, T0.timestamp())  # redelivered
    state.store.count("dead_letters", 2)

    async def read():
        reader = state.open_reader()
        try:
            return await reader.counters()
        finally:
            await reader.close()

    counters = run(read())
    assert counters == state.store.counters()
    assert counters["applied"] >= 1 and counters["duplicates"] >= 1 and counters["dead_letters"] >= 2
