"""The decision log against the real broker: every buffered record arrives on its customer's
partition, and what cannot be sent is counted, never lost silently."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

from aiokafka.partitioner import DefaultPartitioner
from kafka import KafkaConsumer, TopicPartition

from domain.catalog import load_catalog
from decisioning import Decision, Offer
from schemas.topics import OFFER_DECISIONS
from adapters.kafka_publisher import Publisher

CATALOG = load_catalog()


def decision() -> Decision:
    return Decision([Offer(CATALOG.get("bond_fund"), 0.2, 0.0, 0.3, None, ["large_inflow"])], ["eligibility"])


def log_and_flush(bootstrap: str, customers: list[str], buffer_size: int) -> Publisher:
    async def run() -> Publisher:
        publisher = Publisher(bootstrap, buffer_size, flush_interval_s=0.05, client_id="test-decision-log")
        await publisher.start()
        for i, customer in enumerate(customers):
            publisher.log_decision(f"d-{uuid.uuid4().hex}", customer, "mobile", decision(), "v1", 1.0,
                                   datetime.now(timezone.utc))
        for _ in range(200):  # until every record the buffer took was acknowledged
            if publisher.sent + publisher.dropped >= len(customers):
                break
            await asyncio.sleep(0.05)
        await publisher.close()
        return publisher

    return asyncio.run(run())


def records_by_key(bootstrap: str, keys: set[bytes]) -> dict[bytes, list[int]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    partitions = [TopicPartition(OFFER_DECISIONS, p) for p in consumer.partitions_for_topic(OFFER_DECISIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: dict[bytes, list[int]] = {}
    for message in consumer:
        if message.key in keys:
            found.setdefault(message.key, []).append(message.partition)
    consumer.close()
    return found


def test_buffered_decisions_arrive_once_each_on_their_customers_partition(servers):
    customers = [f"C{uuid.uuid4().int % 10**9:09d}" for _ in range(40)]
    publisher = log_and_flush(servers.kafka_bootstrap, customers, buffer_size=1000)
    assert (publisher.sent, publisher.dropped) == (40, 0)
    found = records_by_key(servers.kafka_bootstrap, {c.encode() for c in customers})
    partitions = sorted(KafkaConsumer(bootstrap_servers=servers.kafka_bootstrap).partitions_for_topic(OFFER_DECISIONS))
    assert len(partitions) > 1
    expected = {c.encode(): [DefaultPartitioner()(c.encode(), partitions, partitions)] for c in customers}
    assert found == expected  # one record per decision, where the customer's other events go


def test_a_full_buffer_drops_and_counts_what_it_cannot_hold(servers):
    customers = [f"C{uuid.uuid4().int % 10**9:09d}" for _ in range(25)]
    publisher = log_and_flush(servers.kafka_bootstrap, customers, buffer_size=10)
    assert publisher.sent + publisher.dropped == 25 and publisher.dropped >= 15
    assert len(records_by_key(servers.kafka_bootstrap, {c.encode() for c in customers})) == publisher.sent
