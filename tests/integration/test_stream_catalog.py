"""The worker on the real broker and Redis follows the catalog file ``NBO_CATALOG__PATH`` names,
without a restart: a purchase of a product the bank has not launched yet is dead-lettered;
once the file launches it (and retires another), a purchase of the new product is held and one
of the retired product is dead-lettered."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer

from adapters.redis_store import RedisStateStore
from bank_catalog import GREEN_BOND_FUND, csv_text, save, without
from domain.catalog import parse_catalog
from schemas.topics import PURCHASES
from schemas.topics import ALL_TOPICS
from services.runtime import ManagedProcess, Servers, child_env, create_topics, nbo_command, start_tansu, start_valkey
from test_stream_dead_letters import DeadLetters, purchase, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def servers(tmp_path: Path):
    """A broker and Redis of this test's own: a worker on the session's servers would first drain
    every earlier test's records (most of them dead letters for this small catalog) before it
    got to this test's few."""
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


@pytest.mark.parametrize("engine", ["direct", "faust"])
def test_the_worker_accepts_a_launched_product_and_refuses_a_retired_one_after_the_file_changes(
        servers, tmp_path: Path, key_prefix, engine):
    catalog_file = tmp_path / "mybank.csv"
    save(catalog_file, csv_text())
    changed = csv_text(without("bond_fund"), (GREEN_BOND_FUND,))
    tag = uuid.uuid4().hex[:8].upper()
    early, launched, retired = f"C{tag}01", f"C{tag}02", f"C{tag}03"

    letters = DeadLetters(servers.kafka_bootstrap)
    letters.poll()
    producer = KafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all")

    def send(customer_id: str, product_id: str, name: str) -> tuple[str, int, int]:
        meta = producer.send(PURCHASES, key=customer_id.encode(),
                             value=purchase(f"ev-{tag}-{name}", customer_id, product_id)).get(timeout=30)
        return PURCHASES, meta.partition, meta.offset

    env = child_env(servers, NBO_REDIS__KEY_PREFIX=key_prefix, NBO_STREAM__GROUP_ID=f"g-{key_prefix}",
                    NBO_DATA_DIR=str(tmp_path / "data"), NBO_STREAM__ENGINE=engine,
                    NBO_CATALOG__PATH=str(catalog_file), NBO_CATALOG__POLL_S="0.1")
    worker = ManagedProcess("worker", nbo_command("worker"), tmp_path / "worker.log", env=env)
    store = RedisStateStore(servers.redis_url, key_prefix)
    worker.start()
    try:
        before = send(early, "green_bond_fund", "early")
        [early_letter] = wait_for(lambda: letters.from_sources({before}), "the early purchase dead-lettered", worker)

        save(catalog_file, changed)
        reloaded = f"stream now accepts the products of catalog {parse_catalog(changed).content_hash()[:12]}"
        wait_for(lambda: reloaded in (tmp_path / "worker.log").read_text(errors="replace"), "the reload", worker)

        send(launched, "green_bond_fund", "launched")
        after = send(retired, "bond_fund", "retired")
        state = wait_for(lambda: store.get(launched), "the launched product's purchase applied", worker)
        [retired_letter] = wait_for(lambda: letters.from_sources({after}), "the retired product dead-lettered",
                                    worker)
        retired_state = store.get(retired)
    finally:
        producer.close()
        worker.stop()
        store.close()
        letters.consumer.close()

    assert early_letter["field"] == "product_id" and "'green_bond_fund' is not in the catalog" in early_letter["reason"]
    assert list(state.holdings) == ["green_bond_fund"]
    assert retired_letter["field"] == "product_id" and "'bond_fund' is not in the catalog" in retired_letter["reason"]
    assert retired_state is None  # its only record was refused
