"""In-memory fakes of the ports in ``adapters.ports``, for unit tests without servers.

Each one mimics its real adapter's observable behaviour, and ``tests/contract`` runs the same
assertions against the fake and the real adapter:

- ``MemoryStateStore`` — ``redis_store.RedisStateStore``: exactly-once apply by per-partition
  offset and seen event id, the same counters; ``reader()`` is the API's ``StateReader``.
- ``MemoryPublisher`` — ``kafka_publisher.Publisher``: outcomes are "acked" into ``records``
  as the encoded bytes the broker would hold; decisions are buffered, bounded, and delivered on
  ``flush()``.
- ``MemoryRegistry`` — ``model_registry.ModelRegistry``: versions, promotion, catalog checks.
- ``FixedModels`` — ``model_watch.ModelHolder``: one model, swapped by the test.
- ``MemoryPolicySource`` — ``policy_file.PolicyHolder``: a staged change is validated on
  ``refresh()``; a bad one is refused and the policy in force keeps serving.
- ``MemoryCatalogSource`` — ``catalog_file.CatalogFile``: ``set(csv_text)`` stages an edit of the
  file; ``refresh()`` validates it with ``parse_catalog``: a bad one is refused (``refusal`` names
  the line and column) and the catalog in force keeps serving.
- ``MemoryDecisionCache`` — ``decision_cache.RedisDecisionCache``: decisions buffered, found in
  the buffer at once, stored on ``flush()``, gone ``ttl_s`` after they were made (by ``clock``).
- ``MemoryLearningSource`` — ``learning_reader.RedisLearningReader``: ``write`` sets a field of
  the learn hash as the stream does; ``refresh()`` (the real one's background read) swaps in the
  parsed hash; while ``store_up`` is False it fails and the evidence read before keeps serving.

- ``MemoryRateLimit`` — ``shared_control.RedisRateLimit``: the same GCRA, on an injectable clock.
- ``MemoryControl`` — ``shared_control.RedisControl``: named values, ``put`` notifying listeners.

Switches for failure tests: ``MemoryStateReader.fail_reads`` (Redis unreachable),
``MemoryPublisher.broker_up`` (broker down), ``MemoryDecisionCache.store_up`` (Redis unreachable),
``MemoryLearningSource.store_up`` (Redis unreachable).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import orjson
import redis

from adapters import keys
from adapters.decision_cache import DecisionCacheError, Pending, fresh
from adapters.kafka_publisher import DecisionItem, PublishError, decision_record, outcome_event_id
from adapters.learning_reader import parse_evidence
from adapters.model_registry import _VERSION, RegistryError, promotion_record
from adapters.ports import ApplyResult, LoopCountRow, LoopUnit, RememberedDecision, SourcedEvent
from adapters.redis_store import count_rows, decode_state, encode_state, loop_unit, report_days
from decisioning import Decision, Policy, PolicyError, policy_from_dict
from decisioning.scores import RankingModel
from domain.catalog import Catalog, CatalogError, parse_catalog
from domain.attribution import LoopFacts, add_signed
from domain.features import FeatureParams, apply_all
from domain.learning import Evidence
from domain.state import CustomerState
from recommender.model import NboModel
from schemas.codec import decode, encode
from schemas.events import Event, OfferDecisionMade, OfferOutcomeRecorded
from schemas.topics import OFFER_DECISIONS, OFFER_OUTCOMES, partition_key


# --- customer state ------------------------------------------------------------------------------

@dataclass
class _Stored:
    """One customer's hash and seen set, as Redis holds them."""

    state: bytes  # the CustomerState as JSON, as in the ``state`` field
    offsets: dict[str, int] = field(default_factory=dict)  # ``o:<topic>:<partition>`` -> offset
    seen: dict[str, float] = field(default_factory=dict)  # event id -> applied at (epoch s)
    version: int = 0
    outbox: dict[str, LoopUnit] = field(default_factory=dict)  # ``x:<version>`` -> unit not settled


