"""The direct stream engine: one aiokafka consumer-group member over every input topic, a thin
transport over ``streams.core``.

Per poll (``getmany``, up to ``batch_size`` records) the records go to ``core.BatchHandler`` (dead letters sent and acked by the broker, the
good records applied to Redis exactly once); only then are the offsets past the batch handed to
``core.OffsetCommits``, which releases them once those Redis writes are ``commit_lag_ms`` old,
and they are committed every ``commit_interval_ms``, beside the next batch. A crash anywhere
before the commit redelivers the records, and the store drops what it already applied; a Redis
that stays down past the bounded retries stops the process with exit code 3 without committing.
No offset is committed while Redis does not answer (``core.StoreWatch``: it may have lost the
writes the commit would vouch for). Before it joins its group the worker waits for Redis
(``core.store_ready_or_stop``: on a cluster every node ``cluster_state:ok``), saying what it
waits for, and exits 3 if that outlasts ``NBO_STREAM__REDIS_WAIT_S``.

Idle cost (``core.FetchPacing``): while records flow the broker fetch waits ``fetch_wait_ms`` (5)
and a poll ``batch_timeout_ms`` (5), which keeps freshness and throughput; after ``idle_after_ms``
(1 s) without a record both wait ``idle_fetch_wait_ms`` (500), so an idle worker and broker
wake a few times a second. The broker answers a waiting fetch as soon as a record arrives (long
polling, which Kafka and Tansu do), so the first record after a quiet spell is not held back,
and the waits go short again.

This is the default engine (``NBO_STREAM__ENGINE=direct``); ``streams.faust_engine`` does the
same through faust agents.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol, Sequence

import orjson

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from bootstrap import build_stream
from bootstrap.connections import aiokafka_options
from bootstrap.settings import Settings
from schemas.topics import CONVERSIONS, DEAD_LETTER, INPUT_TOPICS, partition_key
from adapters.model_watch import poll
from streams.membership import join_wait_s, wait_to_join_group
from streams.core import (BatchHandler, DeadLetter, FetchPacing, KnownProducts, OffsetCommits, follow_catalog, raw_of,
                          StoreWatch, stop_process, store_ready_or_stop)

log = logging.getLogger("nbo.worker")


class Consumer(Protocol):
    """What ``consume`` uses of ``aiokafka.AIOKafkaConsumer``."""

    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> Mapping[Any, Sequence[Any]]: ...

    async def commit(self, offsets: Mapping[Any, int]) -> None: ...


async def consume(consumer: Consumer, handler: BatchHandler, commits: OffsetCommits, stopping: asyncio.Event, *,
                  batch_size: int, batch_timeout_ms: int, clock: Callable[[], float] = time.monotonic,
                  pacing: FetchPacing | None = None, set_fetch_wait: Callable[[int], None] | None = None,
                  store_ready: StoreReady | None = None) -> None:
    """Poll, handle, commit until ``stopping`` is set; then commit what has settled and return.

    A commit runs beside the next poll and only ever covers records already handled; a failed
    commit (a rebalance) is logged and dropped: the next owner re-reads and the store skips.
    With ``pacing`` the poll timeout (and, through ``set_fetch_wait``, the broker fetch wait)
    follows it: ``batch_timeout_ms`` while records flow, its idle wait once they stop. With
    ``store_ready`` (``core.StoreWatch.ready``) a commit waits while the store does not answer:
    its offsets are held back, due again at the next look."""
    committing: asyncio.Future | None = None
    wait_ms = batch_timeout_ms
    fetch_ms = pacing.busy_ms if pacing is not None else None
    while not stopping.is_set():
        if committing is None or committing.done():
            offsets = commits.due(clock())
            if offsets:
                committing = asyncio.ensure_future(_commit(consumer, offsets, commits, store_ready))
        batches = await consumer.getmany(timeout_ms=wait_ms, max_records=batch_size)
        if pacing is not None:
            next_ms = pacing.polled(sum(len(r) for r in batches.values()), clock())
            if set_fetch_wait is not None and next_ms != fetch_ms:
                set_fetch_wait(next_ms)
                fetch_ms = next_ms
            wait_ms = batch_timeout_ms if next_ms == pacing.busy_ms else next_ms
        if not batches:
            continue
        await handler.handle(raw_of(r for records in batches.values() for r in records))
        commits.applied({tp: records[-1].offset + 1 for tp, records in batches.items() if records}, clock())
    if committing is not None:
        await committing
    offsets = commits.due(clock(), final=True)  # what has not settled yet is re-read and skipped
    if offsets:
        await _commit(consumer, offsets, commits, store_ready)


StoreReady = Callable[[], Awaitable[bool]]


async def _commit(consumer: Consumer, offsets: Mapping[Any, int], commits: OffsetCommits | None = None,
                  store_ready: StoreReady | None = None) -> None:
    if store_ready is not None and not await store_ready():
        if commits is not None:
            commits.held_back(offsets)
        return
    try:
        await consumer.commit(offsets)
    except KafkaError as exc:  # CommitFailedError is one: a rebalance
        log.warning("offset commit failed (%s); the next owner re-reads and skips these records", exc)


def _set_fetch_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """The broker wait of the consumer's next fetches (aiokafka reads it per request; it has no
    public setter). On an aiokafka without the attribute the fixed ``fetch_wait_ms`` stays."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        fetcher._fetch_max_wait_ms = wait_ms


