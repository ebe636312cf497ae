"""The stream-engine core: what every engine does with a batch of records, without any Kafka
client. The engines (``streams.direct``, ``streams.faust_engine``) are transports over it: they
fetch records, hand them to ``BatchHandler``, and release offsets through ``CommitGate``.

- ``split_batch``: decode and validate (topic, partition, offset, key, value) records into
  sourced events and ``DeadLetter`` s (masked; products checked against the catalog; customer ids
  and event times against the bank's ``ContractRules``; amounts converted into the base
  currency, a currency without a rate dead-lettered).
- ``BatchHandler.handle``: send the dead letters through the transport's async send and wait
  for the broker's ack, count and log them, then apply the good records to the store in one
  batch, off the event loop, with bounded retries and backoff (exactly-once effect by source
  offset and event id, see ``adapters.redis_store``). A store that stays down past the retries,
  or any other failure, goes to the exit policy before anything of the batch is committed.
- ``CommitGate``: applied offsets (direct) or messages (faust) are released only once their
  store writes are ``lag_s`` old: Redis with AOF ``everysec`` can lose the last second of writes
  on a crash, and an offset committed past a lost write would lose its records for good. Pure;
  the clock comes in as an argument.
- ``OffsetCommits``: the gate plus the direct engine's commit pacing (at most one commit per
  ``interval_s``, each covering the highest settled offset of every partition).
- ``stop_process``: the exit policy. Log, flush the logs and leave with ``EXIT_CODE`` (3)
  without committing; a restart re-reads from the last committed offsets and the store drops
  what it already applied.

Dead-letter record format (topic ``nbo.dead-letter``), built by ``dead_letter`` with the masking
of ``streams.masking`` (card-number-like digits -> ``****`` + last four, free text ->
``<text, N chars>``):

- key: the original record key with card numbers and free text masked (UTF-8, may be null);
  the original key itself when ``keep_original``.
- value: UTF-8 JSON ``{"reason": str, "field": str | null, "source": {"topic": str,
  "partition": int, "offset": int}, "key": str | null, "value": any | null, "value_sha256": str,
  "value_size": int, "original": bool}``. ``reason``, ``field`` and ``key`` are masked;
  ``value`` is the record's JSON masked the same way (null when the bytes are not JSON);
  ``value_sha256`` (hex) and ``value_size`` (bytes) are of the original value, to match the
  letter against the source record. With ``keep_original`` (``NBO_STREAM__DEAD_LETTER_KEEP_ORIGINAL``,
  for a dead-letter topic that is itself cleared for personal data) ``original`` is true and
  ``key_b64`` / ``value_b64`` add the original key and value, base64-encoded, byte for byte.

Unknown products: a purchase or offer outcome whose ``product_id`` is not in the catalog the
engine was given (``KnownProducts``) is dead-lettered too (field ``product_id``), as the offer
API refuses it, so holdings only ever name catalog products. ``follow_catalog`` (both engines
call it every ``NBO_CATALOG__POLL_S``) swaps in the products of a changed catalog file from the
next batch on: a launched product's purchases are accepted, a retired one's dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Hashable, Iterable, Mapping, NoReturn, Sequence, TypeVar

import orjson
import redis

from adapters.ports import ApplyResult, CatalogSource, LoopUnit, SourcedEvent, StateStore
from domain.catalog import Catalog
from domain.features import FeatureParams
from domain.money import ExchangeRates, UnknownRate, in_base_currency
from schemas.codec import InvalidEvent, decode
from schemas.rules import DEFAULT_RULES, ContractRules
from streams.masking import Masker, parsed

log = logging.getLogger("nbo.worker")

EXIT_CODE = 3
REDIS_DOWN_EXIT_CODE = EXIT_CODE  # the name the reliability tests and operators know
TRANSIENT_STORE_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)

RawRecord = tuple[str, int, int, "bytes | None", bytes]  # topic, partition, offset, key, value
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(frozen=True)
class DeadLetter:
    """What goes to the dead-letter topic (see the module docstring): the masked reason, field and
    key, where the record came from, its masked JSON, a digest of its bytes, and the original key
    and bytes only when they are kept. ``key`` is the Kafka key to send the letter with."""

    reason: str
    field: str | None
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value_masked: Any
    value_sha256: str
    value_size: int
    original_key: bytes | None = None
    original_value: bytes | None = None  # only with keep_original

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "reason": self.reason,
            "field": self.field,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "value": self.value_masked,
            "value_sha256": self.value_sha256,
            "value_size": self.value_size,
            "original": self.original_value is not None,
        }
        if self.original_value is not None:
            body["key_b64"] = base64.b64encode(self.original_key).decode() if self.original_key is not None else None
            body["value_b64"] = base64.b64encode(self.original_value).decode()
        return orjson.dumps(body)


def dead_letter(reason: str, field: str | None, topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes, *, keep_original: bool = False) -> DeadLetter:
    """The dead letter of one refused record, masked (``streams.masking``); with
    ``keep_original`` the original key and bytes go with it (and the key is sent as it was)."""
    masker = Masker()
    is_json, data = parsed(value)
    value_masked = masker.value(data) if is_json else None
    masked_key = masker.key(key)
    return DeadLetter(
        reason=masker.text(reason),
        field=masker.text(field) if field is not None else None,
        topic=topic, partition=partition, offset=offset,
        key=key if keep_original else (masked_key.encode() if masked_key is not None else None),
        value_masked=value_masked,
        value_sha256=hashlib.sha256(value).hexdigest(),
        value_size=len(value),
        original_key=key if keep_original else None,
        original_value=value if keep_original else None,
    )


@dataclass(frozen=True)
class KnownProducts:
    """The product ids a stream accepts in purchases and offer outcomes: the served catalog's.
    A plain set lookup, so a reloaded catalog is a new ``KnownProducts`` swapped in."""

    ids: frozenset[str]
    catalog_hash: str

    @classmethod
    def of(cls, catalog: Catalog) -> "KnownProducts":
        return cls(frozenset(p.product_id for p in catalog), catalog.content_hash())

    def refusal(self, product_id: str) -> str | None:
        """Why ``product_id`` is refused, or None when the catalog has it."""
        if product_id in self.ids:
            return None
        return (f"product {product_id!r} is not in the catalog (catalog sha256 {self.catalog_hash[:12]}, "
                f"{len(self.ids)} products)")


def follow_catalog(handler: "BatchHandler", catalogs: CatalogSource) -> bool:
    """Reload the catalog if its file changed (a bad change is refused, the catalog in force
    stays); the handler checks the next batch against a new one's products. True if swapped.
    Blocking (reads the file): run it off the event loop."""
    if not catalogs.refresh():
        return False
    handler.products = KnownProducts.of(catalogs.current)
    log.warning("stream now accepts the products of catalog %s (%d products)", handler.products.catalog_hash[:12],
                len(handler.products.ids))
    return True


_PRODUCT_EVENTS = frozenset({"purchase", "offer_outcome"})


def split_batch(raw_records: Iterable[RawRecord], products: KnownProducts | None = None, *,
                keep_original: bool = False, rules: ContractRules = DEFAULT_RULES,
                rates: ExchangeRates | None = None) -> tuple[list[SourcedEvent], list[DeadLetter]]:
    """Decode (topic, partition, offset, key, value) records into events and dead letters.

    Refused: what ``decode`` refuses under the bank's ``rules`` (customer id pattern, card
    numbers, earliest event time), a key that is not the event's customer id, (when ``products``
    is given) a ``product_id`` the catalog does not have, and (when ``rates`` is given) a currency
    the rate table has no rate for (field ``currency``). The events come out with their amounts in
    the base currency of ``rates`` (``domain.money.in_base_currency``). Dead letters are masked
    unless ``keep_original`` (see ``dead_letter``)."""
    good: list[SourcedEvent] = []
    bad: list[DeadLetter] = []
    for topic, partition, offset, key, value in raw_records:
        try:
            event = decode(value, rules)
        except InvalidEvent as exc:
            bad.append(dead_letter(exc.reason, exc.field, topic, partition, offset, key, value,
                                   keep_original=keep_original))
            continue
        if key is not None and key != event.customer_id.encode():
            bad.append(dead_letter("record key is not the event's customer_id", "key", topic, partition, offset,
                                   key, value, keep_original=keep_original))
            continue
        # Only purchases and outcomes name a product; asking any other event (a pydantic model)
        # for a field it lacks raises and catches AttributeError, ~1 us an event.
        if products is not None and event.type in _PRODUCT_EVENTS:
            refused = products.refusal(event.product_id)
            if refused is not None:
                bad.append(dead_letter(refused, "product_id", topic, partition, offset, key, value,
                                       keep_original=keep_original))
                continue
        if rates is not None:
            try:
                event = in_base_currency(event, rates)
            except UnknownRate as exc:
                bad.append(dead_letter(str(exc), "currency", topic, partition, offset, key, value,
                                       keep_original=keep_original))
                continue
        good.append(SourcedEvent(event, topic, partition, offset))
    return good, bad


class StoreUnavailable(RuntimeError):
    """The store stayed unreachable past the bounded retries."""


def with_retries(call: Callable[[], T], retries: int, *, sleep: Callable[[float], None] = time.sleep,
                 first_delay_s: float = 0.1, max_delay_s: float = 5.0) -> T:
    """``call()``, retried ``retries`` times on a transient store error with exponential backoff
    (``first_delay_s`` doubling up to ``max_delay_s``); then ``StoreUnavailable``. Blocking: run
    it off the event loop."""
    delay_s = first_delay_s
    for attempt in range(retries + 1):
        try:
            return call()
        except TRANSIENT_STORE_ERRORS as exc:
            if attempt == retries:
                raise StoreUnavailable(f"Redis unavailable after {retries} retries ({exc})") from exc
            log.warning("Redis error (%s); retry %d/%d in %.1f s", exc, attempt + 1, retries, delay_s)
            sleep(delay_s)
            delay_s = min(delay_s * 2, max_delay_s)
    raise AssertionError("unreachable")


def wait_for_store(problems: Callable[[], list[str]], wait_s: float, *,
                   clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                   poll_s: float = 0.5, log_every_s: float = 5.0) -> float:
    """Return once ``problems()`` (``StateStore.readiness_problems``) is empty, or raise
    ``StoreUnavailable`` when it is not within ``wait_s``; returns the seconds waited. A worker
    starting while Redis is down, or a Redis Cluster restarted a moment ago still says
    ``cluster_state:fail``, waits here before it joins its consumer group, and says so:
    "waiting for Redis ..." with what is wrong, at once and every ``log_every_s``."""
    started = clock()
    deadline = started + wait_s
    next_log = started
    while True:
        found = problems()
        now = clock()
        if not found:
            if now > started:
                log.info("Redis ready after %.1f s", now - started)
            return now - started
        if now >= deadline:
            raise StoreUnavailable(f"Redis unavailable: not ready within {wait_s:.0f} s ({'; '.join(found)})")
        if now >= next_log:
            log.warning("waiting for Redis (%.0f s left): %s", deadline - now, "; ".join(found))
            next_log = now + log_every_s
        sleep(min(poll_s, max(0.0, deadline - now)))


class StoreWatch:
    """Whether the store answers now, asked before offsets are committed (both engines).

    The commit lag assumes the store kept what it acknowledged; a Redis that died since may have
    lost its last writes (AOF ``everysec``), so while it does not answer (a cluster: a node
    down or not ``cluster_state:ok``) nothing is committed: a worker that then stops leaves
    those records to be re-read. An idle worker is the case: it notices a dead Redis only at
    its next batch, and its held offsets come of age meanwhile. Logs once per outage."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.down = False

    async def ready(self) -> bool:
        problems = await asyncio.to_thread(self.store.readiness_problems)
        if problems and not self.down:
            log.warning("Redis not ready (%s); holding offsets, not committing", "; ".join(problems))
        elif not problems and self.down:
            log.info("Redis ready again; committing")
        self.down = bool(problems)
        return not problems