class MemoryStateStore:
    """``StateStore`` in memory, with ``RedisStateStore``'s semantics: per customer and per
    (topic, partition), a record at or below the highest applied offset is redelivered and
    changes nothing; a record whose event id was already applied for that customer is a
    duplicate (its offset still advances); seen ids older than ``dedupe_ttl_s`` are forgotten
    when the customer is next written. ``counters()`` holds ``applied`` and ``duplicates``
    (duplicates plus redeliveries) after any batch, and whatever ``count`` added. There is no
    other writer to race with, so ``ApplyResult.conflicts`` stays 0.

    The closed loop: a write's loop facts wait in the customer's outbox, are returned by every
    ``apply_batch`` that touches the customer until ``settle`` adds them (once per unit id, in
    ``loop_counts`` and ``evidence``, the forms of the ``{learn}`` keys); ``loop_stats()`` reads
    the counters as ``RedisLoopStats`` does."""

    def __init__(self, dedupe_ttl_s: int = 7 * 24 * 3600, evidence_half_life_days: float = 30.0) -> None:
        self.dedupe_ttl_s = dedupe_ttl_s
        self.evidence_half_life_days = evidence_half_life_days
        self._customers: dict[str, _Stored] = {}
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()  # several agents' threads may share one store
        self.loop_counts: dict[str, dict[str, int]] = {}  # UTC day -> counter field -> count
        self.evidence: dict[str, list[float]] = {}  # evidence field -> [accepts, others, as_of_s, expected]
        self._settled: dict[str, float] = {}  # unit id -> settled at (epoch s)

    def get(self, customer_id: str) -> CustomerState | None:
        stored = self._customers.get(customer_id)
        return decode_state(stored.state) if stored is not None else None

    def customer_ids(self) -> Iterator[str]:
        return iter(list(self._customers))

    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    def readiness_problems(self) -> list[str]:
        return []

    def count(self, name: str, amount: int = 1) -> None:
        if amount:
            with self._lock:
                self._counters[name] = self._counters.get(name, 0) + amount

    def apply_batch(self, records: Sequence[SourcedEvent], params: FeatureParams, now_s: float) -> ApplyResult:
        by_customer: dict[str, list[SourcedEvent]] = {}
        for record in records:
            by_customer.setdefault(record.event.customer_id, []).append(record)
        result = ApplyResult()
        with self._lock:
            for customer_id, batch in by_customer.items():
                self._apply_customer(customer_id, batch, params, now_s, result)
            for name, amount in (("applied", result.applied), ("duplicates", result.duplicates + result.redelivered)):
                self._counters[name] = self._counters.get(name, 0) + amount
        return result

    def settle(self, units: Sequence[LoopUnit], now_s: float) -> int:
        added = 0
        with self._lock:
            cutoff_s = now_s - self.dedupe_ttl_s
            for unit in units:
                if unit.unit_id not in self._settled:
                    self._settled[unit.unit_id] = now_s
                    added += 1
                    for day, name, delta in unit.counts:
                        counts = self.loop_counts.setdefault(day, {})
                        counts[name] = counts.get(name, 0) + delta
                    for name, accepted, expected, at_s, sign in unit.answers:
                        self.evidence[name] = add_signed(self.evidence.get(name), accepted, expected, at_s, sign,
                                                         self.evidence_half_life_days)
                stored = self._customers.get(unit.customer_id)
                if stored is not None:
                    stored.outbox.pop(unit.version, None)
            self._settled = {i: at for i, at in self._settled.items() if at > cutoff_s}
        return added

    def loop_stats(self) -> "MemoryLoopStats":
        """The loop counters' read side over the same data."""
        return MemoryLoopStats(self)

    def _apply_customer(self, customer_id: str, batch: list[SourcedEvent], params: FeatureParams, now_s: float,
                        result: ApplyResult) -> None:
        known = self._customers.get(customer_id)
        if known is not None:
            result.units += [known.outbox[v] for v in sorted(known.outbox, key=int)]
        known_offsets = known.offsets if known else {}
        known_seen = known.seen if known else {}
        offsets: dict[str, int] = {}
        seen_now: set[str] = set()
        fresh: list[Event] = []
        for record in batch:
            field_name = keys.offset_field(record.topic, record.partition)
            if record.offset <= offsets.get(field_name, known_offsets.get(field_name, -1)):
                result.redelivered += 1
                continue
            offsets[field_name] = record.offset
            if record.event.event_id in known_seen or record.event.event_id in seen_now:
                result.duplicates += 1
                continue
            seen_now.add(record.event.event_id)
            fresh.append(record.event)
        if not offsets:
            return
        state = decode_state(known.state) if known else CustomerState(customer_id)
        facts = LoopFacts()
        if fresh:
            state = apply_all(state, fresh, params, facts)
        seen = {**known_seen, **dict.fromkeys(seen_now, float(now_s))}
        cutoff_s = now_s - self.dedupe_ttl_s
        version = (known.version if known else 0) + 1
        outbox = dict(known.outbox) if known else {}
        if facts:
            unit = loop_unit(customer_id, str(version), fresh[-1].event_id, facts)
            outbox[unit.version] = unit
            result.units.append(unit)
        self._customers[customer_id] = _Stored(encode_state(state), {**known_offsets, **offsets},
                                               {i: at for i, at in seen.items() if at > cutoff_s}, version, outbox)
        result.applied += len(fresh)

    def close(self) -> None:
        pass

    def reader(self) -> "MemoryStateReader":
        """The offer API's read side over the same data."""
        return MemoryStateReader(self)


