"""The offer API's recent decisions in Redis, so that an outcome can be checked against the
decision it names (``adapters.ports.DecisionCache``).

- ``remember`` (on the offer path) only appends to an in-process buffer; a background task
  writes the buffer every ``flush_interval_s`` (NBO_API__DECISION_FLUSH_MS, 100 ms by default)
  as one pipeline of ``SET <prefix>:decision:<id> <json> PX <rest of the window>``. A full buffer
  drops decisions and counts them in ``dropped``; a write that fails keeps them for the next
  flush while there is room.
- ``lookup`` looks in this process's buffer first (a decision not flushed yet), then in Redis.
  On a miss it waits one flush interval and looks again: another replica may have made the
  decision and not written it yet. A decision is kept for ``ttl_s`` seconds after it was made
  (NBO_API__OUTCOME_WINDOW_S); after that it is not found, from the buffer or from Redis.

Redis errors and timeouts on ``lookup`` raise ``DecisionCacheError``. On a Redis Cluster
(``adapters.redis_connect``) the flush's pipeline is split by node, every node at once; each
decision is one key, so any slot will do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import orjson

from adapters import keys
from adapters.ports import RememberedDecision
from adapters.redis_connect import NO_SECURITY, LazyAsyncClient, Mode, RedisSecurity

log = logging.getLogger("nbo.api.decisions")

#: A buffered decision: customer id, channel, offered product ids, made at (epoch s).
Pending = tuple[str, str, tuple[str, ...], float]


class DecisionCacheError(Exception):
    """The decision store did not answer (unreachable, or too slow)."""


def encode_decision(customer_id: str, channel: str, product_ids: tuple[str, ...], at_s: float) -> bytes:
    return orjson.dumps([customer_id, channel, list(product_ids), at_s])


def decode_decision(decision_id: str, raw: bytes) -> RememberedDecision:
    customer_id, channel, product_ids, at_s = orjson.loads(raw)
    return RememberedDecision(decision_id, customer_id, channel, tuple(product_ids), float(at_s))


def fresh(decision_id: str, pending: Pending | None, ttl_s: float, now_s: float) -> RememberedDecision | None:
    """The buffered decision if it is still within the window at ``now_s``."""
    if pending is None or now_s - pending[3] > ttl_s:
        return None
    return RememberedDecision(decision_id, *pending)


class RedisDecisionCache:
    def __init__(self, url: str, prefix: str = "nbo", ttl_s: float = 24 * 3600.0, flush_interval_s: float = 0.1,
                 buffer_size: int = 10_000, timeout_s: float = 1.0, clock: Callable[[], float] = time.time,
                 mode: Mode = "auto", security: RedisSecurity = NO_SECURITY) -> None:
        self.prefix = prefix
        self._ttl_s = float(ttl_s)
        self.flush_interval_s = flush_interval_s
        self.buffer_size = buffer_size
        self.timeout_s = timeout_s
        self.clock = clock
        self._redis = LazyAsyncClient(url, mode, socket_timeout_s=timeout_s, connect_timeout_s=timeout_s,
                                      security=security)
        self._pending: dict[str, Pending] = {}
        self._writing: dict[str, Pending] = {}  # taken from the buffer by a flush still in progress
        self._task: asyncio.Task[Any] | None = None
        self.dropped = 0
        self.written = 0

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def remember(self, decision_id: str, customer_id: str, channel: str, product_ids: tuple[str, ...],
                 at_s: float) -> None:
        if len(self._pending) >= self.buffer_size:
            self.dropped += 1
            return
        self._pending[decision_id] = (customer_id, channel, product_ids, at_s)
        if self._task is None:
            self._start()

    def _start(self) -> None:
        """The writer runs on the loop of the first ``remember`` (the API's); without a running
        loop the buffer is written by ``flush`` or ``close``."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._flush_loop(), name="decision-cache")

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            if self._pending:
                try:
                    await self.flush()
                except Exception as exc:  # kept for the next round (see flush); never let the writer die
                    log.warning("decision cache write failed (%s); %d decisions kept for the next try",
                                type(exc).__name__, len(self._pending))

    async def flush(self) -> int:
        """Write what is buffered in one pipeline; the number written. Raises ``DecisionCacheError``
        when Redis fails; the decisions then go back to the buffer while there is room."""
        if not self._pending:
            return 0
        self._writing, self._pending = self._pending, {}
        now_s = self.clock()
        try:
            client = self._redis.client
            if client is None:
                async with asyncio.timeout(self.timeout_s):
                    client = await self._redis.open()
            pipe = client.pipeline(transaction=False)
            count = 0
            for decision_id, (customer_id, channel, product_ids, at_s) in self._writing.items():
                left_ms = int((self._ttl_s - (now_s - at_s)) * 1000)
                if left_ms > 0:
                    # execute_command, not set(): ~8 us of CPU a decision instead of ~11 (no option parsing)
                    pipe.execute_command("SET", keys.decision_key(self.prefix, decision_id),
                                         encode_decision(customer_id, channel, product_ids, at_s), "PX", left_ms)
                    count += 1
            if count:
                async with asyncio.timeout(max(self.timeout_s, 0.001 * count)):
                    await pipe.execute()
        except Exception as exc:
            room = self.buffer_size - len(self._pending)
            kept = dict(list(self._writing.items())[:max(0, room)])
            self.dropped += len(self._writing) - len(kept)
            self._pending = {**kept, **self._pending}
            raise DecisionCacheError(f"writing {len(self._writing)} decisions: {type(exc).__name__}") from exc
        finally:
            self._writing = {}
        self.written += count
        return count

    async def lookup(self, decision_id: str) -> RememberedDecision | None:
        found = self._local(decision_id)
        if found is not None:
            return found
        found = await self._stored(decision_id)
        if found is None:
            await asyncio.sleep(self.flush_interval_s * 1.5)  # another replica's writer, one round on
            found = self._local(decision_id) or await self._stored(decision_id)
        return found

    def _local(self, decision_id: str) -> RememberedDecision | None:
        pending = self._pending.get(decision_id) or self._writing.get(decision_id)
        return fresh(decision_id, pending, self._ttl_s, self.clock())

    async def _stored(self, decision_id: str) -> RememberedDecision | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                client = self._redis.client
                if client is None:
                    client = await self._redis.open()
                raw = await client.get(keys.decision_key(self.prefix, decision_id))
        except Exception as exc:  # connection refused, timeout: the caller cannot verify
            raise DecisionCacheError(f"the decision store did not answer ({type(exc).__name__})") from exc
        return decode_decision(decision_id, raw) if raw is not None else None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (Exception, asyncio.CancelledError):
                pass
            self._task = None
        try:
            await self.flush()
        except DecisionCacheError as exc:
            log.warning("%d decisions not written at close: %s", len(self._pending), exc)
        await self._redis.aclose()
