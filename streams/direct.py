"""The direct stream engine: one aiokafka consumer-group member over every input topic.

Per poll (``getmany``, up to ``batch_size`` records, waiting at most ``fetch_wait_ms`` at the
broker): decode; send the invalid records to the dead-letter topic and wait for the broker's
ack; apply the valid ones to Redis in one batch (``RedisStateStore.apply_batch``: exactly-once
effect by source offset and event id); only then may the offsets past the batch be committed
(every ``commit_interval_ms``, beside the next batch), and only once those Redis writes are
``commit_lag_ms`` old: Redis with AOF ``everysec`` can lose the last second of writes on a crash,
and an offset committed past a lost write would lose its records for good. A crash anywhere
before the commit redelivers the records, and the store drops what it already applied.
A Redis that stays down past the bounded retries stops the process with exit code 3 without
committing.

This is the default engine (``NBO_STREAM__ENGINE=direct``): it does the same per-record work
as the faust engine (``streams.faust_engine``) without faust's per-event stream machinery, which
costs more CPU per event than the whole apply (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque

from schemas.topics import DEAD_LETTER, INPUT_TOPICS
from bootstrap.settings import Settings
from streams.core import REDIS_DOWN_EXIT_CODE, apply_with_retries, feature_params, split_batch
from adapters.redis_store import RedisStateStore

log = logging.getLogger("nbo.worker")


async def run(settings: Settings) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import CommitFailedError, KafkaError

    if settings.kafka.bootstrap is None or settings.redis.url is None:
        raise SystemExit("nbo worker needs NBO_KAFKA__BOOTSTRAP and NBO_REDIS__URL (nbo demo sets them)")
    stream = settings.stream
    session_ms = int(stream.session_timeout_s * 1000)
    consumer = AIOKafkaConsumer(
        *INPUT_TOPICS,
        bootstrap_servers=settings.kafka.bootstrap,
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
    )
    # aiokafka's idempotent producer does not work on every broker (Tansu); acks=all is enough
    # here: a dead letter sent twice after a crash is harmless, one never sent is not.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all",
                                client_id=f"{settings.kafka.client_id}-dead-letters")
    store = RedisStateStore(settings.redis.url, settings.redis.key_prefix, stream.dedupe_ttl_s,
                            cache_size=stream.state_cache_size)
    params = feature_params(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    applied: dict = {}  # TopicPartition -> next offset, for records applied to Redis and durable there
    settling: deque[tuple[float, dict]] = deque()  # (applied at, offsets) until the writes are on disk
    lag_s = stream.commit_lag_ms / 1000
    committing: asyncio.Task | None = None
    last_commit_at = 0.0

    async def commit(offsets: dict) -> None:
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:  # a rebalance: the batch is redelivered, then dropped
            log.warning("offset commit failed (%s); the next owner re-reads and skips these records", exc)

    await producer.start()
    await consumer.start()
    log.info("direct engine consuming %s as group %s", ", ".join(INPUT_TOPICS), stream.group_id)
    try:
        while not stopping.is_set():
            while settling and loop.time() - settling[0][0] >= lag_s:
                applied.update(settling.popleft()[1])
            if applied and (committing is None or committing.done()) and \
                    loop.time() - last_commit_at >= stream.commit_interval_ms / 1000:
                # Commits run beside the next batch, and only ever cover records already applied.
                committing, last_commit_at = asyncio.ensure_future(commit(dict(applied))), loop.time()
                applied.clear()
            batches = await consumer.getmany(timeout_ms=stream.batch_timeout_ms, max_records=stream.batch_size)
            if not batches:
                continue
            raw = [(r.topic, r.partition, r.offset, r.key, r.value) for records in batches.values() for r in records]
            good, bad = split_batch(raw)
            if bad:
                sent = [await producer.send(DEAD_LETTER, key=d.key, value=d.to_json()) for d in bad]
                await asyncio.gather(*sent)
                await asyncio.to_thread(store.count, "dead_letters", len(bad))
                for d in bad:
                    log.warning("dead-lettered %s[%d]@%d: %s", d.topic, d.partition, d.offset, d.reason)
            if good:
                await asyncio.to_thread(apply_with_retries, store, good, params, stream.redis_retries)
            settling.append((loop.time(), {tp: records[-1].offset + 1 for tp, records in batches.items()}))
        if committing is not None:
            await committing
        while settling and loop.time() - settling[0][0] >= lag_s:  # the rest is re-read and skipped
            applied.update(settling.popleft()[1])
        if applied:
            await commit(dict(applied))
    except Exception:
        log.exception("stream engine failed; stopping without committing")
        logging.shutdown()
        os._exit(REDIS_DOWN_EXIT_CODE)
    finally:
        await consumer.stop()
        await producer.stop()
        store.close()
    return 0
