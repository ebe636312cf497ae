"""The online evidence the offer API calibrates with, read from Redis in the background
(``adapters.ports.LearningSource``).

The stream writes one hash, ``<prefix>:{learn}:evidence`` (``keys.learn_key``): field
``<product id>``, ``<product id>|<segment>`` or ``*`` (all products), value JSON
``[accepts, others, as_of_s, expected]`` (the older ``[accepts, others, as_of_s]`` is read with
``expected`` None: it informs no ratio, ``domain.learning``).
``RedisLearningReader`` reads it whole (one ``HGETALL``) every ``refresh_s``
(``NBO_LOOP__REFRESH_MS``, 500 ms) in a task of its own and swaps in the parsed mapping; a request
only reads the attribute. A read that fails or outlives ``timeout_s`` keeps the evidence already
served (counted in ``failures``, logged once per outage), so the offer path never waits on it and
never fails because of it. A field that is not a valid value is left out (``invalid``, logged).
On a Redis Cluster the key's ``{learn}`` hash tag puts it in one slot: one node answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any, Callable, Mapping

import orjson

from adapters import keys
from adapters.redis_connect import NO_SECURITY, LazyAsyncClient, Mode, RedisSecurity
from domain.learning import Evidence

log = logging.getLogger("nbo.api.learning")


def parse_evidence(raw: Mapping[Any, Any]) -> tuple[dict[str, Evidence], list[str]]:
    """(field -> Evidence, the fields refused) from a hash as Redis returns it (bytes or str)."""
    parsed: dict[str, Evidence] = {}
    refused: list[str] = []
    for name, value in raw.items():
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        try:
            evidence = Evidence.from_json(orjson.loads(value))
        except (ValueError, TypeError):
            refused.append(name)
            continue
        expected = 0.0 if evidence.expected is None else evidence.expected
        if not all(math.isfinite(v) for v in (evidence.accepts, evidence.others, evidence.as_of_s, expected)) \
                or evidence.accepts < 0 or evidence.others < 0 or expected < 0:
            refused.append(name)
            continue
        parsed[name] = evidence
    return parsed, refused


class RedisLearningReader:
    """``LearningSource`` over the learn hash of ``prefix`` at ``url``."""

    def __init__(self, url: str, prefix: str = "nbo", refresh_s: float = 0.5, timeout_s: float = 0.5,
                 mode: Mode = "auto", clock: Callable[[], float] = time.time,
                 security: RedisSecurity = NO_SECURITY) -> None:
        self.key = keys.learn_key(prefix)
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._redis = LazyAsyncClient(url, mode, socket_timeout_s=timeout_s, connect_timeout_s=timeout_s,
                                      security=security)
        self._evidence: Mapping[str, Evidence] = {}
        self._task: asyncio.Task[Any] | None = None
        self._failing = False
        self.failures = 0
        self.invalid = 0
        self.read_at_s: float | None = None

    def evidence(self) -> Mapping[str, Evidence]:
        return self._evidence

    async def refresh(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout_s):
                client = self._redis.client or await self._redis.open()
                raw = await client.hgetall(self.key)
        except Exception as exc:  # down, slow, a cluster without the slot: keep serving what we have
            self.failures += 1
            if not self._failing:
                log.warning("online evidence not read (%s); ranking with the evidence read before",
                            type(exc).__name__)
            self._failing = True
            return False
        parsed, refused = parse_evidence(raw)
        if refused:
            self.invalid += len(refused)
            log.warning("online evidence: %d field(s) not [accepts, others, as_of_s, expected], left out: %s",
                        len(refused), ", ".join(refused[:5]))
        if self._failing:
            log.info("online evidence read again")
        self._failing = False
        self._evidence, self.read_at_s = parsed, self.clock()
        return True

    async def start(self) -> None:
        await self.refresh()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="learning-reader")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception:  # never let the reader die (refresh itself does not raise)
                log.exception("online evidence refresh failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        await self._redis.aclose()


class NoEvidence:
    """``LearningSource`` with nothing learned (the parts of a process that has no Redis for it)."""

    failures = 0
    read_at_s: float | None = None

    def evidence(self) -> Mapping[str, Evidence]:
        return _EMPTY

    async def refresh(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


_EMPTY: Mapping[str, Evidence] = {}
