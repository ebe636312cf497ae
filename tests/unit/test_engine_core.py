"""The stream-engine core on fakes: a batch's dead letters, its apply with bounded retries, the
exit policy, and the commit gate that holds offsets until their writes are old enough."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import redis

from adapters.fakes import MemoryStateStore
from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.codec import encode
from schemas.events import DepositPosted
from schemas.topics import DEPOSITS
from streams.core import (BatchHandler, CommitGate, OffsetCommits, StoreUnavailable, split_batch, wait_for_store,
                          with_retries)

P = FeatureParams()
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def deposit(customer_id: str, i: int) -> DepositPosted:
    return DepositPosted(event_id=f"ev-{customer_id}-{i}", customer_id=customer_id,
                         occurred_at=T0 + timedelta(minutes=i), source="core_banking", kind="deposit",
                         amount_minor=1_000 * (i + 1), channel="mobile", balance_after_minor=10_000 * (i + 1))


def record(offset: int, event: DepositPosted, partition: int = 0) -> tuple:
    return DEPOSITS, partition, offset, event.customer_id.encode(), encode(event)


class Stopped(Exception):
    """What the test exit policy raises instead of ending the process."""


def stop(reason: str, exc: BaseException) -> None:
    raise Stopped(reason) from exc


class FlakyStore(MemoryStateStore):
    """The in-memory store, refusing the first ``failures`` batch writes as a Redis that is away."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def apply_batch(self, records, params, now_s):  # type: ignore[no-untyped-def]
        self.attempts += 1
        if self.attempts <= self.failures:
            raise redis.ConnectionError("Connection refused")
        return super().apply_batch(records, params, now_s)


def handler(store, sent: list, *, retries: int = 2, sleeps: list | None = None, fail_send: bool = False):
    async def send(letters):
        if fail_send:
            raise ConnectionError("broker gone")
        sent.append((list(letters), store.counters().get("applied", 0)))

    return BatchHandler(store, P, send, retries=retries, clock_s=lambda: 1_800_000_000.0,
                        sleep=(sleeps.append if sleeps is not None else lambda s: None), on_failure=stop)


def test_poison_is_dead_lettered_with_its_bytes_before_the_good_records_are_applied():
    store, sent = MemoryStateStore(), []
    good = [deposit("C000000001", i) for i in range(3)]
    not_json, wrong_key = b"\x00\xffnot json", (DEPOSITS, 0, 11, b"C000000999", encode(deposit("C000000001", 9)))
    raw = [record(10, good[0]), (DEPOSITS, 0, 12, b"C000000001", not_json), record(13, good[1]), wrong_key,
           record(14, good[2])]

    handled = asyncio.run(handler(store, sent).handle(raw))

    assert (handled.applied, handled.dead_letters) == (3, 2)
    [(letters, applied_when_sent)] = sent
    assert applied_when_sent == 0  # the broker had the letters before anything was applied
    assert [(d.offset, d.field, orjson.loads(d.to_json())["value_sha256"]) for d in letters] == [
        (12, "record", hashlib.sha256(not_json).hexdigest()), (11, "key", hashlib.sha256(wrong_key[4]).hexdigest())]
    assert orjson.loads(letters[1].to_json())["value"]["event_id"] == "ev-C000000001-9"  # ids are shown
    assert store.counters()["dead_letters"] == 2
    assert store.get("C000000001") == apply_all(CustomerState("C000000001"), good, P)


def test_a_dead_letter_that_cannot_be_sent_stops_the_engine_before_anything_is_applied():
    store = MemoryStateStore()
    raw = [record(1, deposit("C000000001", 0)), (DEPOSITS, 0, 2, b"C000000001", b"[1, 2]")]
    with pytest.raises(Stopped, match="broker gone"):
        asyncio.run(handler(store, [], fail_send=True).handle(raw))
    assert store.get("C000000001") is None and "dead_letters" not in store.counters()


def test_a_redis_that_comes_back_within_the_retries_gets_the_batch_once():
    store, sleeps = FlakyStore(failures=2), []
    events = [deposit("C000000002", i) for i in range(2)]
    asyncio.run(handler(store, [], retries=3, sleeps=sleeps).handle([record(i, e) for i, e in enumerate(events)]))
    assert store.attempts == 3
    assert sleeps == [0.1, 0.2]  # exponential backoff
    assert store.get("C000000002") == apply_all(CustomerState("C000000002"), events, P)
    assert store.counters()["applied"] == 2


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_starting_worker_waits_for_redis_saying_what_it_waits_for_and_goes_on_once_it_is_ready(caplog):
    caplog.set_level(logging.INFO, "nbo.worker")
    clock, answers = Clock(), iter([["Redis Cluster 127.0.0.1:7001: cluster_state:fail"]] * 30)
    waited = wait_for_store(lambda: next(answers, []), 60.0, clock=clock, sleep=clock.sleep)
    assert waited == pytest.approx(15.0)  # 30 polls of 0.5 s
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3  # at once, then every 5 s
    assert all("waiting for Redis" in w and "cluster_state:fail" in w for w in warnings)
    assert "Redis ready after 15.0 s" in caplog.text


def test_a_ready_redis_costs_one_check_and_no_log_line(caplog):
    caplog.set_level(logging.INFO, "nbo.worker")
    clock, checks = Clock(), []
    assert wait_for_store(lambda: checks.append(1) or [], 60.0, clock=clock, sleep=clock.sleep) == 0.0
    assert checks == [1] and caplog.records == []


