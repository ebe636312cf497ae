"""The DecisionCache contract, against ``MemoryDecisionCache`` and ``RedisDecisionCache`` on a
real Valkey: a decision remembered is found at once by the process that made it, and by every
other replica once written; it is gone at the end of the window; an unreachable store raises on
what the buffer cannot answer, and the buffer keeps what could not be written."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from adapters.decision_cache import DecisionCacheError, RedisDecisionCache
from adapters.fakes import MemoryDecisionCache
from adapters.ports import DecisionCache, RememberedDecision
from portkit import closed_port, run

REAL = pytest.mark.integration
DAY_S = 24 * 3600.0

Opener = Callable[..., DecisionCache]


@pytest.fixture(params=["memory", pytest.param("redis", marks=REAL)])
def open_cache(request: pytest.FixtureRequest, key_prefix: str) -> Opener:
    """``open_cache(ttl_s=..., buffer_size=...)``: a replica's cache; all of them share one store."""
    if request.param == "memory":
        shared: dict[str, Any] = {}
        return lambda ttl_s=DAY_S, buffer_size=1000: MemoryDecisionCache(ttl_s, buffer_size, _stored=shared)
    url = request.getfixturevalue("servers").redis_url
    return lambda ttl_s=DAY_S, buffer_size=1000: RedisDecisionCache(url, key_prefix, ttl_s=ttl_s,
                                                                    flush_interval_s=0.05, buffer_size=buffer_size)


@pytest.fixture(params=["memory", pytest.param("redis", marks=REAL)])
def open_unreachable(request: pytest.FixtureRequest) -> Opener:
    """A cache whose store is down: the fake switched off, the real one on a closed port."""
    if request.param == "memory":
        def down(ttl_s: float = DAY_S, buffer_size: int = 1000) -> DecisionCache:
            cache = MemoryDecisionCache(ttl_s, buffer_size)
            cache.store_up = False
            return cache
        return down
    url = f"redis://127.0.0.1:{closed_port()}/0"
    return lambda ttl_s=DAY_S, buffer_size=1000: RedisDecisionCache(url, "nbo", ttl_s=ttl_s, flush_interval_s=0.05,
                                                                    buffer_size=buffer_size, timeout_s=0.5)


def decision_id() -> str:
    return "d-" + uuid.uuid4().hex


async def eventually(condition: Callable[[], Awaitable[Any]], deadline_s: float, what: str) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def closing(*caches: DecisionCache) -> None:
    for cache in caches:
        await cache.close()


def test_a_decision_is_found_at_once_where_it_was_made_and_unknown_ids_are_not(open_cache):
    made_at_s = round(time.time()) + 0.25

    async def scenario() -> tuple[RememberedDecision | None, RememberedDecision | None]:
        cache = open_cache()
        made = decision_id()
        cache.remember(made, "C000000042", "teller", ("time_deposit_1y", "fund_sip"), made_at_s)
        try:
            return await cache.lookup(made), await cache.lookup(decision_id())
        finally:
            await closing(cache)

    found, unknown = run(scenario())
    assert found is not None and unknown is None
    assert (found.customer_id, found.channel, found.product_ids) == ("C000000042", "teller",
                                                                     ("time_deposit_1y", "fund_sip"))
    assert found.at_s == made_at_s and found.decision_id.startswith("d-")


def test_once_written_every_replica_finds_the_decision_as_it_was_made(open_cache):
    made, now_s = decision_id(), time.time()

    async def scenario() -> tuple[int, RememberedDecision | None]:
        writer, other = open_cache(), open_cache()
        writer.remember(made, "C000000042", "mobile", ("gold_account", "fund_sip", "credit_card_standard"), now_s)
        try:
            written = await writer.flush()  # the real writer does this every flush interval
            return written, await other.lookup(made)
        finally:
            await closing(writer, other)

    written, found = run(scenario())
    assert written == 1
    assert found == RememberedDecision(made, "C000000042", "mobile",
                                       ("gold_account", "fund_sip", "credit_card_standard"), now_s)


