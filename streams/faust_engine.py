"""The faust stream engine: one faust agent over every input topic, a thin transport over
``streams.core``.

The agent takes batches of records (``take_events``) and hands each to ``core.BatchHandler``
(dead letters sent through the app's producer and acked by the broker, the good records applied
to Redis exactly once, off the event loop). Batch N is applied while batch N + 1 is being
taken, and N + 1 is applied only after N, so per-partition order holds. Every event's message
is held from its arrival (``Settling``: one extra reference, so faust's own ack after
``take_events`` does not release it) until its batch was applied and those Redis writes are
``commit_lag_ms`` old (a ``core.CommitGate``), as in the direct engine; only then may faust
commit its offset. A Redis that stays down past the bounded retries, or any other failure,
stops the process with exit code 3 before the batch is released (an agent that raised would drop
its batch silently), so a restart re-reads it. ``nbo worker`` builds the app only once Redis is
ready (``core.store_ready_or_stop``, as the direct engine does: a starting worker waits for a
cluster to say ``cluster_state:ok``, saying so, or exits 3), and an idle worker acks nothing
while Redis does not answer (``core.StoreWatch``). One agent rather than one per topic: a batch
then writes each customer once, not once per topic.

faust runs ``at_least_once`` with agent concurrency 1 (higher concurrency can commit past an
in-flight record). The consumer comes from ``streams.faust_transport`` (``nbo-kafka://``):
faust's aiokafka transport with the broker fetch wait from ``NBO_STREAM__FETCH_WAIT_MS``.
Throughput comes from large batches and little per-event work: ``broker_max_poll_records`` and
``stream_buffer_maxsize`` sized to the batch, ``take_events`` waiting up to ``take_window_ms``
(at least ``MIN_BATCH_WAIT_S``) for a batch to fill, and faust's per-event monitor replaced by a
no-op sensor (nothing reads its statistics: the web server is off).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable, Mapping, Sequence

import orjson

from bootstrap import build_stream
from bootstrap.connections import faust_credentials
from bootstrap.settings import Settings
from schemas.topics import CONVERSIONS, DEAD_LETTER, INPUT_TOPICS, partition_key
from streams import faust_transport
from streams.core import (BatchHandler, CommitGate, DeadLetter, KnownProducts, StoreWatch, follow_catalog,
                          stop_process)

log = logging.getLogger("nbo.worker")

MIN_BATCH_WAIT_S = 0.05  # faust's per-batch cost is high; below this batches stay small under load
# When a partition's buffer is 80 % full faust pauses fetching it, resumes it at 40 %, and with
# every partition paused its fetcher sleeps a whole second: the buffer's lower 40 % must last
# longer than that at full speed, or the engine starves (about 15,000 events/s x 1 s / 0.4).
STREAM_BUFFER_MIN_EVENTS = 40_000


class Settling:
    """Events whose acks wait until their Redis writes are ``lag_s`` old.

    ``take`` adds a reference to each event's message when the batch arrives, so faust's own
    ack after the batch does not mark it done; ``settled_at`` starts the lag once the batch's
    writes are made; ``release`` drops the reference once the lag has passed (a ``CommitGate``),
    and faust then commits the offset. Events of partitions taken away by a rebalance are
    forgotten unacked: their new owner re-reads them and the store skips what was already
    applied."""

    def __init__(self, lag_s: float) -> None:
        self.lag_s = lag_s
        self.gate: CommitGate[Any, Any] = CommitGate(lag_s)

    def take(self, events: Sequence[Any]) -> None:
        for event in events:
            event.message.incref()

    def settled_at(self, events: Sequence[Any], now: float) -> None:
        self.gate.hold(((event.message.tp, event) for event in events), now)

    def hold(self, events: Sequence[Any], now: float) -> None:
        self.take(events)
        self.settled_at(events, now)

    def release(self, now: float) -> int:
        released = self.gate.release(now)
        for _, event in released:
            event.ack()
        return len(released)

    def forget(self, partitions: Iterable[Any]) -> None:
        self.gate.forget(partitions)

    def __len__(self) -> int:
        return len(self.gate)


def lean_monitor() -> type:
    """faust's ``Monitor`` without its per-message and per-event statistics (counters, timings,
    a string key per stream); what faust itself reads from it (end offsets, commits, when a
    partition's stream last took an event) is kept."""
    from time import monotonic

    from faust.sensors import Monitor

    class LeanMonitor(Monitor):  # type: ignore[misc, valid-type]
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            pass

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
            self.stream_inbound_time[tp] = monotonic()

        def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
            pass

        def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
            pass

    return LeanMonitor


def raw_schema() -> Any:
    """A faust ``Schema`` that hands the record's key and value bytes to the event as they are:
    ``core.split_batch`` decodes and validates them, so faust's serializer registry (a codec
    lookup and two calls per record) has nothing to do."""
    import faust

    class RawSchema(faust.Schema):  # type: ignore[misc, valid-type]
        def compile(self, app: Any, **kwargs: Any) -> Any:
            create_event = app.create_event

            async def decode(message: Any, *, propagate: bool = False) -> Any:
                return create_event(message.key, message.value, message.headers, message)

            return decode

    return RawSchema(key_serializer="raw", value_serializer="raw")


def create_app(settings: Settings) -> Any:
    """The faust app with its agent, built from the composition root's parts."""
    import faust

    parts = build_stream(settings)
    stream = settings.stream
    faust_transport.register()
    (settings.data_dir / "faust").parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        stream.group_id,
        broker=";".join(f"kafka://{b.strip()}" for b in parts.bootstrap.split(",")),  # the producer's
        broker_consumer=faust_transport.broker_urls(
            parts.bootstrap, fetch_max_wait_ms=stream.fetch_wait_ms, idle_fetch_wait_ms=stream.idle_fetch_wait_ms,
            idle_after_ms=stream.idle_after_ms),
        store="memory://",
        processing_guarantee="at_least_once",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=stream.instance_id,
        broker_session_timeout=stream.session_timeout_s,
        broker_heartbeat_interval=max(0.5, stream.session_timeout_s / 6),
        broker_rebalance_timeout=stream.session_timeout_s * 2,
        broker_request_timeout=max(30.0, stream.session_timeout_s * 2),
        broker_commit_every=10 * stream.batch_size,
        broker_commit_interval=0.5,
        broker_max_poll_records=stream.batch_size,
        stream_buffer_maxsize=max(STREAM_BUFFER_MIN_EVENTS, 4 * stream.batch_size),
        Monitor=lean_monitor(),
        datadir=str(settings.data_dir / "faust"),
        producer_acks=-1,
        stream_wait_empty=False,
        broker_credentials=faust_credentials(settings.kafka),  # the producer's, and the consumer's (transport)
    )
    dead_letter_topic = app.topic(DEAD_LETTER, key_serializer="raw", value_serializer="raw")

    async def send_dead_letters(letters: Sequence[DeadLetter]) -> None:
        sent = [await dead_letter_topic.send(key=d.key, value=d.to_json()) for d in letters]
        await asyncio.gather(*sent)

    conversions_topic = app.topic(CONVERSIONS, key_serializer="raw", value_serializer="raw")

    async def send_conversions(records: Sequence[Mapping[str, Any]]) -> None:
        sent = [await conversions_topic.send(key=partition_key(r["customer_id"]), value=orjson.dumps(r))
                for r in records]
        await asyncio.gather(*sent)

    handler = BatchHandler(parts.store, parts.params, send_dead_letters, retries=stream.redis_retries,
                           products=KnownProducts.of(parts.catalog), keep_original=stream.dead_letter_keep_original,
                           contract=parts.contract, send_conversions=send_conversions)
    settling = Settling(stream.commit_lag_ms / 1000)
    watch = StoreWatch(parts.store)
    batch_wait_s = max(MIN_BATCH_WAIT_S, stream.take_window_ms / 1000)

    @app.timer(interval=max(0.1, min(1.0, settling.lag_s / 4)))
    async def release_settled() -> None:  # also when no new batch arrives; never while Redis is down
        if len(settling) and await watch.ready():
            settling.release(asyncio.get_running_loop().time())

    @app.timer(interval=settings.catalog.poll_s)
    async def watch_catalog() -> None:  # a changed catalog file: its products from the next batch on
        try:
            await asyncio.to_thread(follow_catalog, handler, parts.catalogs)
        except Exception:  # never let the watcher die; the next round tries again
            log.exception("catalog refresh failed")

    @app.on_partitions_revoked.connect
    async def forget_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        settling.forget(revoked)
        if revoked:
            log.info("partitions revoked: %d", len(revoked))

    @app.on_partitions_assigned.connect
    async def log_assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
        log.info("partitions assigned: %d", len(assigned))

    async def apply(events: Sequence[Any]) -> None:
        try:
            await handler.handle([(m.topic, m.partition, m.offset, m.key, m.value) for m in (e.message for e in events)])
            now = asyncio.get_running_loop().time()
            settling.settled_at(events, now)
            settling.release(now)
        except Exception as exc:  # never drop a batch silently
            stop_process(f"batch failed ({type(exc).__name__}: {exc})", exc)

    topics = app.topic(*INPUT_TOPICS, schema=raw_schema())

    @app.agent(topics, name="apply_events", concurrency=1)
    async def apply_events(records: Any) -> None:
        """Batch N is applied while batch N + 1 is taken; N + 1 is applied only after N."""
        applying: asyncio.Future | None = None
        try:
            async for events in records.take_events(stream.batch_size, within=batch_wait_s):
                settling.take(events)  # before take_events acks them
                if applying is not None:
                    await applying
                applying = asyncio.ensure_future(apply(events))
        finally:
            if applying is not None and not applying.done():
                applying.cancel()  # its events stay unacked: re-read after a restart

    return app