def store_ready_or_stop(store: StateStore, wait_s: float) -> None:
    """A starting worker's first step, before it joins its group (both engines): ``wait_for_store``,
    and ``stop_process`` (exit 3, "Redis unavailable") if Redis is not ready within ``wait_s``."""
    try:
        wait_for_store(store.readiness_problems, wait_s)
    except StoreUnavailable as exc:
        stop_process(str(exc), exc)


def stop_process(reason: str, exc: BaseException | None = None) -> NoReturn:
    """The exit policy: log loudly, flush the logs, exit ``EXIT_CODE`` at once. No ``finally``
    block runs, so nothing gets committed on the way out."""
    if exc is not None and not isinstance(exc, StoreUnavailable):
        log.critical("%s; stopping without committing", reason, exc_info=exc)
    else:
        log.critical("%s; stopping without committing", reason)
    logging.shutdown()
    os._exit(EXIT_CODE)


SendDeadLetters = Callable[[Sequence[DeadLetter]], Awaitable[None]]
#: Sends conversion records (``schemas.conversions``, as JSON objects) to ``nbo.conversions``,
#: keyed by customer id, and returns once the broker acked them all (raising otherwise).
SendConversions = Callable[[Sequence[Mapping[str, Any]]], Awaitable[None]]
OnFailure = Callable[[str, BaseException], NoReturn]