class MemoryStateReader:
    """``StateReader`` over a ``MemoryStateStore`` (``AsyncRedisStateStore``'s behaviour).

    Set ``fail_reads = True`` and every ``get`` and ``ping`` raises
    ``redis.exceptions.ConnectionError``, as when Redis is unreachable."""

    def __init__(self, store: MemoryStateStore) -> None:
        self.store = store
        self.fail_reads = False
        self.reads = 0

    def _check(self) -> None:
        if self.fail_reads:
            raise redis.exceptions.ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    async def get(self, customer_id: str) -> CustomerState | None:
        self._check()
        self.reads += 1
        return self.store.get(customer_id)

    async def ping(self) -> bool:
        self._check()
        return True

    async def counters(self) -> dict[str, int]:
        self._check()
        return self.store.counters()

    async def close(self) -> None:
        pass


class MemoryLoopStats:
    """``LoopStatsReader`` over a ``MemoryStateStore``'s settled loop counters."""

    def __init__(self, store: MemoryStateStore) -> None:
        self.store = store

    def counts(self, day_from: date, day_to: date) -> list[LoopCountRow]:
        days = report_days(day_from, day_to)
        return count_rows({d: dict(self.store.loop_counts.get(d.isoformat(), {})) for d in days})

    def close(self) -> None:
        pass


# --- publisher -----------------------------------------------------------------------------------

class Record(NamedTuple):
    """One record as the broker holds it."""

    topic: str
    key: bytes
    value: bytes


class MemoryPublisher:
    """``EventPublisher`` in memory (``kafka_publisher.Publisher``'s behaviour).

    ``connected`` after ``start()`` while ``broker_up``. ``publish_outcome`` appends the encoded
    ``OfferOutcomeRecorded`` to ``records`` (topic ``OFFER_OUTCOMES``, keyed by customer) and
    returns its event id, or raises ``PublishError`` when not connected. ``log_decision`` buffers
    up to ``buffer_size`` records and counts the rest in ``dropped``; ``flush()`` (the real
    one's background sender) delivers the buffer when connected and counts ``sent``; ``close()``
    flushes."""

    def __init__(self, buffer_size: int = 10_000) -> None:
        self.buffer_size = buffer_size
        self.broker_up = True
        self.records: list[Record] = []
        self.dropped = 0
        self.sent = 0
        self._started = False
        self._buffer: list[DecisionItem] = []

    @property
    def connected(self) -> bool:
        return self._started and self.broker_up

    @property
    def outcomes(self) -> list[OfferOutcomeRecorded]:
        """The outcomes acked so far, decoded, oldest first."""
        return [decode(r.value) for r in self.records if r.topic == OFFER_OUTCOMES]  # type: ignore[misc]

    @property
    def decisions(self) -> list[OfferDecisionMade]:
        """The decision records delivered so far, decoded, oldest first."""
        return [decode(r.value) for r in self.records if r.topic == OFFER_DECISIONS]  # type: ignore[misc]

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def start(self, wait_s: float = 10.0) -> None:
        self._started = True

    async def publish_outcome(self, body: Any) -> str:
        event = OfferOutcomeRecorded(
            event_id=outcome_event_id(body.decision_id, body.product_id, body.outcome.value),
            customer_id=body.customer_id, occurred_at=datetime.now(timezone.utc), source="offer_api",
            decision_id=body.decision_id, product_id=body.product_id, channel=body.channel,
            outcome=body.outcome, decline_reason=body.decline_reason,
        )
        if not self.connected:
            raise PublishError("not connected to the broker")
        self.records.append(Record(OFFER_OUTCOMES, partition_key(body.customer_id), encode(event)))
        return event.event_id

    def log_decision(self, decision_id: str, customer_id: str, channel: str, decision: Decision,
                     model_version: str, latency_ms: float, at: datetime) -> None:
        if len(self._buffer) >= self.buffer_size:
            self.dropped += 1
            return
        self._buffer.append((decision_id, customer_id, channel, decision, model_version, latency_ms, at))

    def flush(self) -> int:
        """Deliver the buffered decision records if connected; the number delivered."""
        if not self.connected or not self._buffer:
            return 0
        items, self._buffer = self._buffer, []
        delivered = 0
        for item in items:
            try:
                value = decision_record(*item)
            except Exception:  # a record the contract refuses: counted, as the real one does
                self.dropped += 1
                continue
            self.records.append(Record(OFFER_DECISIONS, partition_key(item[1]), value))
            delivered += 1
        self.sent += delivered
        return delivered

    async def close(self) -> None:
        self.flush()
        self._started = False


