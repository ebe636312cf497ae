"""The SharedRateLimit and ControlStore contracts, against their fakes (``MemoryRateLimit``,
``MemoryControl``) and ``RedisRateLimit`` / ``RedisControl`` on the session's real Valkey and on a
Redis Cluster of 3 primaries: a key gets its burst at once and no more, with the wait until its
next request; keys do not share a limit, and every client of one store shares it; a value put is
read by every other client and announced to every listener, who first catches up."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Callable, Iterator

import pytest

from adapters.fakes import MemoryControl, MemoryRateLimit
from adapters.ports import ControlStore, SharedRateLimit
from adapters.shared_control import MODEL, POLICY, RedisControl, RedisRateLimit
from portkit import closed_port, run

REAL = pytest.mark.integration
BACKENDS = ["memory", pytest.param("redis", marks=REAL), pytest.param("redis-cluster", marks=REAL)]

LimitOpener = Callable[[float, int], SharedRateLimit]


def _url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("cluster_servers" if request.param == "redis-cluster" else "servers").redis_url


@pytest.fixture(params=BACKENDS)
def open_limit(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[LimitOpener]:
    """``open_limit(rate_per_s, burst)``: one replica's limiter; all of them share one store."""
    opened: list[SharedRateLimit] = []
    if request.param == "memory":
        shared_tat: dict[str, int] = {}

        def memory(rate_per_s: float, burst: int) -> SharedRateLimit:
            limit = MemoryRateLimit(rate_per_s, burst)
            limit._tat_us = shared_tat  # one store behind every replica
            return limit
        yield memory
        return
    url = _url(request)

    def real(rate_per_s: float, burst: int) -> SharedRateLimit:
        opened.append(RedisRateLimit(url, key_prefix, rate_per_s, burst, timeout_s=1.0))
        return opened[-1]
    yield real


def within(*limits: SharedRateLimit) -> Callable[[Any], Any]:
    """Run a test's coroutine, closing the limiters in its event loop (their clients belong to it)."""
    def go(coroutine: Any) -> Any:
        async def body() -> Any:
            try:
                return await coroutine
            finally:
                for limit in limits:
                    await limit.close()
        return run(body())
    return go


def key_id() -> str:
    return uuid.uuid4().hex


def test_a_key_gets_its_burst_at_once_then_waits_one_interval(open_limit: LimitOpener) -> None:
    limit = open_limit(2.0, 5)  # one request every 0.5 s

    async def go() -> list[float]:
        key = key_id()
        return [await limit.take(key) for _ in range(7)]

    waits = within(limit)(go())
    assert waits[:5] == [0.0] * 5
    assert all(0.3 < w <= 0.5 for w in waits[5:]), waits  # about one interval, less what has passed


def test_a_key_is_admitted_again_once_its_interval_has_passed(open_limit: LimitOpener) -> None:
    limit = open_limit(20.0, 1)  # one every 50 ms

    async def go() -> tuple[float, float, float]:
        key = key_id()
        first, second = await limit.take(key), await limit.take(key)
        await asyncio.sleep(second + 0.01)  # the wait the limiter gave
        return first, second, await limit.take(key)

    first, second, third = within(limit)(go())
    assert first == 0.0 and 0 < second <= 0.05 and third == 0.0


def test_keys_do_not_share_a_limit(open_limit: LimitOpener) -> None:
    limit = open_limit(1.0, 2)

    async def go() -> tuple[list[float], list[float]]:
        a, b = key_id(), key_id()
        return [await limit.take(a) for _ in range(3)], [await limit.take(b) for _ in range(2)]

    a, b = within(limit)(go())
    assert a[:2] == [0.0, 0.0] and a[2] > 0 and b == [0.0, 0.0]


def test_replicas_share_one_limit(open_limit: LimitOpener) -> None:
    """Two limiters on one store (two API replicas) let a key through rate + burst, not twice."""
    one, two = open_limit(1.0, 10), open_limit(1.0, 10)

    async def go() -> int:
        key = key_id()
        results = await asyncio.gather(*[(one if i % 2 else two).take(key) for i in range(40)])
        return sum(1 for w in results if w == 0.0)

    admitted = within(one, two)(go())
    assert 10 <= admitted <= 11  # the burst, plus at most one interval's worth while they ran


@pytest.mark.integration
def test_an_unreachable_store_raises_within_its_timeout() -> None:
    limit = RedisRateLimit(f"redis://127.0.0.1:{closed_port()}/0", "nbo", 10.0, 5, timeout_s=0.2)

    async def go() -> None:
        try:
            await limit.take(key_id())
        finally:
            await limit.close()

    with pytest.raises(Exception) as caught:
        run(go())
    assert "Connection" in type(caught.value).__name__ or "refused" in str(caught.value).lower()


# --- control values ------------------------------------------------------------------------------

@pytest.fixture(params=BACKENDS)
def open_control(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[Callable[[], ControlStore]]:
    """``open_control()``: one process's control store; all of them share one store."""
    if request.param == "memory":
        shared = MemoryControl(key_prefix)
        yield lambda: shared
        return
    url = _url(request)
    opened: list[RedisControl] = []

    def real() -> ControlStore:
        opened.append(RedisControl(url, key_prefix))
        return opened[-1]
    yield real
    for each in opened:
        each.close()


def test_a_value_put_is_read_by_every_other_client(open_control: Callable[[], ControlStore]) -> None:
    writer, reader = open_control(), open_control()
    assert reader.get(MODEL) is None
    writer.put(MODEL, "20261201T000000Z-aaaaaa")
    writer.put(POLICY, '{"levers": {"fund": 1.5}}')
    assert reader.get(MODEL) == "20261201T000000Z-aaaaaa"
    assert reader.get(POLICY) == '{"levers": {"fund": 1.5}}'


def test_every_listener_catches_up_then_hears_each_change(open_control: Callable[[], ControlStore]) -> None:
    writer, first, second = open_control(), open_control(), open_control()

    async def go() -> tuple[list[str], list[str], float]:
        heard: dict[int, list[str]] = {1: [], 2: []}
        subscribed = {1: asyncio.Event(), 2: asyncio.Event()}

        def listener(n: int) -> Any:
            async def on_change(name: str) -> None:
                heard[n].append(name)
            return on_change

        tasks = [asyncio.create_task(store.listen(listener(n), retry_s=0.1, on_subscribed=subscribed[n].set))
                 for n, store in ((1, first), (2, second))]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in subscribed.values())), 5)
            await until(lambda: all(len(h) >= 2 for h in heard.values()), 5)  # the catch-up
            started = time.monotonic()
            await asyncio.to_thread(writer.put, POLICY, "{}")
            await until(lambda: all(len(h) >= 3 for h in heard.values()), 5)
            return heard[1], heard[2], time.monotonic() - started
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    one, two, took_s = run(go())
    assert sorted(one[:2]) == sorted(two[:2]) == [MODEL, POLICY]
    assert one[2] == two[2] == POLICY
    assert took_s < 1.0


async def until(condition: Callable[[], bool], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {deadline_s} s")
        await asyncio.sleep(0.01)