@dataclass(frozen=True)
class Handled:
    applied: int  # good records handed to the store (the store drops redeliveries among them)
    dead_letters: int


class BatchHandler:
    """Split -> dead-letter -> apply for one decoded batch; both engines use the same one.

    ``send_dead_letters`` is the transport's: it sends every letter and returns once the broker
    acked them all (raising otherwise). Blocking store calls run in a worker thread so the event
    loop keeps heartbeating and fetching. Any failure calls ``on_failure`` (``stop_process``
    unless a test passes its own), so ``handle`` returns only for a fully handled batch.
    ``products``, ``keep_original`` and the bank's ``contract`` rules go to ``split_batch``, with
    ``params.rates`` for the conversion into the base currency; the log line of a dead letter
    carries only its masked reason and field.

    The closed loop (``domain.attribution``): the store returns the batch's loop facts (and any a
    dead writer left in an outbox); the conversions among them go out through
    ``send_conversions`` and are acked, then ``StateStore.settle`` adds the counts and the
    evidence, once per unit, before ``handle`` returns (so before any offset is committed). A
    crash in between leaves them in the outbox: the redelivery finds and re-sends them, and the
    warehouse and the settle script drop what was already there."""

    def __init__(self, store: StateStore, params: FeatureParams, send_dead_letters: SendDeadLetters, *,
                 retries: int, products: KnownProducts | None = None, keep_original: bool = False,
                 contract: ContractRules = DEFAULT_RULES, send_conversions: SendConversions | None = None,
                 clock_s: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, on_failure: OnFailure = stop_process) -> None:
        self.store = store
        self.send_conversions = send_conversions
        self.products = products
        self.keep_original = keep_original
        self.contract = contract
        self.params = params
        self.send_dead_letters = send_dead_letters
        self.retries = retries
        self.clock_s = clock_s
        self.sleep = sleep
        self.on_failure = on_failure

    async def handle(self, raw_records: Iterable[RawRecord]) -> Handled:
        try:
            good, bad = split_batch(raw_records, self.products, keep_original=self.keep_original,
                                    rules=self.contract, rates=self.params.rates)
            if bad:
                await self.send_dead_letters(bad)
                await asyncio.to_thread(with_retries, lambda: self.store.count("dead_letters", len(bad)),
                                        self.retries, sleep=self.sleep)
                for letter in bad:
                    log.warning("dead-lettered %s[%d]@%d: %s (field %s)", letter.topic, letter.partition,
                                letter.offset, letter.reason, letter.field)  # both masked
            if good:
                result = await asyncio.to_thread(self.apply, good)
                if result.units:
                    await self.settle(result.units)
            return Handled(len(good), len(bad))
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as exc:
            self.on_failure(str(exc), exc)
        except Exception as exc:
            self.on_failure(f"batch handling failed ({type(exc).__name__}: {exc})", exc)

    def apply(self, good: Sequence[SourcedEvent]) -> ApplyResult:
        return with_retries(lambda: self.store.apply_batch(good, self.params, self.clock_s()), self.retries,
                            sleep=self.sleep)

    async def settle(self, units: Sequence[LoopUnit]) -> None:
        """Publish the units' conversions (acked), then add their counts and evidence."""
        conversions = [record for unit in units for record in unit.conversions]
        if conversions:
            if self.send_conversions is None:
                raise RuntimeError(f"{len(conversions)} conversion records and no conversions topic to send them to")
            await self.send_conversions(conversions)
        await asyncio.to_thread(with_retries, lambda: self.store.settle(units, self.clock_s()), self.retries,
                                sleep=self.sleep)


