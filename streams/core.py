"""What every stream engine does with a batch of raw records, without any Kafka client:
decode and validate (``split_batch``), describe a bad record for the dead-letter topic
(``DeadLetter``), and apply the good ones to Redis with bounded retries (``apply_with_retries``).

Dead-letter record format (topic ``nbo.dead-letter``): key = the original record key (bytes, may
be null); value = UTF-8 JSON ``{"reason": str, "field": str | null, "source": {"topic": str,
"partition": int, "offset": int}, "key_b64": str | null, "value_b64": str}`` where ``value_b64``
is the original record value, base64-encoded, byte for byte.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from dataclasses import dataclass
from typing import Sequence

import orjson
import redis

from domain.features import FeatureParams
from schemas.codec import InvalidEvent, decode
from bootstrap import feature_params  # noqa: F401  (engines import it from here)
from adapters.redis_store import RedisStateStore, SourcedEvent

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


