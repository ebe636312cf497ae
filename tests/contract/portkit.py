"""Helpers of the contract tests: waiting on a condition, reading a real topic back, opening
a publisher of either kind."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Callable

import pytest
from kafka import KafkaConsumer, TopicPartition

from adapters.fakes import MemoryPublisher
from adapters.kafka_publisher import Publisher
from adapters.ports import EventPublisher
from domain.catalog import load_catalog
from schemas.topics import OFFER_DECISIONS, OFFER_OUTCOMES

CATALOG = load_catalog()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], deadline_s: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``deadline_s`` seconds."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.05)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def delivered(publisher: EventPublisher, logged: int, deadline_s: float = 10) -> None:
    """Let the decision log's sender run until every one of ``logged`` records was sent or
    dropped (the real sender runs on its own timer; the fake's is ``flush``)."""
    deadline = time.monotonic() + deadline_s
    while True:
        if isinstance(publisher, MemoryPublisher):
            publisher.flush()
        if publisher.sent + publisher.dropped >= logged:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the decision log settled {publisher.sent + publisher.dropped} of {logged} "
                        f"records within {deadline_s} s")
        await asyncio.sleep(0.02)


class TopicTail:
    """The records appended to a real topic after this object was made (a real consumer)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        self.partitions = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic))]
        self.consumer.assign(self.partitions)
        self.start = self.consumer.end_offsets(self.partitions)
        for tp, offset in self.start.items():
            self.consumer.seek(tp, offset)
        self.seen: list[tuple[bytes, bytes]] = []

    def records(self) -> list[tuple[bytes, bytes]]:
        """(key, value) of every record read so far, after reading what is there now."""
        for batch in self.consumer.poll(timeout_ms=200).values():
            self.seen += [(m.key, m.value) for m in batch]
        return self.seen

    def close(self) -> None:
        self.consumer.close()


def open_publisher(kind: str, request: pytest.FixtureRequest, buffer_size: int = 1000,
                   broker_up: bool = True) -> tuple[EventPublisher, str | None]:
    """A publisher not started yet, and the bootstrap of its broker (None for the fake)."""
    if kind == "memory":
        fake = MemoryPublisher(buffer_size)
        fake.broker_up = broker_up
        return fake, None
    bootstrap = request.getfixturevalue("servers").kafka_bootstrap if broker_up else f"127.0.0.1:{closed_port()}"
    return Publisher(bootstrap, buffer_size, ack_timeout_s=5.0, flush_interval_s=0.05,
                     client_id="test-contract"), bootstrap


def topic_reader(kind: str, publisher: EventPublisher, bootstrap: str | None):
    """``(read, close)``: ``read(topic, match, count=1)`` returns the (key, value) of every record
    published from now on that ``match``es — the fake's records, or what a real consumer reads,
    waiting (10 s at most) until there are ``count`` of them."""
    if kind == "memory":
        assert isinstance(publisher, MemoryPublisher)
        already = len(publisher.records)

        def read_fake(topic: str, match: Callable[[bytes, bytes], bool], count: int = 1):
            return [(r.key, r.value) for r in publisher.records[already:] if r.topic == topic and match(r.key, r.value)]

        return read_fake, lambda: None
    assert bootstrap is not None
    tails = {topic: TopicTail(bootstrap, topic) for topic in (OFFER_OUTCOMES, OFFER_DECISIONS)}

    def read_real(topic: str, match: Callable[[bytes, bytes], bool], count: int = 1):
        tail = tails[topic]

        def matching() -> list[tuple[bytes, bytes]] | None:
            found = [(k, v) for k, v in tail.records() if match(k, v)]
            return found if len(found) >= count else None

        return wait_for(matching, 10, f"{count} matching record(s) on {topic}")

    def close() -> None:
        for tail in tails.values():
            tail.close()

    return read_real, close