class CommitGate(Generic[K, T]):
    """Entries ``(partition, item)`` held from the time their store writes were made until those
    writes are ``lag_s`` old; ``release`` hands back the settled ones, oldest first.

    The direct engine holds next offsets (item = int), the faust engine held messages (item =
    a faust event, acked on release). ``forget`` drops the entries of revoked partitions: their
    new owner re-reads those records and the store skips what was already applied."""

    def __init__(self, lag_s: float) -> None:
        self.lag_s = lag_s
        self._held: deque[tuple[float, list[tuple[K, T]]]] = deque()

    def hold(self, entries: Iterable[tuple[K, T]], now: float) -> None:
        """``entries`` whose writes were made at ``now`` (seconds, any monotonic clock)."""
        batch = list(entries)
        if batch:
            self._held.append((now, batch))

    def release(self, now: float) -> list[tuple[K, T]]:
        out: list[tuple[K, T]] = []
        while self._held and now - self._held[0][0] >= self.lag_s:
            out.extend(self._held.popleft()[1])
        return out

    def forget(self, partitions: Iterable[K]) -> None:
        revoked = set(partitions)
        self._held = deque((at, kept) for at, entries in self._held
                           if (kept := [(p, item) for p, item in entries if p not in revoked]))

    def __len__(self) -> int:
        return sum(len(entries) for _, entries in self._held)


