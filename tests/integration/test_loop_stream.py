"""The stream side of the closed loop on the real broker and Redis: a worker (either engine)
reading offer decisions, answers and purchases attributes the purchases to the offers that led
to them on ``nbo.conversions``, counts shows, answers, ignored offers and conversions per day,
and moves the online evidence the offer API reads, all equal to the same records folded in
process; the answers reach the evidence within seconds."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import redis
from kafka import KafkaProducer

from adapters import keys
from loopkit import evidence_close, loop_oracle, loop_records, read_conversions, stored_loop, warehouse
from schemas.codec import encode
from schemas.conversions import ConversionAttributed
from schemas.events import OfferDecisionMade, OfferedItem, OfferOutcomeRecorded
from schemas.topics import ALL_TOPICS, OFFER_DECISIONS, OFFER_OUTCOMES, partition_key
from services.runtime import ManagedProcess, Servers, child_env, create_topics, nbo_command, start_tansu, start_valkey

pytestmark = pytest.mark.integration


@pytest.fixture
def servers(tmp_path: Path):
    """A broker and Redis of this test's own: the conversions topic and the loop counters hold
    only this test's records."""
    redis_proc, redis_url = start_valkey(tmp_path / "redis")
    try:
        kafka_proc, bootstrap = start_tansu(tmp_path / "logs")
    except BaseException:
        redis_proc.stop()
        raise
    own = Servers(bootstrap, redis_url, [redis_proc, kafka_proc])
    try:
        create_topics(bootstrap, ALL_TOPICS, 4)
        yield own
    finally:
        own.stop()


def _diff(got: dict, want: dict) -> str:
    flat_got = {(d, f): n for d, fields in got.items() for f, n in fields.items()}
    flat_want = {(d, f): n for d, fields in want.items() for f, n in fields.items()}
    keys_ = sorted(set(flat_got) | set(flat_want))
    return "; ".join(f"{k}: {flat_got.get(k)} != {flat_want.get(k)}" for k in keys_
                     if flat_got.get(k) != flat_want.get(k))[:2000]


def wait_for(condition, deadline_s: float, what: str, worker: ManagedProcess, show=None):
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        if not worker.alive():
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.tail(40)}")
        time.sleep(0.05)
    shown = show() if show is not None else repr(last)
    pytest.fail(f"timed out waiting for {what} (last: {shown})\n{worker.tail(40)}")


def send(bootstrap: str, records) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for r in records:
        producer.send(r.topic, key=r.key, value=r.value)
    producer.flush(timeout=60)
    producer.close()


@pytest.mark.parametrize("engine", ["direct", "faust"])
def test_the_worker_attributes_counts_and_learns_as_the_in_process_fold_does(servers, tmp_path, engine):
    prefix = "loop"
    records = loop_records(customers=120, seed=3)
    want = loop_oracle(records)
    assert want.conversions and want.counts and want.evidence  # the traffic has all three
    env = child_env(servers, NBO_REDIS__KEY_PREFIX=prefix, NBO_STREAM__ENGINE=engine,
                    NBO_DATA_DIR=str(tmp_path / "data"))
    worker = ManagedProcess("worker", nbo_command("worker", "--log-level", "info"), tmp_path / "worker.log", env=env)
    worker.start()
    client = redis.Redis.from_url(servers.redis_url)
    try:
        send(servers.kafka_bootstrap, records)
        wait_for(lambda: stored_loop(client, prefix)[0] == want.counts, 90, "the counters to equal the oracle's",
                 worker, show=lambda: _diff(stored_loop(client, prefix)[0], want.counts))
        counts, evidence = stored_loop(client, prefix)
        assert evidence.keys() == want.evidence.keys()
        assert evidence_close(evidence, want.evidence, want.evidence) == []
        published = read_conversions(servers.kafka_bootstrap, len(want.conversions))
        assert warehouse(published) == want.conversions
        for record in published:
            ConversionAttributed.model_validate(record)  # every record is a valid ConversionAttributed
        # a shown product bought 33 days later is not in them, one bought 10 days later is
        days = sorted(r["days_after_shown"] for r in want.conversions.values())
        assert days and max(days) <= 30
    finally:
        worker.stop()
        client.close()


def test_an_answer_moves_the_evidence_within_seconds(servers, tmp_path):
    prefix = "fresh"
    env = child_env(servers, NBO_REDIS__KEY_PREFIX=prefix, NBO_DATA_DIR=str(tmp_path / "data"))
    worker = ManagedProcess("worker", nbo_command("worker", "--log-level", "info"), tmp_path / "worker.log", env=env)
    worker.start()
    client = redis.Redis.from_url(servers.redis_url)
    customer_id = "C777000001"
    now = datetime.now(timezone.utc)
    decision = OfferDecisionMade(event_id="dec-fresh0001", customer_id=customer_id, occurred_at=now - timedelta(seconds=5),
                                 source="offer_api", decision_id="d-fresh0001", channel="mobile", model_version="v1",
                                 offers=(OfferedItem(product_id="consumer_loan", rank=1, score=1, propensity=0.1),))
    answer = OfferOutcomeRecorded(event_id="oc-fresh0001", customer_id=customer_id, occurred_at=now,
                                  source="offer_api", decision_id="d-fresh0001", product_id="consumer_loan",
                                  channel="mobile", outcome="accepted")
    producer = KafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all")
    try:
        producer.send(OFFER_DECISIONS, key=partition_key(customer_id), value=encode(decision)).get(timeout=10)
        sent_at = time.monotonic()
        producer.send(OFFER_OUTCOMES, key=partition_key(customer_id), value=encode(answer)).get(timeout=10)
        raw = wait_for(lambda: client.hget(keys.learn_key(prefix), "consumer_loan"), 60,
                       "the acceptance in the evidence", worker)
        took_s = time.monotonic() - sent_at
        accepts, others, as_of_s, expected = orjson.loads(raw)
        assert (accepts, others, as_of_s, expected) == (1, 0, now.timestamp(), 0.1)  # the decision's propensity
        stored = {f.decode(): orjson.loads(v) for f, v in client.hgetall(keys.learn_key(prefix)).items()}
        assert len([f for f in stored if f.startswith("consumer_loan|")]) == 1
        assert stored["consumer_loan@mobile"] == stored["*"] == stored["*@mobile"] == [1, 0, now.timestamp(), 0.1]
        assert took_s < 20  # a worker joining its group takes a few seconds; the apply itself is one batch
    finally:
        producer.close()
        worker.stop()
        client.close()