def test_a_redis_not_ready_within_the_wait_is_unavailable_naming_what_is_wrong():
    clock = Clock()
    with pytest.raises(StoreUnavailable, match=r"Redis unavailable: not ready within 10 s \(Redis: ConnectionError"):
        wait_for_store(lambda: ["Redis: ConnectionError: refused"], 10.0, clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(10.0)


def test_a_redis_that_stays_down_goes_to_the_exit_policy_and_nothing_is_applied():
    store, sleeps = FlakyStore(failures=100), []
    with pytest.raises(Stopped, match="Redis unavailable after 2 retries"):
        asyncio.run(handler(store, [], retries=2, sleeps=sleeps).handle([record(0, deposit("C000000003", 0))]))
    assert store.attempts == 3 and len(sleeps) == 2
    assert store.get("C000000003") is None


def test_backoff_doubles_up_to_its_ceiling_and_non_transient_errors_are_not_retried():
    sleeps: list[float] = []

    def down():
        raise redis.TimeoutError("slow")

    with pytest.raises(StoreUnavailable):
        with_retries(down, 7, sleep=sleeps.append)
    assert sleeps == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0]

    calls = []

    def bug():
        calls.append(1)
        raise KeyError("not an I/O error")

    with pytest.raises(KeyError):
        with_retries(bug, 5, sleep=sleeps.append)
    assert calls == [1]


def test_the_exit_policy_ends_the_process_with_code_3_without_running_cleanup():
    code = ("import logging, sys\n"
            "logging.basicConfig(stream=sys.stderr)\n"
            "from streams.core import StoreUnavailable, stop_process\n"
            "try:\n"
            "    stop_process('Redis unavailable after 1 retries (refused)', StoreUnavailable('x'))\n"
            "finally:\n"
            "    print('committed')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "committed" not in done.stdout
    assert "Redis unavailable after 1 retries (refused); stopping without committing" in done.stderr


def test_split_batch_keeps_the_order_of_good_records():
    events = [deposit("C000000004", i) for i in range(4)]
    good, bad = split_batch([record(i, e, partition=i % 2) for i, e in enumerate(events)])
    assert not bad
    assert [(g.partition, g.offset, g.event) for g in good] == [(i % 2, i, e) for i, e in enumerate(events)]


def test_the_gate_releases_entries_only_once_their_writes_are_lag_old_oldest_first():
    gate: CommitGate[str, int] = CommitGate(lag_s=3.0)
    gate.hold([("p0", 10), ("p1", 5)], now=100.0)
    gate.hold([("p0", 20)], now=101.5)
    assert gate.release(now=102.9) == []
    assert gate.release(now=103.0) == [("p0", 10), ("p1", 5)]
    assert len(gate) == 1
    assert gate.release(now=104.4) == []
    assert gate.release(now=104.5) == [("p0", 20)]
    assert len(gate) == 0


def test_the_gate_forgets_revoked_partitions():
    gate: CommitGate[str, int] = CommitGate(lag_s=1.0)
    gate.hold([("p0", 1), ("p1", 2)], now=0.0)
    gate.hold([("p1", 3)], now=0.5)
    gate.forget({"p1"})
    assert len(gate) == 1
    assert gate.release(now=10.0) == [("p0", 1)]


def test_offset_commits_wait_for_the_lag_then_pace_commits_and_take_the_highest_offset():
    commits: OffsetCommits[str] = OffsetCommits(lag_s=3.0, interval_s=1.0)
    commits.applied({"p0": 11, "p1": 4}, now=0.0)
    commits.applied({"p0": 30}, now=0.5)
    assert commits.due(now=2.9) == {}
    assert commits.due(now=3.0) == {"p0": 11, "p1": 4}
    commits.applied({"p1": 9}, now=3.2)
    assert commits.due(now=3.6) == {}  # p0 @ 30 has settled, but the last commit was 0.6 s ago
    assert commits.due(now=4.0) == {"p0": 30}
    assert commits.due(now=6.1) == {}  # p1 @ 9 is not 3 s old yet
    assert commits.due(now=6.2) == {"p1": 9}
    assert commits.pending() == 0


def test_the_final_commit_ignores_the_interval_but_not_the_lag():
    commits: OffsetCommits[str] = OffsetCommits(lag_s=3.0, interval_s=60.0)
    commits.applied({"p0": 5}, now=0.0)
    assert commits.due(now=3.0) == {"p0": 5}
    commits.applied({"p0": 8}, now=1.0)
    commits.applied({"p0": 12}, now=2.0)
    assert commits.due(now=4.5) == {}
    assert commits.due(now=4.5, final=True) == {"p0": 8}  # 12 was written 2.5 s ago: re-read and skipped


def test_offset_commits_forget_revoked_partitions_settled_or_not():
    commits: OffsetCommits[str] = OffsetCommits(lag_s=1.0, interval_s=10.0)
    commits.applied({"p0": 1, "p1": 2}, now=0.0)
    assert commits.due(now=1.0) == {"p0": 1, "p1": 2}
    commits.applied({"p0": 3, "p1": 4}, now=1.0)
    commits.applied({"p1": 6}, now=5.0)
    assert commits.due(now=2.5) == {}  # settled, held back by the interval
    commits.forget({"p1"})
    assert commits.due(now=20.0) == {"p0": 3}


def test_fetch_pacing_waits_short_while_records_flow_and_long_once_idle():
    from streams.core import FetchPacing

    pacing = FetchPacing(busy_ms=5, idle_ms=500, idle_after_s=1.0)
    assert pacing.polled(0, now=100.0) == 5  # a start is busy: there may be a backlog
    assert pacing.polled(0, now=100.9) == 5
    assert pacing.polled(0, now=101.0) == 500  # a quiet second: the broker and worker rest
    assert pacing.polled(0, now=160.0) == 500
    assert pacing.polled(3, now=160.1) == 5  # the first record back makes the waits short again
    assert pacing.polled(0, now=160.5) == 5
