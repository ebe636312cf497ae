"""The worker on the real broker and Redis, fed records that break the contract: a purchase of a
product the catalog does not know is dead-lettered, not held; a card number that reached the
stream (as a customer id, a key, an event type, inside free text) appears in no dead-letter
record and no line of the worker's log."""

from __future__ import annotations

import random
import re
import time
import uuid
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from adapters.redis_store import RedisStateStore
from domain.catalog import load_catalog
from schemas.topics import DEAD_LETTER, HOTLINE, PURCHASES
from services.runtime import ManagedProcess, child_env, nbo_command

pytestmark = pytest.mark.integration
DEADLINE_S = 90
KNOWN = next(iter(load_catalog())).product_id


def luhn_card_number(rng: random.Random) -> str:
    """A Luhn-valid 16-digit number starting 4 (a Visa-shaped PAN), unique to the test."""
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
    total = 0
    for i, digit in enumerate(reversed(body)):
        d = int(digit) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def purchase(event_id: str, customer_id: str, product_id: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "schema_version": 1, "customer_id": customer_id,
                         "occurred_at": "2026-05-01T08:00:00Z", "source": "core_banking", "type": "purchase",
                         "product_id": product_id, "amount_minor": 0, "currency": "CNY", "channel": "branch",
                         "decision_id": None})


def hotline(event_id: str, customer_id: str, **extra: object) -> bytes:
    return orjson.dumps({"event_id": event_id, "schema_version": 1, "customer_id": customer_id,
                         "occurred_at": "2026-05-01T08:00:00Z", "source": "cti", "type": "hotline",
                         "intent": "lost_card", "duration_s": 60, "resolved": True, "sentiment": 0.1, **extra})


def no_separators(text: str) -> str:
    return re.sub(r"[ \-]", "", text)


def wait_for(condition, what: str, worker: ManagedProcess):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        if not worker.alive():
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.tail(40)}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}\n{worker.tail(40)}")


class DeadLetters:
    """Reads the whole dead-letter topic from the start, keeping every record (key, value)."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = KafkaConsumer(DEAD_LETTER, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                      group_id=None, enable_auto_commit=False)
        self.records: list[tuple[bytes | None, bytes]] = []

    def poll(self) -> list[tuple[bytes | None, bytes]]:
        for batch in self.consumer.poll(timeout_ms=200).values():
            self.records.extend((r.key, r.value) for r in batch)
        return self.records

    def from_any_source(self, sources: set[tuple[str, int, int]]) -> list[dict]:
        """The letters among the newly polled records whose source is one of ``sources``."""
        found = []
        for _, value in self.poll():
            try:
                letter = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(letter, dict) and "source" in letter:
                source = letter["source"]
                if (source["topic"], source["partition"], source["offset"]) in sources:
                    found.append(letter)
        return found

    def from_sources(self, sources: set[tuple[str, int, int]]) -> list[dict]:
        found = []
        for _, value in self.poll():
            try:
                letter = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue  # another test's record on the session's shared topic, not a worker's letter
            if not isinstance(letter, dict) or "source" not in letter:
                continue
            source = letter["source"]
            if (source["topic"], source["partition"], source["offset"]) in sources:
                found.append(letter)
        return found if len(found) == len(sources) else []


@pytest.mark.parametrize("engine", ["direct", "faust"])
def test_unknown_products_are_dead_lettered_and_no_card_number_reaches_a_letter_or_the_log(
        servers, tmp_path: Path, key_prefix, engine):
    rng = random.Random(uuid.uuid4().int)
    pan = luhn_card_number(rng)
    spaced = " ".join(pan[i:i + 4] for i in range(0, 16, 4))
    tag = uuid.uuid4().hex[:8].upper()
    customer = f"C{tag}01"
    pan_customer = f"C{pan}"  # a card number where the pseudonymous id belongs: refused as such first
    note = f"caller Li Na read out her card {spaced} and her address"
    refused = [  # (topic, key, value, the field the letter must name)
        (PURCHASES, customer.encode(), purchase(f"ev-{tag}-unknown", customer, "moon_bond"), "product_id"),
        (PURCHASES, pan_customer.encode(), purchase(f"ev-{tag}-pan-unknown", pan_customer, "moon_bond"),
         "customer_id"),
        (HOTLINE, pan_customer.encode(), hotline(f"ev-{tag}-note", pan_customer, notes=note), "customer_id"),
        (HOTLINE, customer.encode(), hotline(f"ev-{tag}-note2", customer, notes=note), "notes"),
        (HOTLINE, spaced.encode(), hotline(f"ev-{tag}-key", customer), "key"),
        (HOTLINE, customer.encode(), orjson.dumps({"type": pan, "customer_id": customer}), "type"),
    ]
    accepted = (PURCHASES, customer.encode(), purchase(f"ev-{tag}-known", customer, KNOWN))

    letters = DeadLetters(servers.kafka_bootstrap)
    letters.poll()
    producer = KafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all")
    sources = {}
    for topic, key, value, field in refused:
        meta = producer.send(topic, key=key, value=value).get(timeout=30)
        sources[(topic, meta.partition, meta.offset)] = field
    producer.send(accepted[0], key=accepted[1], value=accepted[2]).get(timeout=30)
    producer.close()

    env = child_env(servers, NBO_REDIS__KEY_PREFIX=key_prefix, NBO_STREAM__GROUP_ID=f"g-{key_prefix}",
                    NBO_DATA_DIR=str(tmp_path / "data"), NBO_STREAM__ENGINE=engine)
    worker = ManagedProcess("worker", nbo_command("worker", "--log-level", "debug"), tmp_path / "worker.log", env=env)
    store = RedisStateStore(servers.redis_url, key_prefix)
    worker.start()
    try:
        mine = wait_for(lambda: letters.from_sources(set(sources)), "the dead letters", worker)
        state = wait_for(lambda: store.get(customer), "the known purchase applied", worker)
        # the worker logs a letter once the broker has it and it is counted: wait for the lines too
        wait_for(lambda: (tmp_path / "worker.log").read_text(errors="replace").count("dead-lettered")
                 >= len(refused), "the dead letters in the worker's log", worker)
    finally:
        worker.stop()
        store.close()
        letters.consumer.close()

    assert list(state.holdings) == [KNOWN]  # the unknown product is not held under its raw id
    assert store_has_no(servers.redis_url, key_prefix, pan_customer)
    by_field = sorted(letter["field"] for letter in mine)
    assert by_field == sorted(sources.values())
    for letter in mine:
        if letter["field"] == "product_id":
            assert "'moon_bond' is not in the catalog" in letter["reason"]
        if letter["field"] == "customer_id":
            assert "tokenised customer id" in letter["reason"]
        assert letter["original"] is False and "value_b64" not in letter
    for key, value in letters.records:  # every letter on the topic, not only this test's
        for text in (key or b"").decode("utf-8", "replace"), value.decode("utf-8", "replace"):
            assert pan not in no_separators(text) and "Li Na" not in text
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert log.count("dead-lettered") >= len(refused), log[-3000:]  # the log is there and says what happened
    assert pan not in no_separators(log) and "Li Na" not in log


def store_has_no(redis_url: str, prefix: str, customer_id: str) -> bool:
    """No customer state under ``customer_id`` (its records were all refused)."""
    reader = RedisStateStore(redis_url, prefix)
    try:
        return reader.get(customer_id) is None
    finally:
        reader.close()
