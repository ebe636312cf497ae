"""The stream worker: one faust agent per input topic, each thin.

An agent takes a batch of records (``take_events``: faust acks them only after the batch was
handled, so offsets are committed only past records that were applied), decodes them, sends
the invalid ones to the dead-letter topic (and waits for the broker's ack), and applies the
valid ones to Redis through ``RedisStateStore.apply_batch`` (exactly-once effect by offset and
event id). A Redis that stays down past the bounded retries stops the process with exit code 3
before the batch is acked, so a restart re-reads it.

faust runs ``at_least_once`` with agent concurrency 1 (higher concurrency can commit past an
in-flight record).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import orjson
import redis

from recommender.features import FeatureParams
from schemas.codec import InvalidEvent, decode
from schemas.topics import DEAD_LETTER, INPUT_TOPICS
from services.settings import Settings
from streams.store import RedisStateStore, SourcedEvent

log = logging.getLogger("nbo.worker")

REDIS_DOWN_EXIT_CODE = 3


@dataclass(frozen=True)
class DeadLetter:
    """What goes to the dead-letter topic: the reason, where the record came from, its bytes."""

    reason: str
    field: str | None
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    def to_json(self) -> bytes:
        return orjson.dumps({
            "reason": self.reason,
            "field": self.field,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "key_b64": base64.b64encode(self.key).decode() if self.key is not None else None,
            "value_b64": base64.b64encode(self.value).decode(),
        })


def split_batch(raw_records: Sequence[tuple[str, int, int, bytes | None, bytes]]
                ) -> tuple[list[SourcedEvent], list[DeadLetter]]:
    """Decode (topic, partition, offset, key, value) records into events and dead letters."""
    good: list[SourcedEvent] = []
    bad: list[DeadLetter] = []
    for topic, partition, offset, key, value in raw_records:
        try:
            event = decode(value)
        except InvalidEvent as exc:
            bad.append(DeadLetter(exc.reason, exc.field, topic, partition, offset, key, value))
            continue
        if key is not None and key != event.customer_id.encode():
            bad.append(DeadLetter("record key is not the event's customer_id", "key", topic, partition, offset, key, value))
            continue
        good.append(SourcedEvent(event, topic, partition, offset))
    return good, bad


def feature_params(settings: Settings) -> FeatureParams:
    s = settings.stream
    return FeatureParams(
        inflow_half_life_days=s.inflow_half_life_days,
        spend_half_life_days=s.spend_half_life_days,
        hotline_half_life_days=s.hotline_half_life_days,
        token_half_life_days=s.token_half_life_days,
    )


def apply_with_retries(store: RedisStateStore, records: list[SourcedEvent], params: FeatureParams,
                       retries: int) -> None:
    """Bounded retries with exponential backoff; then the process exits loudly (no ack, no commit)."""
    delay_s = 0.1
    for attempt in range(retries + 1):
        try:
            store.apply_batch(records, params, time.time())
            return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            if attempt == retries:
                log.critical("Redis unavailable after %d retries (%s); stopping without committing", retries, exc)
                logging.shutdown()
                os._exit(REDIS_DOWN_EXIT_CODE)
            log.warning("Redis error (%s); retry %d/%d in %.1f s", exc, attempt + 1, retries, delay_s)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)


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
    store = RedisStateStore(settings.redis.url, settings.redis.key_prefix, stream.dedupe_ttl_s)
    params = feature_params(settings)
    dead_letter_topic = app.topic(DEAD_LETTER, key_serializer="raw", value_serializer="raw")

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
                except Exception:  # a raising agent would drop the batch silently
                    log.exception("batch from %s failed; stopping without committing", topic_name)
                    logging.shutdown()
                    os._exit(REDIS_DOWN_EXIT_CODE)

        agent.__name__ = f"apply_{topic_name.replace('.', '_').replace('-', '_')}"
        app.agent(topic, name=agent.__name__, concurrency=1)(agent)

    for name in INPUT_TOPICS:
        make_agent(name)
    return app
