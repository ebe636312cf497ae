"""The stream worker: one faust agent per input topic, each thin.

An agent takes a batch of records (``take_events``: faust acks them only after the batch was
handled, so offsets are committed only past records that were applied), decodes them, sends
the invalid ones to the dead-letter topic (and waits for the broker's ack), and applies the
valid ones to Redis through ``RedisStateStore.apply_batch`` (exactly-once effect by offset and
event id). A Redis that stays down past the bounded retries stops the process with exit code 3
before the batch is acked, so a restart re-reads it.

Applied records are held back from faust's ack (``Settling``) until their Redis writes are
``commit_lag_ms`` old, as in the direct engine: Redis with AOF ``everysec`` can lose the last
second of writes on a crash, and an offset committed past a lost write loses its records for good.

faust runs ``at_least_once`` with agent concurrency 1 (higher concurrency can commit past an
in-flight record).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from typing import Any, Sequence

from schemas.topics import DEAD_LETTER, INPUT_TOPICS
from bootstrap.settings import Settings
from streams.core import REDIS_DOWN_EXIT_CODE, apply_with_retries, feature_params, split_batch
from adapters.redis_store import RedisStateStore

log = logging.getLogger("nbo.worker")

def _lower_fetch_wait(fetch_wait_ms: int) -> None:
    """faust hard-codes a 1.5 s broker fetch wait, which bounds freshness. Lower it on the
    consumer faust creates (aiokafka reads ``_fetch_max_wait_ms`` when the consumer starts)."""
    from faust.transport.drivers import aiokafka as driver

    base = driver.AIOKafkaConsumerThread

    class ConsumerThread(base):  # type: ignore[misc, valid-type]
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_wait_ms
            return consumer

    driver.Consumer.ConsumerThread = ConsumerThread


class Settling:
    """Applied events whose acks wait until their Redis writes are ``lag_s`` old.

    ``hold`` takes a reference on each event's message, so faust's own ack after the batch does
    not mark it done; ``release`` drops that reference once the lag has passed, and faust then
    commits the offset. Events of partitions taken away by a rebalance are forgotten unacked:
    their new owner re-reads them and the store skips what was already applied."""

    def __init__(self, lag_s: float) -> None:
        self.lag_s = lag_s
        self._held: deque[tuple[float, list[Any]]] = deque()

    def hold(self, events: Sequence[Any], now: float) -> None:
        for event in events:
            event.message.incref()
        self._held.append((now, list(events)))

    def release(self, now: float) -> int:
        released = 0
        while self._held and now - self._held[0][0] >= self.lag_s:
            for event in self._held.popleft()[1]:
                event.ack()
                released += 1
        return released

    def forget(self, partitions: Any) -> None:
        revoked = set(partitions)
        self._held = deque((at, kept) for at, events in self._held
                           if (kept := [e for e in events if e.message.tp not in revoked]))

    def __len__(self) -> int:
        return sum(len(events) for _, events in self._held)


def create_app(settings: Settings) -> Any:
    """Build the faust app from settings: the worker's composition root."""
    import faust

    if settings.kafka.bootstrap is None or settings.redis.url is None:
        raise SystemExit("nbo worker needs NBO_KAFKA__BOOTSTRAP and NBO_REDIS__URL (nbo demo sets them)")
    stream = settings.stream
    (settings.data_dir / "faust").parent.mkdir(parents=True, exist_ok=True)
    _lower_fetch_wait(stream.fetch_wait_ms)
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.kafka.bootstrap.split(","))
    app = faust.App(
        stream.group_id,
        broker=brokers,
        store="memory://",
        processing_guarantee="at_least_once",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=stream.session_timeout_s,
        broker_heartbeat_interval=max(0.5, stream.session_timeout_s / 6),
        broker_rebalance_timeout=stream.session_timeout_s * 2,
        broker_request_timeout=max(30.0, stream.session_timeout_s * 2),
        broker_commit_every=1000,
        broker_commit_interval=0.5,
        datadir=str(settings.data_dir / "faust"),
        producer_acks=-1,
        stream_wait_empty=False,
    )
    store = RedisStateStore(settings.redis.url, settings.redis.key_prefix, stream.dedupe_ttl_s,
                            cache_size=stream.state_cache_size)
    params = feature_params(settings)
    dead_letter_topic = app.topic(DEAD_LETTER, key_serializer="raw", value_serializer="raw")
    settling = Settling(stream.commit_lag_ms / 1000)

    @app.timer(interval=max(0.1, min(1.0, settling.lag_s / 4)))
    async def release_settled() -> None:  # also when no new batch arrives
        settling.release(asyncio.get_running_loop().time())

    @app.on_partitions_revoked.connect
    async def forget_revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        settling.forget(revoked)

    async def handle(events: Sequence[Any]) -> None:
        raw = [(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
               for e in events]
        good, bad = split_batch(raw)
        if bad:
            futures = [await dead_letter_topic.send(key=d.key, value=d.to_json()) for d in bad]
            await asyncio.gather(*futures)  # acked by the broker before the batch is acked
            store.count("dead_letters", len(bad))
            for d in bad:
                log.warning("dead-lettered %s[%d]@%d: %s", d.topic, d.partition, d.offset, d.reason)
        if good:
            await asyncio.to_thread(apply_with_retries, store, good, params, stream.redis_retries)

    def make_agent(topic_name: str) -> None:
        topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")

        async def agent(records: Any) -> None:
            async for events in records.take_events(stream.batch_size, within=stream.batch_timeout_ms / 1000):
                try:
                    await handle(events)
                    now = asyncio.get_running_loop().time()
                    settling.hold(events, now)  # before take_events acks them
                    settling.release(now)
                except Exception:  # a raising agent would drop the batch silently
                    log.exception("batch from %s failed; stopping without committing", topic_name)
                    logging.shutdown()
                    os._exit(REDIS_DOWN_EXIT_CODE)

        agent.__name__ = f"apply_{topic_name.replace('.', '_').replace('-', '_')}"
        app.agent(topic, name=agent.__name__, concurrency=1)(agent)

    for name in INPUT_TOPICS:
        make_agent(name)
    return app