class OffsetCommits(Generic[K]):
    """The direct engine's commits: next offsets per partition, released by a ``CommitGate`` and
    sent at most every ``interval_s``. Pure; times in seconds of one monotonic clock."""

    def __init__(self, lag_s: float, interval_s: float) -> None:
        self.gate: CommitGate[K, int] = CommitGate(lag_s)
        self.interval_s = interval_s
        self._settled: dict[K, int] = {}
        self._last_commit_at: float | None = None

    def applied(self, next_offsets: Mapping[K, int], now: float) -> None:
        """The records below ``next_offsets[partition]`` were written to the store at ``now``."""
        self.gate.hold(next_offsets.items(), now)

    def due(self, now: float, *, final: bool = False) -> dict[K, int]:
        """Offsets to commit now (empty: nothing to do yet). ``final`` ignores the interval."""
        for partition, offset in self.gate.release(now):
            if offset > self._settled.get(partition, -1):
                self._settled[partition] = offset
        if not self._settled:
            return {}
        if not final and self._last_commit_at is not None and now - self._last_commit_at < self.interval_s:
            return {}
        out, self._settled = self._settled, {}
        self._last_commit_at = now
        return out

    def held_back(self, offsets: Mapping[K, int]) -> None:
        """Offsets ``due`` handed out but not committed (the store was not ready): due again at
        the next look."""
        for partition, offset in offsets.items():
            if offset > self._settled.get(partition, -1):
                self._settled[partition] = offset

    def forget(self, partitions: Iterable[K]) -> None:
        revoked = set(partitions)
        self.gate.forget(revoked)
        self._settled = {p: o for p, o in self._settled.items() if p not in revoked}

    def pending(self) -> int:
        """Partition offsets not yet handed out for commit."""
        return len(self.gate) + len(self._settled)


class FetchPacing:
    """How long to wait for records: short while they flow, long once the stream is idle.

    A broker fetch with a long wait is answered as soon as records arrive (long polling), but a
    client that fetches partitions in turn may hold a partition's next records behind a long
    fetch of the others, so under load short waits keep freshness and throughput; while idle,
    short waits make the broker and the worker spin. After ``idle_after_s`` without a record
    the waits go from ``busy_ms`` to ``idle_ms``; the first record back sets them short again.
    Pure; times in seconds of one monotonic clock."""

    def __init__(self, busy_ms: int, idle_ms: int, idle_after_s: float) -> None:
        self.busy_ms = busy_ms
        self.idle_ms = max(idle_ms, busy_ms)
        self.idle_after_s = idle_after_s
        self._last_record_at: float | None = None

    def polled(self, records: int, now: float) -> int:
        """Record a poll's outcome; returns the wait (ms) for the next fetch and poll."""
        if records or self._last_record_at is None:  # a start counts as busy: there is a backlog to read
            self._last_record_at = now
        return self.wait_ms(now)

    def wait_ms(self, now: float) -> int:
        if self._last_record_at is not None and now - self._last_record_at < self.idle_after_s:
            return self.busy_ms
        return self.idle_ms


def raw_of(records: Iterable[Any]) -> list[RawRecord]:
    """(topic, partition, offset, key, value) of Kafka records (aiokafka ``ConsumerRecord`` and
    faust ``Message`` both have these attributes)."""
    return [(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
