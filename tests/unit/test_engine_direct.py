"""The direct engine's loop (``streams.direct.consume``) driven by a fake consumer and a fake
clock: offsets are committed only past records applied to the store, only once those writes
are ``commit_lag_ms`` old, and never past a batch whose apply failed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import redis

from adapters.fakes import MemoryStateStore
from domain.features import FeatureParams
from schemas.codec import encode
from schemas.events import DepositPosted
from schemas.topics import DEPOSITS, POS
from streams.core import BatchHandler, OffsetCommits
from streams.direct import consume

P = FeatureParams()
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
LAG_S = 3.0


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def rec(topic: str, partition: int, offset: int, customer: str = "C000000001") -> Rec:
    event = DepositPosted(event_id=f"ev-{topic}-{partition}-{offset:06d}", customer_id=customer,
                          occurred_at=T0 + timedelta(seconds=offset), source="core_banking", kind="deposit",
                          amount_minor=100, channel="mobile", balance_after_minor=100 * offset)
    return Rec(topic, partition, offset, customer.encode(), encode(event))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """Hands out one scripted poll per ``getmany`` (each poll takes ``poll_s`` on the clock),
    then sets ``stopping``; records every commit with the time it was asked for."""

    def __init__(self, polls: list[dict], clock: Clock, stopping: asyncio.Event, poll_s: float = 1.0,
                 store: MemoryStateStore | None = None) -> None:
        self.polls = list(polls)
        self.clock = clock
        self.stopping = stopping
        self.poll_s = poll_s
        self.store = store
        self.commits: list[tuple[float, dict, int]] = []

    async def getmany(self, *partitions, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        await asyncio.sleep(0)  # a real poll yields to the loop: a commit started beside it runs now
        self.clock.now += self.poll_s
        if not self.polls:
            self.stopping.set()
            return {}
        return self.polls.pop(0)

    async def commit(self, offsets) -> None:
        applied = self.store.counters().get("applied", 0) if self.store else 0
        self.commits.append((self.clock.now, dict(offsets), applied))


class FailingStore(MemoryStateStore):
    def __init__(self, fail_from_batch: int) -> None:
        super().__init__()
        self.batches = 0
        self.fail_from_batch = fail_from_batch

    def apply_batch(self, records, params, now_s):  # type: ignore[no-untyped-def]
        self.batches += 1
        if self.batches >= self.fail_from_batch:
            raise redis.ConnectionError("Connection refused")
        return super().apply_batch(records, params, now_s)


class Stopped(Exception):
    pass


def stop(reason: str, exc: BaseException) -> None:
    raise Stopped(reason)


def run_loop(polls: list[dict], store: MemoryStateStore, *, interval_s: float = 0.0, poll_s: float = 1.0,
             store_ready=None):  # type: ignore[no-untyped-def]
    clock = Clock()

    async def main() -> FakeConsumer:
        stopping = asyncio.Event()
        consumer = FakeConsumer(polls, clock, stopping, poll_s=poll_s, store=store)

        async def no_dead_letters(letters):
            raise AssertionError("no dead letters expected")

        handler = BatchHandler(store, P, no_dead_letters, retries=0, sleep=lambda s: None, on_failure=stop)
        commits = OffsetCommits(LAG_S, interval_s)
        try:
            await consume(consumer, handler, commits, stopping, batch_size=100, batch_timeout_ms=5, clock=clock,
                          store_ready=None if store_ready is None else lambda: store_ready(clock.now))
        finally:
            main.consumer = consumer  # type: ignore[attr-defined]
        return consumer

    try:
        return asyncio.run(main())
    except Stopped:
        raise Stopped(main.consumer)  # type: ignore[attr-defined]


D0, D1, P0 = (DEPOSITS, 0), (DEPOSITS, 1), (POS, 0)


def test_offsets_are_committed_only_once_their_writes_are_lag_old():
    polls = [{D0: [rec(*D0, 0), rec(*D0, 1)], P0: [rec(*P0, 7)]},  # applied at t=1
             {D0: [rec(*D0, 2)]},  # t=2
             {D1: [rec(*D1, 0)]},  # t=3
             {}, {}, {}]  # t=4, 5, 6: nothing new
    store = MemoryStateStore()
    consumer = run_loop(polls, store)
    assert store.counters()["applied"] == 5
    times = {t: offsets for t, offsets, _ in consumer.commits}
    for at, offsets in times.items():
        assert at >= 1 + LAG_S, f"committed {offsets} at t={at}, before any write was {LAG_S} s old"
    assert times[4.0] == {D0: 2, P0: 8}  # the first batch's, checked before the poll at t=5
    assert times[5.0] == {D0: 3}
    assert times[6.0] == {D1: 1}
    assert sorted(times) == [4.0, 5.0, 6.0]


def test_stopping_commits_what_has_settled_and_leaves_the_rest_to_be_re_read():
    polls = [{D0: [rec(*D0, 0)]}, {}, {}, {}, {D0: [rec(*D0, 1)]}]  # applied at t=1 and t=5
    store = MemoryStateStore()
    consumer = run_loop(polls, store, interval_s=60.0)
    assert store.counters()["applied"] == 2
    assert [offsets for _, offsets, _ in consumer.commits] == [{D0: 1}]  # offset 1 was applied 1 s before the stop


def test_nothing_is_committed_while_the_store_does_not_answer_and_the_held_offsets_go_once_it_does():
    """An idle worker whose Redis died after its writes: the writes come of age, but Redis may
    have lost them, so their offsets wait (a worker stopped meanwhile leaves them to be re-read)."""
    polls = [{D0: [rec(*D0, 0)]}, {P0: [rec(*P0, 3)]}, {}, {}, {}, {}, {}, {}]  # applied at t=1, 2

    async def ready(now: float) -> bool:
        return not 3.5 <= now < 7.0  # Redis down from t=3.5 to t=7

    consumer = run_loop(polls, MemoryStateStore(), store_ready=ready)
    times = {t: offsets for t, offsets, _ in consumer.commits}
    assert all(not 3.5 <= t < 7.0 for t in times), times
    assert times[7.0] == {D0: 1, P0: 4}  # held since t=4 and t=5, committed together once it answers


def test_a_batch_the_store_refused_is_never_committed():
    polls = [{D0: [rec(*D0, 0)]}, {D0: [rec(*D0, 1)]}, {}, {}, {}, {}, {}]
    store = FailingStore(fail_from_batch=2)
    with pytest.raises(Stopped) as stopped:
        run_loop(polls, store, poll_s=4.0)
    consumer = stopped.value.args[0]
    assert store.counters()["applied"] == 1
    committed = [offsets for _, offsets, _ in consumer.commits]
    assert all(offsets.get(D0, 0) <= 1 for offsets in committed), committed


def test_every_commit_covers_only_records_already_applied():
    polls = [{D0: [rec(*D0, i * 10 + j) for j in range(10)]} for i in range(6)] + [{}] * 5
    store = MemoryStateStore()
    consumer = run_loop(polls, store, poll_s=2.0)
    assert consumer.commits, "nothing was committed"
    for _, offsets, applied_when_committed in consumer.commits:
        assert offsets[D0] <= applied_when_committed
    assert consumer.commits[-1][1] == {D0: 60}
