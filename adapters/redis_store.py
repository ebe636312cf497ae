"""The customer-state store: Redis, with an exactly-once effect per event.

``RedisStateStore.apply_batch`` folds a batch of sourced events into customers' states in two
pipelined round trips, whatever the batch size:

1. read every touched customer's state hash (state JSON, version, per-partition offsets) and
   which of the batch's event ids were already applied (the ``seen`` sorted set);
2. drop events at or below the stored offset of their (topic, partition) — a redelivery — and
   events whose id was seen — an upstream duplicate; fold the rest with the pure
   ``domain.features.apply_all``; write each customer with one Lua script that checks the
   version it read, then sets state, offsets and seen ids together (compare-and-set).

A version mismatch (another worker wrote the same customer in between: consumers of other
topics) re-runs that customer. Nothing here imports faust: the offer API reads through
``AsyncRedisStateStore``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Sequence

import orjson
import redis
import redis.asyncio as aredis

from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.events import Event
from adapters import keys
from adapters.ports import ApplyResult, SourcedEvent

# KEYS: state hash, seen zset. ARGV: expected version, state JSON, n offsets, (field, offset)*n,
# now_s, seen cutoff_s, check ('1': refuse if any event id was seen; the caller did not read them),
# event ids... Returns 1 when written, 0 when the version or the seen ids say "read again".
_WRITE_SCRIPT = """
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
local at = 4 + 2 * n
if ARGV[at + 2] == '1' and #ARGV >= at + 3 then
  local ids = {}
  for j = at + 3, #ARGV do table.insert(ids, ARGV[j]) end
  local scores = redis.call('ZMSCORE', KEYS[2], unpack(ids))
  for _, score in ipairs(scores) do
    if score then return 0 end
  end
end
local fields = {'v', tostring(tonumber(v) + 1), 'state', ARGV[2]}
for i = 0, n - 1 do
  table.insert(fields, ARGV[4 + 2 * i])
  table.insert(fields, ARGV[5 + 2 * i])
end
redis.call('HSET', KEYS[1], unpack(fields))
if #ARGV >= at + 3 then
  local seen = {}
  for j = at + 3, #ARGV do
    table.insert(seen, ARGV[at])
    table.insert(seen, ARGV[j])
  end
  redis.call('ZADD', KEYS[2], unpack(seen))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[at + 1])
