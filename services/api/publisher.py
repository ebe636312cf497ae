"""The API's event publisher: outcomes acknowledged only after the broker acked; decisions
logged through a bounded buffer by a background thread, so they add no latency (a full buffer
drops the record and counts it, never silently)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
from datetime import datetime, timezone

from kafka import KafkaProducer

from recommender.decisioning import Decision
from schemas.codec import encode
from schemas.events import OfferDecisionMade, OfferedItem, OfferOutcomeRecorded
from schemas.topics import OFFER_DECISIONS, OFFER_OUTCOMES, partition_key

log = logging.getLogger("nbo.api.publisher")


class PublishError(Exception):
    pass


def outcome_event_id(decision_id: str, product_id: str, outcome: str) -> str:
    """The same outcome for the same decision and product always has the same event id, so a
    client's retry is recorded once (the stream drops duplicates by event id)."""
    return "oc-" + hashlib.sha256(f"{decision_id}|{product_id}|{outcome}".encode()).hexdigest()[:32]


class Publisher:
    def __init__(self, bootstrap: str, buffer_size: int, ack_timeout_s: float = 5.0) -> None:
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, retries=3,
                                       max_block_ms=int(ack_timeout_s * 1000), request_timeout_ms=int(ack_timeout_s * 1000))
        self._ack_timeout_s = ack_timeout_s
        self._queue: queue.Queue[tuple[str, str, str, Decision, str, float, datetime] | None] = queue.Queue(
            maxsize=buffer_size)
        self.dropped = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._drain, name="decision-log", daemon=True)
        self._thread.start()

    async def publish_outcome(self, body) -> str:  # type: ignore[no-untyped-def]
        event = OfferOutcomeRecorded(
            event_id=outcome_event_id(body.decision_id, body.product_id, body.outcome.value),
            customer_id=body.customer_id, occurred_at=datetime.now(timezone.utc), source="offer_api",
            decision_id=body.decision_id, product_id=body.product_id, channel=body.channel,
            outcome=body.outcome, decline_reason=body.decline_reason,
        )
        try:
            await asyncio.to_thread(self._send_and_wait, OFFER_OUTCOMES, partition_key(body.customer_id), encode(event))
        except Exception as exc:
            raise PublishError(type(exc).__name__) from exc
        return event.event_id

    def _send_and_wait(self, topic: str, key: bytes, value: bytes) -> None:
        self._producer.send(topic, key=key, value=value).get(timeout=self._ack_timeout_s)

    def log_decision(self, decision_id: str, customer_id: str, channel: str, decision: Decision,
                     model_version: str, latency_ms: float, at: datetime) -> None:
        """Queue the decision for the decisions topic and return at once; the record is built and
        sent by the background thread. A full buffer drops it and counts the drop."""
        try:
            self._queue.put_nowait((decision_id, customer_id, channel, decision, model_version, latency_ms, at))
        except queue.Full:
            self.dropped += 1

    @staticmethod
    def decision_record(decision_id: str, customer_id: str, channel: str, decision: Decision,
                        model_version: str, latency_ms: float, at: datetime) -> bytes:
        event = OfferDecisionMade(
            event_id=f"dec-{decision_id[2:]}", customer_id=customer_id, occurred_at=at, source="offer_api",
            decision_id=decision_id, channel=channel,
            offers=tuple(OfferedItem(product_id=o.product.product_id, rank=i, score=o.score,
                                     propensity=max(0.0, o.propensity), reason_codes=tuple(o.reason_codes))
                         for i, o in enumerate(decision.offers, start=1)),
            rules_applied=tuple(decision.rules_applied), model_version=model_version[:64],
            degraded=decision.degraded, latency_ms=latency_ms,
        )
        return encode(event)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._producer.send(OFFER_DECISIONS, key=partition_key(item[1]), value=self.decision_record(*item))
                self.sent += 1
            except Exception as exc:  # broker down: count and go on, the request path never waits
                self.dropped += 1
                log.warning("decision log record dropped: %s", exc)

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=1)
        except queue.Full:
            pass
        self._thread.join(timeout=5)
        self._producer.close(timeout=5)
