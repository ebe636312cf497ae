"""The API's event publisher (one aiokafka producer, not idempotent: Tansu refuses that).

- Outcomes: ``publish_outcome`` returns only after the broker acknowledged the record
  (``acks=all``); any failure or a timeout raises ``PublishError`` (the route answers 503).
- Decisions: ``log_decision`` appends to a bounded in-memory buffer and returns at once; a
  background task hands the buffer to the producer every ``flush_interval_s`` (100 ms by default,
  NBO_API__DECISION_FLUSH_MS), batched per partition: a produce request per flush, not per record.
  A full buffer, or a batch the broker refused, drops records and counts them in ``dropped``
  (exported as a metric), never silently.

The producer starts with the app; if the broker is not reachable then, the API still serves
offers and the publisher keeps trying to connect in the background (outcomes answer 503 and
decision records count as dropped until it is connected).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from decisioning import Decision
from schemas.codec import encode
from schemas.events import SCHEMA_VERSION, OfferOutcomeRecorded
from schemas.topics import OFFER_DECISIONS, OFFER_OUTCOMES, partition_key

log = logging.getLogger("nbo.api.publisher")

#: The partitioner ``AIOKafkaProducer.send`` uses: a customer's records go where its other events go.
_PARTITIONER = DefaultPartitioner()

DecisionItem = tuple[str, str, str, Decision, str, float, datetime]


class PublishError(Exception):
    pass


def outcome_event_id(decision_id: str, product_id: str, outcome: str) -> str:
    """The same outcome for the same decision and product always has the same event id, so a
    client's retry is recorded once (the stream drops duplicates by event id)."""
    return "oc-" + hashlib.sha256(f"{decision_id}|{product_id}|{outcome}".encode()).hexdigest()[:32]


def decision_record(decision_id: str, customer_id: str, channel: str, decision: Decision,
                    model_version: str, latency_ms: float, at: datetime) -> bytes:
    """The ``OfferDecisionMade`` audit record of one answered request, encoded: with each offer's
    ``probability`` (that the policy showed it at its rank), the decision's ``arm`` and
    ``policy_version`` (docs/LOOP.md).

    Written with orjson in the contract's field order (~5 us instead of ~100 us through the
    pydantic model); tests/unit/test_api_publisher.py checks it decodes to the same event."""
    return orjson.dumps({
        "event_id": f"dec-{decision_id[2:]}", "schema_version": SCHEMA_VERSION, "customer_id": customer_id,
        "occurred_at": at, "source": "offer_api", "type": "offer_decision", "decision_id": decision_id,
        "channel": channel,
        "offers": [{"product_id": o.product.product_id, "rank": i, "score": float(o.score),
                    "propensity": min(1.0, max(0.0, float(o.propensity))), "reason_codes": list(o.reason_codes),
                    "reason_facts": o.reason_facts or {},
                    "probability": min(1.0, max(0.0, float(o.probability)))}
                   for i, o in enumerate(decision.offers, start=1)],
        "rules_applied": list(decision.rules_applied), "model_version": model_version[:64],
        "arm": decision.arm, "policy_version": decision.policy_version[:64],
        "degraded": decision.degraded, "latency_ms": max(0.0, float(latency_ms)),
    }, option=orjson.OPT_UTC_Z)


