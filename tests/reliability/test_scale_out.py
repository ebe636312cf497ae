"""Scale-out, proved against a real broker and a real Redis: three workers in one consumer group
share many partitions; one is SIGKILLed while events flow and a replacement is started; every
partition gets an owner again and the state in Redis equals the oracle (nothing lost, nothing
counted twice)."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from schemas.topics import ALL_TOPICS, INPUT_TOPICS
from services.runtime import ManagedProcess, Servers, create_topics, start_tansu, start_valkey
from adapters.redis_store import RedisStateStore
from streamkit import (
    Producer,
    applied_events,
    assert_matches_oracle,
    join_sender,
    oracle,
    simulated_records,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.integration

PARTITIONS_PER_TOPIC = 8
PARTITIONS = PARTITIONS_PER_TOPIC * len(INPUT_TOPICS)  # 48 partitions for the group to share
DEADLINE_S = 90.0
ASSIGNMENT = re.compile(r"partitions (assigned|revoked): (\d+)")


@pytest.fixture
def many_partitions(tmp_path: Path) -> Iterator[Servers]:
    redis_proc, redis_url = start_valkey(tmp_path / "redis")
    try:
        kafka_proc, bootstrap = start_tansu(tmp_path / "logs")
    except BaseException:
        redis_proc.stop()
        raise
    servers = Servers(bootstrap, redis_url, [redis_proc, kafka_proc])
    try:
        create_topics(bootstrap, ALL_TOPICS, PARTITIONS_PER_TOPIC)
        yield servers
    finally:
        servers.stop()


def owned(worker: ManagedProcess) -> int:
    """The partitions a worker holds by its own log: its last assignment, 0 after a revoke."""
    events = ASSIGNMENT.findall(worker.log_path.read_text(errors="replace")) if worker.log_path.exists() else []
    if not events or events[-1][0] == "revoked":
        return 0
    return int(events[-1][1])


def all_owned(workers: Sequence[ManagedProcess]) -> bool:
    counts = [owned(w) for w in workers]
    return sum(counts) == PARTITIONS and all(counts)


#: Both engines. On the faust engine this covers the delivery loop's rebalance handling
#: (streams/faust_transport.py): a fetch abandoned at a rebalance would return after faust's seek
#: to the committed offsets, and faust would count the offsets it took as a gap and commit past
#: records never applied (tests/unit/test_engine_faust.py shows it without a broker).
@pytest.mark.parametrize("engine", ["direct", "faust"])
def test_three_workers_share_the_partitions_and_a_killed_ones_replacement_loses_and_doubles_nothing(
        many_partitions, tmp_path, key_prefix, engine):
    records = simulated_records(customers=600, days=30, seed=17)
    assert len(records) >= 20_000
    expected = oracle(records)
    total = sum(s.events_applied for s in expected.values())
    store = RedisStateStore(many_partitions.redis_url, key_prefix)
    producer = Producer(many_partitions.kafka_bootstrap)
    env = {"NBO_STREAM__SESSION_TIMEOUT_S": "3", "NBO_STREAM__ENGINE": engine}
    workers = [start_worker(many_partitions, key_prefix, tmp_path / f"worker-{i}", **env) for i in range(3)]
    replacement: ManagedProcess | None = None
    try:
        wait_for(lambda: all_owned(workers), DEADLINE_S, "the three workers to share every partition", alive=workers)
        sender = producer.send_at_rate(records, per_s=800)  # ~27 s of traffic: the kill lands mid-flow
        wait_for(lambda: store.counters().get("applied", 0) >= 0.3 * len(records), DEADLINE_S,
                 "30% of the events applied", alive=workers)
        assert sender.is_alive(), "the kill must land while events are still flowing"
        killed = workers.pop(1)
        killed.kill(signal.SIGKILL)
        assert killed.process.returncode == -signal.SIGKILL
        replacement = start_worker(many_partitions, key_prefix, tmp_path / "worker-3", **env)
        workers.append(replacement)
        wait_for(lambda: all_owned(workers), DEADLINE_S,
                 "the two survivors and the replacement to own every partition", alive=workers)
        join_sender(sender)
        wait_for(lambda: applied_events(store, sorted(expected)) >= total, DEADLINE_S,
                 "every event applied after the replacement joined", alive=workers)
        assert_matches_oracle(store, expected)
        assert applied_events(store, sorted(expected)) == total
        assert all(owned(w) > 0 for w in workers), [owned(w) for w in workers]
    finally:
        for worker in [*workers, *([] if replacement in workers else [replacement])]:
            if worker is not None:
                worker.stop()
        producer.close()
        store.close()