# --- decisions -----------------------------------------------------------------------------------

class MemoryDecisionCache:
    """``DecisionCache`` in memory (``decision_cache.RedisDecisionCache``'s behaviour, without
    the background writer): ``remember`` buffers up to ``buffer_size`` decisions (the rest are
    counted in ``dropped``) and ``lookup`` finds them there at once; ``flush()`` moves the buffer
    to the store that ``replica()`` caches share, as the real writer does every flush interval.
    A decision is not found once ``clock()`` is more than ``ttl_s`` past its ``at_s``. With
    ``store_up = False`` a lookup that is not answered from the buffer raises
    ``DecisionCacheError``, and ``flush()`` raises and keeps the buffer."""

    def __init__(self, ttl_s: float = 24 * 3600.0, buffer_size: int = 10_000,
                 clock: Callable[[], float] = time.time, _stored: dict[str, Pending] | None = None) -> None:
        self.ttl_s = float(ttl_s)
        self.buffer_size = buffer_size
        self.clock = clock
        self.store_up = True
        self.dropped = 0
        self.written = 0
        self._pending: dict[str, Pending] = {}
        self._stored: dict[str, Pending] = {} if _stored is None else _stored

    def replica(self) -> "MemoryDecisionCache":
        """Another API process's cache over the same store (its own buffer)."""
        return MemoryDecisionCache(self.ttl_s, self.buffer_size, self.clock, self._stored)

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def remember(self, decision_id: str, customer_id: str, channel: str, product_ids: tuple[str, ...],
                 at_s: float) -> None:
        if len(self._pending) >= self.buffer_size:
            self.dropped += 1
            return
        self._pending[decision_id] = (customer_id, channel, product_ids, at_s)

    async def flush(self) -> int:
        if not self._pending:
            return 0
        if not self.store_up:
            raise DecisionCacheError(f"writing {len(self._pending)} decisions: ConnectionError")
        now_s = self.clock()
        written = {i: p for i, p in self._pending.items() if now_s - p[3] < self.ttl_s}
        self._stored.update(written)
        self._pending = {}
        self.written += len(written)
        return len(written)

    async def lookup(self, decision_id: str) -> RememberedDecision | None:
        found = fresh(decision_id, self._pending.get(decision_id), self.ttl_s, self.clock())
        if found is not None:
            return found
        if not self.store_up:
            raise DecisionCacheError("the decision store did not answer (ConnectionError)")
        return fresh(decision_id, self._stored.get(decision_id), self.ttl_s, self.clock())

    async def close(self) -> None:
        if self.store_up:
            await self.flush()


# --- models --------------------------------------------------------------------------------------