return 1
"""

MAX_CAS_ROUNDS = 10


def encode_state(state: CustomerState) -> bytes:
    return orjson.dumps(state)


def decode_state(raw: bytes) -> CustomerState:
    return CustomerState.from_dict(orjson.loads(raw))


class RedisStateStore:
    """Synchronous adapter used by the stream worker, replay and tools."""

    def __init__(self, url: str, prefix: str = "nbo", dedupe_ttl_s: int = 7 * 24 * 3600,
                 socket_timeout_s: float = 5.0, cache_size: int = 0) -> None:
        """``cache_size``: customers whose last written state this writer keeps in memory, so a
        batch skips reading them (the write script still checks the version and seen ids)."""
        self.prefix = prefix
        self.dedupe_ttl_s = dedupe_ttl_s
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s)
        self._write = self.client.register_script(_WRITE_SCRIPT)

    def close(self) -> None:
        self.client.close()

    def state_key(self, customer_id: str) -> str:
        return keys.state_key(self.prefix, customer_id)

    def get(self, customer_id: str) -> CustomerState | None:
        raw = self.client.hget(keys.state_key(self.prefix, customer_id), "state")
        return decode_state(raw) if raw else None

    def customer_ids(self) -> Iterator[str]:
        for key in self.client.scan_iter(match=keys.customer_pattern(self.prefix), count=1000):
            text = key.decode()
            yield text[text.index("{") + 1:text.index("}")]

    def counters(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.client.hgetall(keys.stats_key(self.prefix)).items()}

    def count(self, name: str, amount: int = 1) -> None:
        if amount:
            self.client.hincrby(keys.stats_key(self.prefix), name, amount)

    def apply_batch(self, records: Sequence[SourcedEvent], params: FeatureParams, now_s: float) -> ApplyResult:
        """Apply a batch; per customer, records keep the order they have in ``records``."""
        by_customer: dict[str, list[SourcedEvent]] = {}
        for record in records:
            by_customer.setdefault(record.event.customer_id, []).append(record)
        result = ApplyResult()
        pending = by_customer
        for _ in range(MAX_CAS_ROUNDS):
            if not pending:
                break
            conflicted = self._apply_round(pending, params, now_s, result)
            result.conflicts += len(conflicted)
            pending = {c: by_customer[c] for c in conflicted}
        else:
            raise RuntimeError(f"{len(pending)} customers kept changing under us; giving up this batch")
        counters = self.client.pipeline(transaction=False)
        counters.hincrby(keys.stats_key(self.prefix), "applied", result.applied)
        counters.hincrby(keys.stats_key(self.prefix), "duplicates", result.duplicates + result.redelivered)
        counters.execute()
        return result

    def _apply_round(self, batch: dict[str, list[SourcedEvent]], params: FeatureParams, now_s: float,
                     result: ApplyResult) -> list[str]:
        customers = list(batch)
        with self._cache_lock:  # several agents' threads may share this store
            cached = {c: self._cache.get(c) for c in customers}
        to_read = [c for c in customers if cached[c] is None]
        read = self.client.pipeline(transaction=False)
        for customer_id in to_read:
            read.hgetall(keys.state_key(self.prefix, customer_id))
            read.zmscore(keys.seen_key(self.prefix, customer_id), [r.event.event_id for r in batch[customer_id]])
        replies = read.execute() if to_read else []
        loaded: dict[str, tuple[_Cached, list[float | None]]] = {}
        for index, customer_id in enumerate(to_read):
            stored, seen_scores = replies[2 * index], replies[2 * index + 1]
            state = decode_state(stored[b"state"]) if b"state" in stored else CustomerState(customer_id)
            offsets = {f.decode(): int(v) for f, v in stored.items() if f.startswith(b"o:")}
            loaded[customer_id] = (_Cached(stored.get(b"v", b"0").decode(), state, offsets), seen_scores)

        write = self.client.pipeline(transaction=False)
        written: list[tuple[str, ApplyResult, _Cached]] = []
        for customer_id in customers:
            if customer_id in loaded:
                known, seen_scores = loaded[customer_id]
                check = "0"
            else:  # cached: not read; the script refuses if another writer or a seen id intervened
                known, seen_scores = cached[customer_id], [None] * len(batch[customer_id])
                check = "1"
            offsets: dict[str, int] = {}
            seen_now: set[str] = set()
            fresh: list[Event] = []
            tally = ApplyResult()
            for record, seen in zip(batch[customer_id], seen_scores):
                field = keys.offset_field(record.topic, record.partition)
                if record.offset <= offsets.get(field, known.offsets.get(field, -1)):
                    tally.redelivered += 1
                    continue
                offsets[field] = record.offset
                if seen is not None or record.event.event_id in seen_now:
                    tally.duplicates += 1
                    continue
                seen_now.add(record.event.event_id)
                fresh.append(record.event)
            if not offsets:
                result.redelivered += tally.redelivered
                continue
            new_state = apply_all(known.state, fresh, params) if fresh else known.state
            args: list[object] = [known.version, encode_state(new_state), len(offsets)]
            for field, offset in offsets.items():
                args += [field, offset]
            args += [now_s, now_s - self.dedupe_ttl_s, check, *seen_now]
            self._write(keys=[keys.state_key(self.prefix, customer_id), keys.seen_key(self.prefix, customer_id)],
                        args=args, client=write)
            tally.applied = len(fresh)
            written.append((customer_id, tally,
                            _Cached(str(int(known.version) + 1), new_state, {**known.offsets, **offsets})))
        outcomes = write.execute() if written else []
        conflicted = []
        for (customer_id, tally, after), ok in zip(written, outcomes):
            if ok:
                result.applied += tally.applied
                result.redelivered += tally.redelivered
                result.duplicates += tally.duplicates
                self._remember(customer_id, after)
            else:  # redone next round from a fresh read
                with self._cache_lock:
                    self._cache.pop(customer_id, None)
                conflicted.append(customer_id)
        return conflicted

    def _remember(self, customer_id: str, entry: "_Cached") -> None:
        if self.cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[customer_id] = entry
            self._cache.move_to_end(customer_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


@dataclass
class _Cached:
    """What this writer last wrote for a customer: the version it set, the state, the offsets."""

    version: str
    state: CustomerState
    offsets: dict[str, int]


class AsyncRedisStateStore:
    """The offer API's read side: one HGET per request, within a time budget."""

    def __init__(self, url: str, prefix: str = "nbo", timeout_s: float = 0.02) -> None:
        self.prefix = prefix
        self.client = aredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=max(timeout_s, 0.5))

    async def get(self, customer_id: str) -> CustomerState | None:
        raw = await self.client.hget(keys.state_key(self.prefix, customer_id), "state")
        return decode_state(raw) if raw else None

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def counters(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in (await self.client.hgetall(keys.stats_key(self.prefix))).items()}

    async def close(self) -> None:
        await self.client.aclose()