class Publisher:
    def __init__(self, bootstrap: str, buffer_size: int, ack_timeout_s: float = 5.0,
                 flush_interval_s: float = 0.1, client_id: str = "nbo-api",
                 connection: Mapping[str, Any] | None = None) -> None:
        """``connection``: the producer's security arguments (``bootstrap.connections.aiokafka_options``)."""
        self._bootstrap = bootstrap
        self._connection = dict(connection or {})
        self._client_id = client_id
        self._ack_timeout_s = ack_timeout_s
        self._flush_interval_s = flush_interval_s
        self._buffer: collections.deque[DecisionItem] = collections.deque()
        self._buffer_size = buffer_size
        self._producer: AIOKafkaProducer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.dropped = 0
        self.sent = 0

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def start(self, wait_s: float = 10.0) -> None:
        """Connect, waiting up to ``wait_s`` for the broker; if it is not reachable by then, keep
        trying in the background (the API serves offers meanwhile). Start the sender."""
        connect = asyncio.create_task(self._connect_loop(), name="kafka-connect")
        self._tasks.append(connect)
        self._tasks.append(asyncio.create_task(self._send_loop(), name="decision-log"))
        await asyncio.wait({connect}, timeout=wait_s)

    async def _connect_loop(self) -> None:
        delay_s = 0.2
        while self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, client_id=self._client_id, acks="all",
                                        linger_ms=2, request_timeout_ms=int(self._ack_timeout_s * 1000),
                                        enable_idempotence=False, **self._connection)
            try:
                await asyncio.wait_for(producer.start(), timeout=10)
                self._producer = producer
                log.info("connected to the broker at %s", self._bootstrap)
            except Exception as exc:
                log.warning("broker %s not reachable (%s); retrying in %.1f s", self._bootstrap, exc, delay_s)
                await _quietly(producer.stop())
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    async def publish_outcome(self, body: Any) -> str:
        event = OfferOutcomeRecorded(
            event_id=outcome_event_id(body.decision_id, body.product_id, body.outcome.value),
            customer_id=body.customer_id, occurred_at=datetime.now(timezone.utc), source="offer_api",
            decision_id=body.decision_id, product_id=body.product_id, channel=body.channel,
            outcome=body.outcome, decline_reason=body.decline_reason,
        )
        producer = self._producer
        if producer is None:
            raise PublishError("not connected to the broker")
        try:
            await asyncio.wait_for(producer.send_and_wait(OFFER_OUTCOMES, encode(event),
                                                          key=partition_key(body.customer_id)),
                                   timeout=self._ack_timeout_s)
        except Exception as exc:
            raise PublishError(type(exc).__name__) from exc
        return event.event_id

    def log_decision(self, decision_id: str, customer_id: str, channel: str, decision: Decision,
                     model_version: str, latency_ms: float, at: datetime) -> None:
        """Buffer the decision for the decisions topic and return at once (no I/O here)."""
        if len(self._buffer) >= self._buffer_size:
            self.dropped += 1
            return
        self._buffer.append((decision_id, customer_id, channel, decision, model_version, latency_ms, at))

    async def _send_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval_s)
            if self._buffer and self._producer is not None:
                try:
                    await self._send_buffered(self._producer)
                except Exception:  # never let the sender die; what it held is counted in _send_buffered
                    log.exception("decision log sender failed")

    async def _send_buffered(self, producer: AIOKafkaProducer) -> None:
        """Encode what is buffered and send it as one record batch per partition (the producer's
        per-record ``send`` costs several times more CPU than appending to a batch)."""
        items = list(self._buffer)
        self._buffer.clear()
        try:
            partitions = sorted(await producer.partitions_for(OFFER_DECISIONS))
        except Exception as exc:
            self.dropped += len(items)
            log.warning("%d decision records dropped: no partitions for %s (%s)", len(items), OFFER_DECISIONS, exc)
            return
        batches: dict[int, tuple[Any, int]] = {}  # partition -> (batch, records in it)
        for item in items:
            try:
                value = decision_record(*item)
            except Exception as exc:  # a record the contract refuses: count it, go on
                self.dropped += 1
                log.warning("decision record not valid: %s", exc)
                continue
            key = partition_key(item[1])
            partition = _PARTITIONER(key, partitions, partitions)  # the producer's own choice for this key
            batch, count = batches.get(partition) or (producer.create_batch(), 0)
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                await self._submit(producer, batch, partition, count)
                batch, count = producer.create_batch(), 0
                batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any one record
            batches[partition] = (batch, count + 1)
        for partition, (batch, count) in batches.items():
            await self._submit(producer, batch, partition, count)

    async def _submit(self, producer: AIOKafkaProducer, batch: Any, partition: int, count: int) -> None:
        try:  # queues the batch; waits only when the producer's own buffer is full
            future = await producer.send_batch(batch, OFFER_DECISIONS, partition=partition)
        except Exception as exc:
            self.dropped += count
            log.warning("%d decision records dropped: %s", count, exc)
            return
        future.add_done_callback(lambda done: self._count(done, count))

    def _count(self, future: asyncio.Future[Any], count: int) -> None:
        if future.cancelled() or future.exception() is not None:
            self.dropped += count
        else:
            self.sent += count

    async def close(self) -> None:
        if self._buffer and self._producer is not None:
            waiting = len(self._buffer)
            try:  # a broker that does not answer must not keep the process from stopping
                await asyncio.wait_for(self._send_buffered(self._producer), timeout=self._ack_timeout_s)
            except (Exception, asyncio.CancelledError) as exc:
                log.error("stopping with %d decision-log records the broker did not take (%r); they are lost",
                          len(self._buffer) or waiting, exc)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await _quietly(task)
        if self._producer is not None:
            await _quietly(asyncio.wait_for(self._producer.stop(), timeout=10))


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except (Exception, asyncio.CancelledError):
        pass