class MemoryRegistry:
    """``ModelRegistry`` in memory (``model_registry.ModelRegistry``'s checks and messages,
    without the files: no corrupt artifacts here). ``catalog``: refuse models trained for
    another one."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog
        self._models: dict[str, tuple[NboModel, dict[str, Any]]] = {}
        self._current: str | None = None

    def save(self, model: NboModel, metadata: Mapping[str, Any] | None = None, version: str | None = None) -> str:
        meta = dict(model.metadata)
        meta.update(metadata or {})
        now = time.time()
        meta.setdefault("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
        if version is None:
            version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + f"-{len(self._models):06x}"
        if not _VERSION.match(version):
            raise RegistryError(f"invalid version name {version!r}: letters, digits, '.', '_', '-' only")
        if "catalog_hash" not in meta:
            if self.catalog is None:
                raise RegistryError("metadata needs a catalog_hash (or give the registry the catalog)")
            meta["catalog_hash"] = self.catalog.content_hash()
        if version in self._models:
            raise RegistryError(f"version {version!r} already exists")
        meta.update(version=version, params=model.params.to_dict(), product_ids=list(model.product_ids),
                    tokens=len(model.token_ids))
        self._models[version] = (model, meta)
        return version

    def versions(self) -> list[str]:
        return sorted(self._models)

    def metadata(self, version: str) -> dict[str, Any]:
        try:
            return dict(self._models[version][1])
        except KeyError:
            raise RegistryError(f"no model version {version!r} in memory") from None

    def current_version(self) -> str | None:
        return self._current

    def load(self, version: str | None = None, catalog: Catalog | None = None) -> NboModel:
        version = version or self._current
        if version is None:
            raise RegistryError("no current model in memory; train one and run nbo promote")
        meta = self.metadata(version)
        model = self._models[version][0]
        expected = catalog or self.catalog
        if expected is not None and meta.get("catalog_hash") != expected.content_hash():
            raise RegistryError(
                f"model version {version!r} was trained for catalog {str(meta.get('catalog_hash'))[:12]}, "
                f"the catalog in use is {expected.content_hash()[:12]}; retrain")
        if expected is not None and model.product_ids != expected.ids:
            raise RegistryError(f"model version {version!r}: product order differs from the catalog; retrain")
        return replace(model, version=version, metadata=meta)

    def promote(self, version: str, catalog: Catalog | None = None, *, forced: bool = False,
                overrode: Sequence[str] = ()) -> None:
        self.load(version, catalog)
        model, meta = self._models[version]
        self._models[version] = (model, {**meta, "promotion": promotion_record(forced, overrode)})
        self._current = version


class FixedModels:
    """``ModelSource`` serving one model; ``swap`` replaces it at once (``refresh`` finds nothing)."""

    def __init__(self, model: RankingModel) -> None:
        self.current = model

    @property
    def version(self) -> str:
        return self.current.version

    def swap(self, model: RankingModel) -> None:
        self.current = model

    def refresh(self) -> bool:
        return False


# --- policy --------------------------------------------------------------------------------------

_UNSET = object()


class MemoryPolicySource:
    """``PolicySource`` over a mapping, with ``PolicyHolder``'s behaviour: the first mapping
    must be valid (``PolicyError`` otherwise, as the API refuses to start); ``set`` stages a
    change — as marketing saving the file — and ``refresh`` validates it with
    ``policy_from_dict``: a good one is swapped in (True), a bad one is refused, remembered in
    ``failed_stamp`` and the policy in force keeps serving (False)."""

    def __init__(self, mapping: Mapping[str, Any] | None = None) -> None:
        self.current: Policy = policy_from_dict(mapping or {})
        self.failed_stamp: int | None = None  # which staged change was refused (PolicyHolder's name)
        self.refusals: list[str] = []  # the reasons, oldest first
        self._pending: Any = _UNSET
        self._changes = 0

    def set(self, mapping: Mapping[str, Any]) -> None:
        self._pending = mapping
        self._changes += 1

    @property
    def refused(self) -> bool:
        return self.failed_stamp is not None

    def refresh(self) -> bool:
        if self._pending is _UNSET or self._changes == self.failed_stamp:
            return False
        try:
            policy = policy_from_dict(self._pending)
        except PolicyError as exc:
            self.failed_stamp = self._changes
            self.refusals.append(str(exc))
            return False
        self.current, self.failed_stamp, self._pending = policy, None, _UNSET
        return True


# --- catalog -------------------------------------------------------------------------------------

class MemoryCatalogSource:
    """``CatalogSource`` over CSV text, with ``CatalogFile``'s behaviour: the first catalog must be
    valid (``CatalogError`` otherwise, as a process refuses to start); ``set`` stages an edit — as
    the bank saving the file — and ``refresh`` validates it: a good one with other content is
    swapped in (True), the same content changes nothing (False), a bad one is refused, its
    reason kept in ``refusal``, and the catalog in force keeps serving (False)."""

    def __init__(self, catalog: Catalog | str, name: str = "catalog.csv") -> None:
        self.name = name
        self.current: Catalog = parse_catalog(catalog, name) if isinstance(catalog, str) else catalog
        self.failed_stamp: int | None = None
        self.refusal: str | None = None
        self._pending: str | None = None
        self._changes = 0

    def set(self, text: str) -> None:
        self._pending = text
        self._changes += 1

    @property
    def refused(self) -> bool:
        return self.failed_stamp is not None

    def refresh(self) -> bool:
        if self._pending is None or self._changes == self.failed_stamp:
            return False
        try:
            catalog = parse_catalog(self._pending, self.name)
        except CatalogError as exc:
            self.failed_stamp, self.refusal = self._changes, str(exc)
            return False
        self._pending, self.failed_stamp, self.refusal = None, None, None
        if catalog.content_hash() == self.current.content_hash():
            return False
        self.current = catalog
        return True


# --- shared rate limit and control values --------------------------------------------------------

class MemoryRateLimit:
    """``SharedRateLimit`` in memory, with ``RedisRateLimit``'s GCRA: one theoretical arrival time
    per key in microseconds of ``clock`` (seconds; default the monotonic clock); ``up = False``
    makes ``take`` fail as an unreachable Redis does, ``delay_s`` makes it that slow."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.up = True
        self.delay_s = 0.0
        self.calls = 0
        self._tat_us: dict[str, int] = {}

    async def take(self, key_id: str) -> float:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if not self.up:
            raise redis.ConnectionError("fake Redis is down")
        interval = max(1, round(1_000_000 / self.rate_per_s))
        now = int(self.clock() * 1_000_000)
        tat = max(self._tat_us.get(key_id, now), now)
        tolerance = interval * (self.burst - 1)
        if tat - now > tolerance:
            return max(tat - now - tolerance, 1) / 1_000_000
        self._tat_us[key_id] = tat + interval
        return 0.0

    async def close(self) -> None:
        pass


