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

On a Redis Cluster (``adapters.redis_connect``: detected, or forced by ``mode``) the two round
trips stay two: one cluster pipeline sends each node its customers' commands, every node at
once. One customer's keys share a hash tag, so the script's keys are in one slot; the script
goes as ``EVALSHA`` to the node that holds the slot (redis-py's cluster pipeline refuses its
``evalsha`` method, not the command sent to a named node), and a node that does not know the
script (a promoted replica after a failover) gets it as ``EVAL``, which loads it there. Moved
slots and lost nodes are followed by the cluster client; what outlives its retries is raised as
``redis_connect.ClusterUnavailable``, a ``redis.ConnectionError``.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ContextManager, Iterator, Sequence

import orjson
import redis
from redis.exceptions import NoScriptError, SlotNotCoveredError

from domain.attribution import LoopFacts, parse_counter_field
from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.events import Event
from adapters import keys
from adapters.ports import ApplyResult, LoopCountRow, LoopUnit, SourcedEvent
from adapters.redis_connect import (
    NO_SECURITY,
    LazyAsyncClient,
    Mode,
    RedisSecurity,
    SyncClient,
    cluster_errors_as_unavailable,
    cluster_problems_async,
    connect,
    is_cluster,
    readiness_problems,
    scan_keys,
)

# KEYS: state hash, seen zset. ARGV: expected version, state JSON, n offsets, (field, offset)*n,
# now_s, seen cutoff_s, check ('1': refuse if any event id was seen; the caller did not read them),
# the loop facts of this write for the outbox ('' for none; field x:<new version>), event ids...
# Returns 1 when written, 0 when the version or the seen ids say "read again".
_WRITE_SCRIPT = """
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
local at = 4 + 2 * n
if ARGV[at + 2] == '1' and #ARGV >= at + 4 then
  local ids = {}
  for j = at + 4, #ARGV do table.insert(ids, ARGV[j]) end
  local scores = redis.call('ZMSCORE', KEYS[2], unpack(ids))
  for _, score in ipairs(scores) do
    if score then return 0 end
  end
end
local version = tostring(tonumber(v) + 1)
local fields = {'v', version, 'state', ARGV[2]}
for i = 0, n - 1 do
  table.insert(fields, ARGV[4 + 2 * i])
  table.insert(fields, ARGV[5 + 2 * i])
end
if ARGV[at + 3] ~= '' then
  table.insert(fields, 'x:' .. version)
  table.insert(fields, ARGV[at + 3])
end
redis.call('HSET', KEYS[1], unpack(fields))
if #ARGV >= at + 4 then
  local seen = {}
  for j = at + 4, #ARGV do
    table.insert(seen, ARGV[at])
    table.insert(seen, ARGV[j])
  end
  redis.call('ZADD', KEYS[2], unpack(seen))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[at + 1])
return 1
"""

# The closed loop's shared writes, all keys in the {learn} slot. KEYS: the units' seen zset, the
# evidence hash, then the counter hashes of the days the units name. ARGV: now_s, seen cutoff_s,
# evidence half-life (s), then per unit: id, n counts, (key index, field, delta)*n, n answers,
# (field, accepted '1'|'0', expected, at_s, sign)*n. A unit whose id the seen set has adds nothing;
# the evidence update is domain.attribution.add_signed (a value of the older form [accepts,
# others, as_of_s] starts afresh). Returns the number of units added.
_SETTLE_SCRIPT = """
local now, cutoff, half_life = ARGV[1], ARGV[2], tonumber(ARGV[3])
local i, added = 4, 0
while i <= #ARGV do
  local fresh = redis.call('ZADD', KEYS[1], 'NX', now, ARGV[i]) == 1
  if fresh then added = added + 1 end
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    if fresh then redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]) end
    i = i + 3
  end
  n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    if fresh then
      local field, expected, at, sign = ARGV[i], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
      local a, o, as_of, x = 0, 0, 0, 0
      local raw = redis.call('HGET', KEYS[2], field)
      if raw then
        local e = cjson.decode(raw)
        if #e >= 4 then a, o, as_of, x = e[1], e[2], e[3], e[4] end
      end
      if at > as_of then
        local f = 0.5 ^ ((at - as_of) / half_life)
        a, o, x, as_of = a * f, o * f, x * f, at
      end
      local w = sign
      if as_of > at then w = sign * 0.5 ^ ((as_of - at) / half_life) end
      if ARGV[i + 1] == '1' then a = a + w else o = o + w end
      x = x + w * expected
      redis.call('HSET', KEYS[2], field, string.format('[%.17g,%.17g,%.17g,%.17g]', a, o, as_of, x))
    end
    i = i + 5
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
return added
"""
#: Arguments per settle script call (a batch's units go as several calls in one round trip).
SETTLE_ARGS_PER_CALL = 20_000
#: Longest range of days one ``RedisLoopStats.counts`` call reads.
MAX_REPORT_DAYS = 400

