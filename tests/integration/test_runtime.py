"""The embedded runtime starts real servers that answer, with the topics we need."""

from __future__ import annotations

import redis
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from schemas.topics import ALL_TOPICS, DEPOSITS
from services.runtime import RuntimeStartError, ManagedProcess, wait_for_port, free_port
from bootstrap.settings import load_settings


def test_redis_answers_and_persists_with_aof(servers):
    client = redis.Redis.from_url(servers.redis_url)
    assert client.ping()
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "everysec"


def test_broker_has_every_topic_with_configured_partitions(servers):
    admin = KafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    try:
        described = {t.get("topic") or t.get("name"): t for t in admin.describe_topics(list(ALL_TOPICS))}
    finally:
        admin.close()
    assert set(ALL_TOPICS) <= set(described)
    assert len(described[DEPOSITS]["partitions"]) == load_settings().kafka.partitions


def test_a_record_produced_can_be_consumed(servers, unique_customer_id):
    producer = KafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all")
    producer.send("nbo.dead-letter", key=unique_customer_id.encode(), value=b"hello").get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(
        "nbo.dead-letter", bootstrap_servers=servers.kafka_bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=5000, enable_auto_commit=False,
    )
    keys = [m.key for m in consumer]
    consumer.close()
    assert unique_customer_id.encode() in keys


def test_a_binary_that_exits_at_start_is_named_in_the_error(tmp_path):
    proc = ManagedProcess("broken", ["/bin/false"], tmp_path / "broken.log")
    proc.start()
    try:
        wait_for_port(proc, free_port(), deadline_s=5)
    except RuntimeStartError as exc:
        assert "/bin/false" in str(exc)
    else:
        raise AssertionError("a server that exits must not be reported as started")