def test_a_decision_with_no_offers_is_kept_too(open_cache):
    made = decision_id()

    async def scenario() -> RememberedDecision | None:
        writer, other = open_cache(), open_cache()
        writer.remember(made, "C000000042", "call_centre", (), time.time())
        try:
            await writer.flush()
            return await other.lookup(made)
        finally:
            await closing(writer, other)

    found = run(scenario())
    assert found is not None and found.product_ids == ()


def test_a_decision_older_than_the_window_is_not_found_nor_written(open_cache):
    made = decision_id()

    async def scenario() -> tuple[RememberedDecision | None, int, RememberedDecision | None]:
        writer, other = open_cache(ttl_s=60), open_cache(ttl_s=60)
        writer.remember(made, "C000000042", "teller", ("fund_sip",), time.time() - 61)
        try:
            before = await writer.lookup(made)
            return before, await writer.flush(), await other.lookup(made)
        finally:
            await closing(writer, other)

    assert run(scenario()) == (None, 0, None)


def test_a_decision_is_gone_at_the_end_of_its_window(open_cache):
    made = decision_id()

    async def scenario() -> tuple[RememberedDecision | None, float]:
        writer, other = open_cache(ttl_s=60), open_cache(ttl_s=60)
        made_at_s = time.time() - 59  # one second left
        writer.remember(made, "C000000042", "teller", ("fund_sip",), made_at_s)
        try:
            await writer.flush()
            found = await other.lookup(made)
            await eventually(lambda: _gone(other, made), 10, "the decision to expire")
            return found, time.time() - made_at_s
        finally:
            await closing(writer, other)

    found, gone_after_s = run(scenario())
    assert found is not None and found.channel == "teller"
    assert gone_after_s >= 60


async def _gone(cache: DecisionCache, made: str) -> bool:
    return await cache.lookup(made) is None


def test_a_full_buffer_drops_decisions_and_counts_them(open_cache):
    made = [decision_id() for _ in range(5)]

    async def scenario() -> tuple[list[bool], int]:
        cache = open_cache(buffer_size=3)
        for each in made:
            cache.remember(each, "C000000042", "teller", ("fund_sip",), time.time())
        try:
            return [await cache.lookup(each) is not None for each in made], cache.dropped
        finally:
            await closing(cache)

    assert run(scenario()) == ([True, True, True, False, False], 2)


def test_an_unreachable_store_raises_on_what_the_buffer_cannot_answer_and_keeps_the_buffer(open_unreachable):
    made = decision_id()

    async def scenario() -> tuple[RememberedDecision | None, int]:
        cache = open_unreachable()
        cache.remember(made, "C000000042", "teller", ("fund_sip",), time.time())
        try:
            with pytest.raises(DecisionCacheError):
                await cache.lookup(decision_id())
            with pytest.raises(DecisionCacheError):
                await cache.flush()
            return await cache.lookup(made), cache.dropped  # still answered from the buffer
        finally:
            await closing(cache)

    found, dropped = run(scenario())
    assert found is not None and found.customer_id == "C000000042" and dropped == 0


# --- the real writer's timing (the fake has no background writer: tests flush it) --------------

@REAL
def test_the_real_writer_flushes_on_its_own_and_a_replica_asking_before_that_still_finds_it(servers, key_prefix):
    made = decision_id()

    async def scenario() -> tuple[RememberedDecision | None, RememberedDecision | None]:
        writer = RedisDecisionCache(servers.redis_url, key_prefix, flush_interval_s=0.05)
        other = RedisDecisionCache(servers.redis_url, key_prefix, flush_interval_s=0.05)
        try:
            writer.remember(made, "C000000042", "teller", ("fund_sip",), time.time())
            # Asked before the writer's first flush: the miss is looked up again one flush later.
            asked_at_once = await other.lookup(made)
            await eventually(lambda: _written(writer), 5, "the writer's own flush")
            return asked_at_once, await other.lookup(made)
        finally:
            await closing(writer, other)

    asked_at_once, later = run(scenario())
    assert asked_at_once is not None and later is not None and later.product_ids == ("fund_sip",)


async def _written(cache: RedisDecisionCache) -> bool:
    return cache.written >= 1