class MemoryControl:
    """``ControlStore`` in memory, with ``RedisControl``'s behaviour: ``put`` stores and notifies
    every running ``listen`` (from any thread), which first catches up on every name; ``up =
    False`` makes ``get`` / ``put`` fail as an unreachable Redis does."""

    def __init__(self, prefix: str = "nbo") -> None:
        self.prefix = prefix
        self.values: dict[str, str] = {}
        self.up = True
        self._listeners: list[tuple[Any, Any]] = []  # (loop, queue)
        self._lock = threading.Lock()

    def _check(self) -> None:
        if not self.up:
            raise redis.ConnectionError("fake Redis is down")

    def get(self, name: str) -> str | None:
        self._check()
        return self.values.get(name)

    def put(self, name: str, value: str) -> int:
        self._check()
        self.values[name] = value
        with self._lock:
            listeners = list(self._listeners)
        for loop, queue in listeners:
            loop.call_soon_threadsafe(queue.put_nowait, name)
        return len(listeners)

    async def listen(self, on_change: Callable[[str], Any], *, retry_s: float = 1.0,
                     on_subscribed: Callable[[], object] | None = None) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._listeners.append(entry)
        try:
            if on_subscribed is not None:
                on_subscribed()
            for name in ("model", "policy"):
                await on_change(name)
            while True:
                await on_change(await queue.get())
        finally:
            with self._lock:
                self._listeners.remove(entry)

    def close(self) -> None:
        pass


# --- online evidence -----------------------------------------------------------------------------

class MemoryLearningSource:
    """``LearningSource`` over an in-memory learn hash (``RedisLearningReader``'s behaviour, read
    by ``refresh()`` instead of a background task): ``write(field, value)`` stores what the stream
    would (``value`` a list ``[accepts, others, as_of_s, expected]`` or raw bytes); ``refresh()`` parses the
    whole hash and swaps it in, leaving out invalid fields (``invalid``); with ``store_up`` False
    it fails, counts ``failures`` and keeps serving the evidence read before. ``start()`` reads once."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.hash: dict[str, bytes] = {}
        self.store_up = True
        self.clock = clock
        self.failures = 0
        self.invalid = 0
        self.read_at_s: float | None = None
        self._evidence: Mapping[str, Evidence] = {}

    def write(self, name: str, value: list[float] | bytes) -> None:
        self.hash[name] = value if isinstance(value, bytes) else orjson.dumps(value)

    def evidence(self) -> Mapping[str, Evidence]:
        return self._evidence

    async def refresh(self) -> bool:
        if not self.store_up:
            self.failures += 1
            return False
        parsed, refused = parse_evidence(self.hash)
        self.invalid += len(refused)
        self._evidence, self.read_at_s = parsed, self.clock()
        return True

    async def start(self) -> None:
        await self.refresh()

    async def close(self) -> None:
        return None
