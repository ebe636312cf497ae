"""The effectiveness report on the real broker and Redis: decisions, answers and purchases
published to the broker, counted by the real worker, read back by ``nbo report`` (a process of
its own, through ``NBO_REDIS__URL``) and by the offer API's report endpoint: both say what the
same records folded in process say, and the effect put into the traffic shows as a significant
lift on the product that has one."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from bootstrap import load_settings
from domain.catalog import load_catalog
from loopkit import loop_oracle, stored_loop
from recommender.effectiveness import effectiveness
from reportkit import days_ago, effect_records, oracle_rows
from schemas.topics import ALL_TOPICS
from services.api.app import create_app
from services.runtime import ManagedProcess, Servers, child_env, create_topics, nbo_command, start_tansu, start_valkey

pytestmark = pytest.mark.integration

PREFIX = "report"


@pytest.fixture
def servers(tmp_path: Path):
    """A broker and Redis of this test's own: the counters hold only this test's records."""
    redis_proc, redis_url = start_valkey(tmp_path / "redis")
    try:
        kafka_proc, bootstrap = start_tansu(tmp_path / "logs")
    except BaseException:
        redis_proc.stop()
        raise
    own = Servers(bootstrap, redis_url, [redis_proc, kafka_proc])
    try:
        create_topics(bootstrap, ALL_TOPICS, 2)
        yield own
    finally:
        own.stop()


def test_the_report_reads_what_the_worker_counted(servers, tmp_path):
    start = days_ago(20)
    records = effect_records(1_500, seed=21, first=720_000_000, start=start)
    want_counts = loop_oracle(records).counts
    env = child_env(servers, NBO_REDIS__KEY_PREFIX=PREFIX, NBO_DATA_DIR=str(tmp_path / "data"))
    worker = ManagedProcess("worker", nbo_command("worker", "--log-level", "info"), tmp_path / "worker.log", env=env)
    worker.start()
    client = redis.Redis.from_url(servers.redis_url)
    try:
        producer = KafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all", linger_ms=5)
        for r in records:
            producer.send(r.topic, key=r.key, value=r.value)
        producer.flush(timeout=60)
        producer.close()
        deadline = time.monotonic() + 120
        while stored_loop(client, PREFIX)[0] != want_counts:
            if not worker.alive():
                pytest.fail(f"the worker exited:\n{worker.tail(40)}")
            if time.monotonic() > deadline:
                pytest.fail(f"the counters did not reach the oracle's within 120 s\n{worker.tail(40)}")
            time.sleep(0.1)
    finally:
        worker.stop()
        client.close()

    day_from, day_to = start.date(), start.date() + timedelta(days=14)
    want = effectiveness(oracle_rows(records), load_catalog(), day_from, day_to)
    assert want.overall.total.shows == sum(r.shows for r in oracle_rows(records)) > 2_000

    # nbo report, a process of its own reading the settings' Redis
    ran = subprocess.run(nbo_command("report", "--from", day_from.isoformat(), "--to", day_to.isoformat(), "--json"),
                         env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == json.loads(json.dumps(want.to_dict()))
    table = subprocess.run(nbo_command("report", "--from", day_from.isoformat(), "--to", day_to.isoformat()),
                           env=env, capture_output=True, text=True, timeout=120)
    assert f"verdict: {want.lift.text}" in table.stdout

    # the API's endpoint on the same Redis, built by the composition root
    settings = load_settings(data_dir=tmp_path / "api", kafka={"bootstrap": servers.kafka_bootstrap},
                             redis={"url": servers.redis_url, "key_prefix": PREFIX}, api={"allow_dev_keys": True})
    with TestClient(create_app(settings)) as api:
        response = api.get("/v1/reports/effectiveness", params={"from": day_from.isoformat(), "to": day_to.isoformat()},
                           headers={"X-API-Key": "dev-marketing"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == json.loads(json.dumps(want.to_dict()))

    # the effect put into the traffic: fund_sip converts 30 % in treatment against 10 % in control
    products = {g["key"]: g for g in body["by"]["product"]}
    fund = products["fund_sip"]["lift"]
    assert fund["verdict"] == "significant" and fund["interval"][0] > 0, fund
    assert products["fund_sip"]["top_declines"][0]["reason"] == "too_expensive"
    assert products["accident_insurance"]["lift"]["verdict"] == "not_yet"  # the same rate in both arms