MAX_CAS_ROUNDS = 10


def encode_state(state: CustomerState) -> bytes:
    return orjson.dumps(state)


def decode_state(raw: bytes) -> CustomerState:
    return CustomerState.from_dict(orjson.loads(raw))


def loop_unit(customer_id: str, version: str, last_event_id: str, facts: LoopFacts) -> LoopUnit:
    """One write's loop facts as a unit: counts summed per (day, field) (zeros dropped). The id
    names the customer, the version written and the write's last event, so it is never reused,
    not even by a namespace rebuilt from the log (whose versions start again)."""
    summed: dict[tuple[str, str], int] = {}
    for day, name, delta in facts.counts:
        summed[(day, name)] = summed.get((day, name), 0) + delta
    return LoopUnit(
        unit_id=f"{customer_id}|{version}|{last_event_id}", customer_id=customer_id, version=version,
        counts=tuple((day, name, delta) for (day, name), delta in summed.items() if delta),
        answers=tuple(facts.answers), conversions=tuple(c.to_json() for c in facts.conversions))


def encode_unit(unit: LoopUnit) -> bytes:
    return orjson.dumps({"id": unit.unit_id, "c": unit.counts, "e": unit.answers, "r": unit.conversions})


def decode_unit(customer_id: str, version: str, raw: bytes) -> LoopUnit:
    data = orjson.loads(raw)
    return LoopUnit(unit_id=data["id"], customer_id=customer_id, version=version,
                    counts=tuple((d, f, int(n)) for d, f, n in data["c"]),
                    # an answer of the older form (no expected) is left out of the evidence
                    answers=tuple((f, bool(a), float(x), float(t), int(s)) for f, a, x, t, s in
                                  (e for e in data["e"] if len(e) == 5)),
                    conversions=tuple(data["r"]))


def stored_units(customer_id: str, stored: dict[bytes, bytes]) -> list[LoopUnit]:
    """The outbox units in a customer's state hash (``HGETALL``), oldest first."""
    found = [(int(f[2:]), raw) for f, raw in stored.items() if f.startswith(b"x:")]
    return [decode_unit(customer_id, str(v), raw) for v, raw in sorted(found)]


def settle_calls(units: Sequence[LoopUnit], prefix: str, now_s: float, cutoff_s: float,
                 half_life_days: float) -> list[tuple[list[str], list[Any]]]:
    """(keys, args) of the settle script calls for ``units``, each at most about
    ``SETTLE_ARGS_PER_CALL`` arguments."""
    calls: list[tuple[list[str], list[Any]]] = []
    base = [keys.learn_seen_key(prefix), keys.learn_key(prefix)]
    call_keys: list[str] = list(base)
    index: dict[str, int] = {}
    args: list[Any] = [now_s, cutoff_s, half_life_days * 86_400.0]
    for unit in units:
        args.append(unit.unit_id)
        args.append(len(unit.counts))
        for day, name, delta in unit.counts:
            if day not in index:
                call_keys.append(keys.loop_counts_key(prefix, day))
                index[day] = len(call_keys)  # Lua's KEYS are 1-based
            args += [index[day], name, delta]
        args.append(len(unit.answers))
        for name, accepted, expected, at_s, sign in unit.answers:
            args += [name, "1" if accepted else "0", repr(float(expected)), repr(float(at_s)), sign]
        if len(args) >= SETTLE_ARGS_PER_CALL:
            calls.append((call_keys, args))
            call_keys, index, args = list(base), {}, [now_s, cutoff_s, half_life_days * 86_400.0]
    if len(args) > 3:
        calls.append((call_keys, args))
    return calls