class _Revocations(ConsumerRebalanceListener):
    """aiokafka rebalance listener. Before partitions are revoked: commit every offset that has
    settled (its Redis writes ``commit_lag_ms`` old), so their next owner (often this worker
    again: rebalances are eager) re-reads only what had not; then forget the held offsets of the
    revoked partitions. Logs what it gives up and gets (``partitions assigned: N``)."""

    def __init__(self, commits: OffsetCommits, consumer: Consumer | None = None,
                 clock: Callable[[], float] = time.monotonic, store_ready: StoreReady | None = None) -> None:
        self.commits = commits
        self.consumer = consumer
        self.clock = clock
        self.store_ready = store_ready

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        revoked = set(revoked)
        offsets = self.commits.due(self.clock(), final=True) if self.consumer is not None and revoked else {}
        if offsets:
            await _commit(self.consumer, offsets, self.commits, self.store_ready)
        self.commits.forget(revoked)
        if revoked:
            log.info("partitions revoked: %d (%d settled offsets committed first)", len(revoked), len(offsets))

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        log.info("partitions assigned: %d", len(set(assigned)))


async def run(settings: Settings) -> int:
    parts = build_stream(settings)
    stream = settings.stream
    session_ms = int(stream.session_timeout_s * 1000)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=parts.bootstrap,
        client_id=f"{settings.kafka.client_id}-worker",
        group_id=stream.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=stream.fetch_wait_ms,
        max_poll_records=stream.batch_size,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(300, session_ms // 6),
        rebalance_timeout_ms=session_ms * 2,
        max_poll_interval_ms=max(60_000, session_ms * 10),
        group_instance_id=stream.instance_id,
        **aiokafka_options(settings.kafka),
    )
    commits: OffsetCommits = OffsetCommits(stream.commit_lag_ms / 1000, stream.commit_interval_ms / 1000)
    watch = StoreWatch(parts.store)
    consumer.subscribe(topics=list(INPUT_TOPICS), listener=_Revocations(commits, consumer, store_ready=watch.ready))
    # aiokafka's idempotent producer does not work on every broker (Tansu); acks=all is enough
    # here: a dead letter or conversion sent twice after a crash is harmless (a conversion has
    # its id), one never sent is not.
    producer = AIOKafkaProducer(bootstrap_servers=parts.bootstrap, acks="all",
                                client_id=f"{settings.kafka.client_id}-dead-letters", **aiokafka_options(settings.kafka))

    async def send_dead_letters(letters: Sequence[DeadLetter]) -> None:
        sent = [await producer.send(DEAD_LETTER, key=d.key, value=d.to_json()) for d in letters]
        await asyncio.gather(*sent)

    async def send_conversions(records: Sequence[Mapping[str, Any]]) -> None:
        sent = [await producer.send(CONVERSIONS, key=partition_key(r["customer_id"]), value=orjson.dumps(r))
                for r in records]
        await asyncio.gather(*sent)

    handler = BatchHandler(parts.store, parts.params, send_dead_letters, retries=stream.redis_retries,
                           products=KnownProducts.of(parts.catalog), keep_original=stream.dead_letter_keep_original,
                           contract=parts.contract, send_conversions=send_conversions)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await asyncio.to_thread(store_ready_or_stop, parts.store, stream.redis_wait_s)
    await producer.start()
    await wait_to_join_group(parts.bootstrap, stream.group_id, join_wait_s(stream), client_id=settings.kafka.client_id,
                             **aiokafka_options(settings.kafka))
    await consumer.start()
    log.info("direct engine consuming %s as group %s", ", ".join(INPUT_TOPICS), stream.group_id)
    catalog_watch = asyncio.create_task(poll(lambda: follow_catalog(handler, parts.catalogs), settings.catalog.poll_s,
                                             "catalog"))
    try:
        await consume(consumer, handler, commits, stopping, batch_size=stream.batch_size,
                      batch_timeout_ms=stream.batch_timeout_ms,
                      pacing=FetchPacing(stream.fetch_wait_ms, stream.idle_fetch_wait_ms, stream.idle_after_ms / 1000),
                      set_fetch_wait=lambda ms: _set_fetch_wait(consumer, ms), store_ready=watch.ready)
    except Exception as exc:
        stop_process(f"stream engine failed ({type(exc).__name__}: {exc})", exc)
    finally:
        catalog_watch.cancel()
        await consumer.stop()
        await producer.stop()
        parts.store.close()
    return 0
