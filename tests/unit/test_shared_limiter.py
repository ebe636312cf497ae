"""The shared rate limit as the API applies it (``SharedRateLimiter`` over the fake
``MemoryRateLimit``): the shared limit decides while it answers within the budget; when it is
slow or down, the replica's own bucket decides at once, and the shared one is asked again
after a pause."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.fakes import MemoryRateLimit
from services.api.auth import ApiError, Client, RateLimiter, SharedRateLimiter

CLIENT = Client("branch-7", "teller", "ab" * 32)


def limiter(shared: MemoryRateLimit, budget_s: float = 0.005, local_burst: int = 3) -> SharedRateLimiter:
    return SharedRateLimiter(shared, RateLimiter(rate_per_s=1.0, burst=local_burst), budget_s)


async def admitted(limit: SharedRateLimiter, n: int) -> list[bool]:
    out = []
    for _ in range(n):
        try:
            await limit.check(CLIENT)
            out.append(True)
        except ApiError as exc:
            assert exc.status == 429 and "rate limit of 1 requests/s" in exc.detail
            assert int(exc.headers["Retry-After"]) >= 1
            out.append(False)
    return out


def test_the_shared_limit_decides_while_it_answers() -> None:
    shared = MemoryRateLimit(rate_per_s=1.0, burst=5)
    limit = limiter(shared)
    assert asyncio.run(admitted(limit, 7)) == [True] * 5 + [False] * 2  # the shared burst, not the local 3
    assert limit.fallbacks == 0


def test_a_slow_shared_limit_costs_a_request_the_budget_at_most_then_the_local_bucket_decides() -> None:
    shared = MemoryRateLimit(rate_per_s=1.0, burst=100)
    shared.delay_s = 1.0
    limit = limiter(shared, budget_s=0.005)

    async def go() -> tuple[list[bool], float]:
        started = time.perf_counter()
        result = await admitted(limit, 5)
        return result, time.perf_counter() - started

    result, took_s = asyncio.run(go())
    assert result == [True] * 3 + [False] * 2  # the local bucket: burst 3
    assert took_s < 0.25  # one budget, then no waiting during the pause (not 5 x 1 s)
    assert limit.fallbacks == 5
    assert shared.calls == 1  # not asked again during the pause


def test_a_down_shared_limit_falls_back_and_is_asked_again_after_the_pause() -> None:
    now = [1000.0]
    shared = MemoryRateLimit(rate_per_s=1.0, burst=5, clock=lambda: now[0])
    shared.up = False
    limit = SharedRateLimiter(shared, RateLimiter(rate_per_s=1.0, burst=2), 0.005, pause_s=1.0, clock=lambda: now[0])

    async def go() -> tuple[list[bool], list[bool]]:
        down = await admitted(limit, 3)
        shared.up = True
        now[0] += 1.5
        return down, await admitted(limit, 6)

    down, back = asyncio.run(go())
    assert down == [True, True, False]
    assert back == [True] * 5 + [False]  # the shared limit decides again
    assert shared.calls == 1 + 6


@pytest.mark.parametrize("rate", [0.5, 200.0])
def test_the_fake_spaces_requests_by_the_emission_interval(rate: float) -> None:
    now = [50.0]
    shared = MemoryRateLimit(rate_per_s=rate, burst=1, clock=lambda: now[0])

    async def go() -> list[float]:
        first = await shared.take("k")
        second = await shared.take("k")
        now[0] += 1 / rate
        return [first, second, await shared.take("k")]

    first, second, third = asyncio.run(go())
    assert first == 0.0 and second == pytest.approx(1 / rate, rel=1e-3) and third == 0.0