def count_rows(by_day: dict[date, dict[str, int]]) -> list[LoopCountRow]:
    """``LoopCountRow`` s from each day's counter fields (``domain.attribution.counter_field``)."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for day, fields in by_day.items():
        for name, value in fields.items():
            product_id, channel, segment, arm, measure, model_version = parse_counter_field(name)
            row = rows.setdefault((day, product_id, channel, segment, arm, model_version), {"declined": {}})
            if measure.startswith("declined:"):
                row["declined"][measure.split(":", 1)[1]] = int(value)
            else:
                row[measure] = int(value)
    return [LoopCountRow(*k, **v) for k, v in sorted(rows.items())]


def report_days(day_from: date, day_to: date) -> list[date]:
    if day_to < day_from:
        raise ValueError(f"day_to {day_to} is before day_from {day_from}")
    days = (day_to - day_from).days + 1
    if days > MAX_REPORT_DAYS:
        raise ValueError(f"{days} days asked; at most {MAX_REPORT_DAYS} in one call")
    return [day_from + timedelta(days=i) for i in range(days)]


class RedisStateStore:
    """Synchronous adapter used by the stream worker, replay and tools."""

    def __init__(self, url: str, prefix: str = "nbo", dedupe_ttl_s: int = 7 * 24 * 3600,
                 socket_timeout_s: float = 5.0, cache_size: int = 0, mode: Mode = "auto",
                 security: RedisSecurity = NO_SECURITY, evidence_half_life_days: float = 30.0,
                 outbox: bool = True) -> None:
        """``cache_size``: customers whose last written state this writer keeps in memory, so a
        batch skips reading them (the write script still checks the version and seen ids).
        ``mode``: ``auto`` (ask the server), ``single`` or ``cluster``. Nothing connects before
        the first command, so a Redis down at start fails that command (a transient error).
        ``evidence_half_life_days``: the online evidence's (``NBO_LOOP__EVIDENCE_HALF_LIFE_DAYS``).
        ``outbox``: keep each write's loop facts for ``settle`` (off for a rebuild from the log,
        whose facts were counted live already)."""
        self.evidence_half_life_days = evidence_half_life_days
        self.outbox = outbox
        self.prefix = prefix
        self.dedupe_ttl_s = dedupe_ttl_s
        self.cache_size = cache_size
        self.url = url
        self.mode = mode
        self.socket_timeout_s = socket_timeout_s
        self.security = security
        self.cluster = False
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._client: SyncClient | None = None
        self._connect_lock = threading.Lock()

    @property
    def client(self) -> SyncClient:
        """The ``redis.Redis`` or ``RedisCluster``, opened on first use."""
        client = self._client
        if client is None:
            with self._connect_lock:
                if self._client is None:
                    opened = connect(self.url, self.mode, socket_timeout_s=self.socket_timeout_s, security=self.security)
                    self._write = opened.register_script(_WRITE_SCRIPT)
                    self._settle = opened.register_script(_SETTLE_SCRIPT)
                    self.cluster = is_cluster(opened)
                    self._client = opened
                client = self._client
        return client

    def readiness_problems(self) -> list[str]:
        """What keeps this store from writing every customer now (empty when nothing): Redis not
        answering; on a cluster, a node down or not saying ``cluster_state:ok``, or a slot
        without a node (``redis_connect.readiness_problems``)."""
        try:
            client = self.client
        except (redis.RedisError, OSError) as exc:
            return [f"Redis: {type(exc).__name__}: {exc}"]
        return readiness_problems(client)

    def _guard(self) -> ContextManager[None]:
        return cluster_errors_as_unavailable() if self.cluster else contextlib.nullcontext()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def state_key(self, customer_id: str) -> str:
        return keys.state_key(self.prefix, customer_id)

    def get(self, customer_id: str) -> CustomerState | None:
        client = self.client
        with self._guard():
            raw = client.hget(keys.state_key(self.prefix, customer_id), "state")
        return decode_state(raw) if raw else None

    def customer_ids(self) -> Iterator[str]:
        """Every customer with state in this namespace (on a cluster: on every primary)."""
        client = self.client
        with self._guard():
            for key in scan_keys(client, keys.customer_pattern(self.prefix)):
                text = key.decode()
                yield text[text.index("{") + 1:text.index("}")]

    def counters(self) -> dict[str, int]:
        client = self.client
        with self._guard():
            return {k.decode(): int(v) for k, v in client.hgetall(keys.stats_key(self.prefix)).items()}

    def count(self, name: str, amount: int = 1) -> None:
        if amount:
            client = self.client
            with self._guard():
                client.hincrby(keys.stats_key(self.prefix), name, amount)

    def apply_batch(self, records: Sequence[SourcedEvent], params: FeatureParams, now_s: float) -> ApplyResult:
        """Apply a batch; per customer, records keep the order they have in ``records``."""
        client = self.client
        try:
            with self._guard():
                return self._apply_batch(client, records, params, now_s)
        except BaseException:
            # A retry must read these customers again: a write that went through before the
            # failure left its loop facts in the outbox, and only a read finds them.
            with self._cache_lock:
                for record in records:
                    self._cache.pop(record.event.customer_id, None)
            raise

    def settle(self, units: Sequence[LoopUnit], now_s: float) -> int:
        """Add the units to the ``{learn}`` keys (one script call per ~20,000 arguments, all in
        one round trip to the slot's node), then delete their outbox fields (one more)."""
        if not units:
            return 0
        client = self.client
        with self._guard():
            calls = settle_calls(units, self.prefix, now_s, now_s - self.dedupe_ttl_s, self.evidence_half_life_days)
            if self.cluster:
                added = sum(self._cluster_eval(client, self._settle, _SETTLE_SCRIPT, calls))
            else:
                pipe = client.pipeline(transaction=False)
                for call_keys, args in calls:
                    self._settle(keys=call_keys, args=args, client=pipe)
                added = sum(pipe.execute())
            done = client.pipeline(transaction=False)
            for unit in units:
                state_key = keys.state_key(self.prefix, unit.customer_id)
                field = keys.outbox_field(unit.version)
                if self.cluster:
                    done.execute_command("HDEL", state_key, field, target_nodes=_node_of(client, state_key))
                else:
                    done.hdel(state_key, field)
            done.execute()
        return int(added)

    def _apply_batch(self, client: SyncClient, records: Sequence[SourcedEvent], params: FeatureParams,
                     now_s: float) -> ApplyResult:
        by_customer: dict[str, list[SourcedEvent]] = {}
        for record in records:
            by_customer.setdefault(record.event.customer_id, []).append(record)
        result = ApplyResult()
        pending = by_customer
        for _ in range(MAX_CAS_ROUNDS):
            if not pending:
                break
            conflicted = self._apply_round(client, pending, params, now_s, result)
            result.conflicts += len(conflicted)
            pending = {c: by_customer[c] for c in conflicted}
        else:
            raise RuntimeError(f"{len(pending)} customers kept changing under us; giving up this batch")
        if result.units:
            unique: dict[str, LoopUnit] = {}
            for unit in result.units:
                unique.setdefault(unit.unit_id, unit)
            result.units = list(unique.values())
        counters = client.pipeline(transaction=False)
        counters.hincrby(keys.stats_key(self.prefix), "applied", result.applied)
        counters.hincrby(keys.stats_key(self.prefix), "duplicates", result.duplicates + result.redelivered)
        counters.execute()
        return result

    def _apply_round(self, client: SyncClient, batch: dict[str, list[SourcedEvent]], params: FeatureParams,
                     now_s: float, result: ApplyResult) -> list[str]:
        customers = list(batch)
        with self._cache_lock:  # several agents' threads may share this store
            cached = {c: self._cache.get(c) for c in customers}
        to_read = [c for c in customers if cached[c] is None]
        cluster = self.cluster
        if cluster:
            replies = self._cluster_read(client, batch, to_read)
        else:
            read = client.pipeline(transaction=False)
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
            if self.outbox:
                result.units += stored_units(customer_id, stored)  # not settled by their writer

        write = None if cluster else client.pipeline(transaction=False)
        cluster_writes: list[tuple[list[str], list[Any]]] = []
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
            facts = LoopFacts()
            new_state = apply_all(known.state, fresh, params, facts) if fresh else known.state
            new_version = str(int(known.version) + 1)
            unit = loop_unit(customer_id, new_version, fresh[-1].event_id, facts) if facts and self.outbox else None
            args: list[object] = [known.version, encode_state(new_state), len(offsets)]
            for field, offset in offsets.items():
                args += [field, offset]
            args += [now_s, now_s - self.dedupe_ttl_s, check, encode_unit(unit) if unit is not None else b"",
                     *seen_now]
            script_keys = [keys.state_key(self.prefix, customer_id), keys.seen_key(self.prefix, customer_id)]
            if write is None:
                cluster_writes.append((script_keys, args))
            else:
                self._write(keys=script_keys, args=args, client=write)
            tally.applied = len(fresh)
            written.append((customer_id, tally, _Cached(new_version, new_state, {**known.offsets, **offsets}), unit))
        if write is None:
            outcomes = self._cluster_write(client, cluster_writes)
        else:
            outcomes = write.execute() if written else []
        conflicted = []
        for (customer_id, tally, after, unit), ok in zip(written, outcomes):
            if ok:
                result.applied += tally.applied
                result.redelivered += tally.redelivered
                result.duplicates += tally.duplicates
                if unit is not None:
                    result.units.append(unit)
                self._remember(customer_id, after)
            else:  # redone next round from a fresh read
                with self._cache_lock:
                    self._cache.pop(customer_id, None)
                conflicted.append(customer_id)
        return conflicted

    def _cluster_read(self, client: Any, batch: dict[str, list[SourcedEvent]], to_read: list[str]) -> list[Any]:
        """The read round trip on a cluster: each customer's two reads sent to the node of its slot."""
        if not to_read:
            return []
        read = client.pipeline(transaction=False)
        for customer_id in to_read:
            state_key = keys.state_key(self.prefix, customer_id)
            node = _node_of(client, state_key)
            read.execute_command("HGETALL", state_key, target_nodes=node)
            read.execute_command("ZMSCORE", keys.seen_key(self.prefix, customer_id),
                                 *[r.event.event_id for r in batch[customer_id]], target_nodes=node)
        return read.execute()  # type: ignore[no-any-return]

    def _cluster_write(self, client: Any, writes: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """The write round trip on a cluster: one ``EVALSHA`` per customer on the node of its slot;
        those a node answers NOSCRIPT go again as ``EVAL`` (which loads the script there)."""
        return self._cluster_eval(client, self._write, _WRITE_SCRIPT, writes)

    def _cluster_eval(self, client: Any, script: Any, source: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Script calls in one round trip on a cluster, each ``EVALSHA`` sent to the node of its
        keys' slot; NOSCRIPT answers go again as ``EVAL``."""
        if not calls:
            return []
        sha = script.sha
        pipe = client.pipeline(transaction=False)
        for script_keys, args in calls:
            pipe.execute_command("EVALSHA", sha, len(script_keys), *script_keys, *args,
                                 target_nodes=_node_of(client, script_keys[0]))
        outcomes = pipe.execute(raise_on_error=False)
        unknown = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, NoScriptError)]
        if unknown:
            again = client.pipeline(transaction=False)
            for i in unknown:
                script_keys, args = calls[i]
                again.execute_command("EVAL", source, len(script_keys), *script_keys, *args,
                                      target_nodes=_node_of(client, script_keys[0]))
            for i, outcome in zip(unknown, again.execute(raise_on_error=False)):
                outcomes[i] = outcome
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return outcomes  # type: ignore[no-any-return]

    def _remember(self, customer_id: str, entry: "_Cached") -> None:
        if self.cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[customer_id] = entry
            self._cache.move_to_end(customer_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def _node_of(client: Any, key: str) -> Any:
    """The primary of ``key``'s slot in the client's slot map, read again once if the map has
    none (the slot was unassigned when the map was last read)."""
    try:
        return client.get_node_from_key(key)
    except SlotNotCoveredError:
        client.nodes_manager.initialize()
        return client.get_node_from_key(key)


@dataclass
class _Cached:
    """What this writer last wrote for a customer: the version it set, the state, the offsets."""

    version: str
    state: CustomerState
    offsets: dict[str, int]


class AsyncRedisStateStore:
    """The offer API's read side: one HGET per request, within a time budget. Nothing connects
    before the first call; ``mode`` as for ``RedisStateStore``."""

    def __init__(self, url: str, prefix: str = "nbo", timeout_s: float = 0.02, mode: Mode = "auto",
                 security: RedisSecurity = NO_SECURITY) -> None:
        self.prefix = prefix
        self._redis = LazyAsyncClient(url, mode, socket_timeout_s=timeout_s, connect_timeout_s=max(timeout_s, 0.5),
                                      security=security)

    async def get(self, customer_id: str) -> CustomerState | None:
        client = self._redis.client
        if client is None:
            client = await self._redis.open()
        raw = await client.hget(keys.state_key(self.prefix, customer_id), "state")
        return decode_state(raw) if raw else None

    async def ping(self) -> bool:
        """The server answers; on a cluster: every node says ``cluster_state:ok`` with every slot
        assigned (a slot nobody serves makes some customers' reads fail)."""
        client = await self._redis.open()
        if self._redis.cluster:
            return not await cluster_problems_async(client)  # type: ignore[arg-type]
        return bool(await client.ping())

    async def counters(self) -> dict[str, int]:
        client = self._redis.client
        if client is None:
            client = await self._redis.open()
        return {k.decode(): int(v) for k, v in (await client.hgetall(keys.stats_key(self.prefix))).items()}

    async def close(self) -> None:
        await self._redis.aclose()


class RedisLoopStats:
    """The closed loop's live counters (``LoopStatsReader``): one ``HGETALL`` per day asked, in
    one round trip (on a cluster: to the node of the ``{learn}`` slot). Nothing connects before
    the first call; ``mode`` as for ``RedisStateStore``."""

    def __init__(self, url: str, prefix: str = "nbo", mode: Mode = "auto", socket_timeout_s: float = 5.0,
                 security: RedisSecurity = NO_SECURITY) -> None:
        self.url = url
        self.prefix = prefix
        self.mode = mode
        self.socket_timeout_s = socket_timeout_s
        self.security = security
        self._client: SyncClient | None = None

    def counts(self, day_from: date, day_to: date) -> list[LoopCountRow]:
        days = report_days(day_from, day_to)
        if self._client is None:
            self._client = connect(self.url, self.mode, socket_timeout_s=self.socket_timeout_s, security=self.security)
        client = self._client
        cluster = is_cluster(client)
        guard = cluster_errors_as_unavailable() if cluster else contextlib.nullcontext()
        with guard:
            pipe = client.pipeline(transaction=False)
            for day in days:
                key = keys.loop_counts_key(self.prefix, day.isoformat())
                if cluster:
                    pipe.execute_command("HGETALL", key, target_nodes=_node_of(client, key))
                else:
                    pipe.hgetall(key)
            replies = pipe.execute()
        return count_rows({day: {f.decode(): int(v) for f, v in reply.items()} for day, reply in zip(days, replies)})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
