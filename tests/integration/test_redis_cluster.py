"""A Redis Cluster of 3 Valkey primaries, found from one node's URL: the worker's store writes
every customer exactly once on the node of its slot, through a moved slot, a half-moved one and
a node that has forgotten the script; replay rebuilds and switches a namespace spread over every
node; the API serves every customer and checks outcomes against decisions kept on every node;
health says "not ready" the moment a slot has no node."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from redis.cluster import RedisCluster

from adapters import keys
from adapters.ports import SourcedEvent
from adapters.redis_connect import ClusterUnavailable, cluster_problems, connect
from adapters.redis_store import RedisStateStore
from bootstrap.settings import load_settings
from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.events import DepositPosted
from schemas.codec import encode
from schemas.topics import ALL_TOPICS, DEPOSITS, partition_key
from services.api.app import create_app
from services.runtime import (ManagedProcess, Servers, child_env, create_topics, nbo_command, start_tansu, start_valkey,
                              start_valkey_cluster)

pytestmark = pytest.mark.integration

P = FeatureParams()
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
NOW_S = T0.timestamp() + 86_400
AGENT = {"X-API-Key": "dev-agent"}


def deposit(customer_id: str, minute: int, balance_minor: int) -> DepositPosted:
    return DepositPosted(event_id=f"ev-{uuid.uuid4().hex}", customer_id=customer_id,
                         occurred_at=T0 + timedelta(minutes=minute), source="core_banking", kind="deposit",
                         amount_minor=1_000, channel="counter", balance_after_minor=balance_minor)


def customers(n: int) -> list[str]:
    return ["C" + uuid.uuid4().hex[:12].upper() for _ in range(n)]


def wait_until(condition, deadline_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while not (last := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(0.05)
    return last


def node_clients(cluster: RedisCluster) -> dict[str, redis.Redis]:
    return {node.name: cluster.get_redis_connection(node) for node in cluster.get_primaries()}


@pytest.fixture
def cluster(cluster_servers) -> Iterator[RedisCluster]:
    client = connect(cluster_servers.redis_url)
    assert isinstance(client, RedisCluster)
    yield client
    client.close()


def test_one_nodes_url_finds_the_cluster_and_a_single_server_stays_single(cluster_servers, servers, cluster):
    assert len(cluster.get_primaries()) == 3
    single = connect(servers.redis_url)
    try:
        assert type(single) is redis.Redis
    finally:
        single.close()
    forced = connect(cluster_servers.redis_url, "single")
    try:
        assert type(forced) is redis.Redis
    finally:
        forced.close()


def test_a_batch_over_every_node_is_applied_once_each_where_its_slot_lives(cluster_servers, cluster, key_prefix):
    ids = customers(120)
    events = {c: [deposit(c, i, 1_000 * (i + 1)) for i in range(3)] for c in ids}
    records = [SourcedEvent(e, DEPOSITS, n % 4, n) for n, e in enumerate(e for c in ids for e in events[c])]
    store = RedisStateStore(cluster_servers.redis_url, key_prefix)
    try:
        assert store.apply_batch(records, P, NOW_S).applied == 360
        again = store.apply_batch(records, P, NOW_S)  # redelivered: nothing twice
        assert (again.applied, again.redelivered) == (0, 360)
        for c in ids:
            assert store.get(c) == apply_all(CustomerState(c), events[c], P)
        assert sorted(store.customer_ids()) == sorted(ids)
        per_node = {name: sum(1 for _ in node.scan_iter(match=keys.customer_pattern(key_prefix), count=1000))
                    for name, node in node_clients(cluster).items()}
        assert len(per_node) == 3 and all(count > 0 for count in per_node.values()), per_node
        assert sum(per_node.values()) == len(ids)
        assert store.counters() == {"applied": 360, "duplicates": 360}
    finally:
        store.close()


def test_a_node_that_forgot_the_script_gets_it_again(cluster_servers, cluster, key_prefix):
    ids = customers(30)
    store = RedisStateStore(cluster_servers.redis_url, key_prefix)
    try:
        store.apply_batch([SourcedEvent(deposit(c, 0, 100), DEPOSITS, 0, i) for i, c in enumerate(ids)], P, NOW_S)
        for node in node_clients(cluster).values():  # as a replica promoted after a failover
            node.script_flush()
        result = store.apply_batch([SourcedEvent(deposit(c, 1, 200), DEPOSITS, 0, 100 + i)
                                    for i, c in enumerate(ids)], P, NOW_S)
        assert result.applied == 30
        assert all(store.get(c).balance_minor == 200 for c in ids)
        assert all(node.script_exists(store._write.sha) == [True] for node in node_clients(cluster).values())
    finally:
        store.close()


def _move_slot(cluster: RedisCluster, slot: int, keys_to_move: list[str], *, finish: bool = True) -> tuple[str, str]:
    """Move ``slot`` to another primary as an operator's resharding does (IMPORTING, MIGRATING,
    MIGRATE, SETSLOT NODE); with ``finish`` False it stays half-moved (its keys answered with ASK)."""
    nodes = {n.name: n for n in cluster.get_primaries()}
    source = cluster.get_node_from_key(keys_to_move[0])
    target = next(n for n in nodes.values() if n.name != source.name)
    src, dst = cluster.get_redis_connection(source), cluster.get_redis_connection(target)
    src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
    src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys_to_move)
    if finish:
        # the rest of the slot's keys too: other tests share the cluster, and a node refuses to give
        # a slot away while it still holds keys of it
        held = [k.decode() if isinstance(k, bytes) else k
                for k in src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100_000)]
        if held:
            src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *held)
        for node in nodes.values():
            cluster.get_redis_connection(node).execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
    return source.name, target.name


def _finish_move(cluster: RedisCluster, slot: int, target_name: str) -> None:
    target = cluster.get_node(node_name=target_name)
    dst_id = cluster.get_redis_connection(target).execute_command("CLUSTER MYID")
    for node in cluster.get_primaries():  # what other tests keep in the slot moves along (see _move_slot)
        if node.name != target_name:
            conn = cluster.get_redis_connection(node)
            held = [k.decode() if isinstance(k, bytes) else k
                    for k in conn.execute_command("CLUSTER GETKEYSINSLOT", slot, 100_000)]
            if held:
                conn.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *held)
    for node in cluster.get_primaries():
        cluster.get_redis_connection(node).execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)


def test_a_moved_slot_is_followed_and_a_half_moved_one_asked_for(cluster_servers, cluster, key_prefix):
    """The store's slot map is stale after each move: MOVED and ASK replies redirect its reads
    and its script; nothing is lost or applied twice."""
    moved_c, asked_c = customers(2)
    store = RedisStateStore(cluster_servers.redis_url, key_prefix)
    observer = connect(cluster_servers.redis_url)
    try:
        first = [SourcedEvent(deposit(c, 0, 100), DEPOSITS, 0, i) for i, c in enumerate((moved_c, asked_c))]
        assert store.apply_batch(first, P, NOW_S).applied == 2
        moved_slot = cluster.keyslot(keys.state_key(key_prefix, moved_c))
        before = store.client.get_node_from_key(keys.state_key(key_prefix, moved_c)).name
        source, target = _move_slot(observer, moved_slot, [keys.state_key(key_prefix, moved_c),
                                                           keys.seen_key(key_prefix, moved_c)])
        assert before == source != target
        result = store.apply_batch([SourcedEvent(deposit(moved_c, 1, 200), DEPOSITS, 0, 10)], P, NOW_S)
        assert result.applied == 1
        assert store.get(moved_c).balance_minor == 200 and store.get(moved_c).events_applied == 2

        asked_keys = [keys.state_key(key_prefix, asked_c), keys.seen_key(key_prefix, asked_c)]
        asked_slot = cluster.keyslot(asked_keys[0])
        if asked_slot == moved_slot:
            pytest.skip("both customers hash to one slot")
        _, half_target = _move_slot(observer, asked_slot, asked_keys, finish=False)
        try:
            result = store.apply_batch([SourcedEvent(deposit(asked_c, 1, 300), DEPOSITS, 0, 11)], P, NOW_S)
            assert result.applied == 1
        finally:
            _finish_move(observer, asked_slot, half_target)
        assert store.get(asked_c).balance_minor == 300 and store.get(asked_c).events_applied == 2
        redelivered = store.apply_batch([SourcedEvent(deposit(asked_c, 1, 300), DEPOSITS, 0, 11)], P, NOW_S)
        assert (redelivered.applied, redelivered.redelivered) == (0, 1)
    finally:
        store.close()
        observer.close()


def test_a_customer_split_across_two_nodes_mid_migration_is_retried_not_lost(cluster_servers, cluster, key_prefix):
    """Mid-resharding, one of a customer's keys already moved and the other not: the node answers
    the script TRYAGAIN. Past the client's retries that is a transient error (the engine retries
    the batch, as for a lost connection), nothing is written; once the slot has moved, the same
    batch applies once."""
    c = customers(1)[0]
    state_key, seen_key = keys.state_key(key_prefix, c), keys.seen_key(key_prefix, c)
    slot = cluster.keyslot(state_key)
    store = RedisStateStore(cluster_servers.redis_url, key_prefix)
    try:
        assert store.apply_batch([SourcedEvent(deposit(c, 0, 100), DEPOSITS, 0, 0)], P, NOW_S).applied == 1
        source = cluster.get_redis_connection(cluster.get_node_from_key(seen_key))
        tryagain_before = source.info("errorstats").get("errorstat_TRYAGAIN", {}).get("count", 0)
        _, target = _move_slot(cluster, slot, [state_key], finish=False)  # the seen ids stay behind
        node = cluster.get_node(node_name=target)
        record = SourcedEvent(deposit(c, 1, 200), DEPOSITS, 0, 1)
        try:
            with pytest.raises(ClusterUnavailable):
                store.apply_batch([record], P, NOW_S)
            assert source.info("errorstats")["errorstat_TRYAGAIN"]["count"] > tryagain_before
            assert store.get(c).balance_minor == 100
        finally:
            if source.exists(seen_key):
                source.execute_command("MIGRATE", node.host, node.port, "", 0, 5000, "KEYS", seen_key)
            _finish_move(cluster, slot, target)
        assert store.apply_batch([record], P, NOW_S).applied == 1
        assert store.get(c).balance_minor == 200 and store.get(c).events_applied == 2
    finally:
        store.close()


def _uncover(cluster: RedisCluster, slot: int) -> redis.Redis:
    """Take ``slot`` from the node that serves it; returns that node's client (to give it back)."""
    owner = cluster.get_redis_connection(cluster.nodes_manager.slots_cache[slot][0])
    owner.execute_command("CLUSTER DELSLOTS", slot)
    return owner


def test_worker_check_needs_every_slot_served(cluster_servers, cluster):
    def check() -> subprocess.CompletedProcess[str]:
        env = child_env(cluster_servers, NBO_REDIS__KEY_PREFIX="check")
        return subprocess.run(nbo_command("worker", "--check"), env=env, capture_output=True, text=True, timeout=60)

    assert cluster_problems(cluster) == []
    healthy = check()
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    owner = _uncover(cluster, 16383)
    try:
        assert any("cluster_state:fail" in p or "slots not assigned" in p for p in cluster_problems(cluster))
        unhealthy = check()
        assert unhealthy.returncode == 1
        assert "unhealthy" in unhealthy.stdout and "cluster_state:fail" in unhealthy.stdout
    finally:
        owner.execute_command("CLUSTER ADDSLOTS", 16383)
    wait_until(lambda: cluster_problems(cluster) == [], 10.0, "every node to serve every slot again")


@pytest.fixture
def api_settings(cluster_servers, key_prefix, tmp_path):
    return load_settings(
        data_dir=tmp_path, kafka={"bootstrap": cluster_servers.kafka_bootstrap},
        redis={"url": cluster_servers.redis_url, "key_prefix": key_prefix, "timeout_ms": 250},
        api={"allow_dev_keys": True, "rate_per_s": 1000, "rate_burst": 1000})


def test_the_api_serves_every_customer_from_the_cluster_and_is_unready_with_a_slot_uncovered(
        api_settings, cluster_servers, cluster, key_prefix):
    ids = customers(45)
    store = RedisStateStore(cluster_servers.redis_url, key_prefix)
    try:
        store.apply_batch([SourcedEvent(deposit(c, 0, 2_000_000 + i), DEPOSITS, 0, i) for i, c in enumerate(ids)],
                          P, NOW_S)
    finally:
        store.close()
    nodes = {cluster.get_node_from_key(keys.state_key(key_prefix, c)).name for c in ids}
    assert len(nodes) == 3
    with TestClient(create_app(api_settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["redis"] is True
        answers = [client.get(f"/v1/call-centre/customers/{c}/profile", headers=AGENT) for c in ids]
        assert [a.status_code for a in answers] == [200] * len(ids)
        offers = [client.get(f"/v1/call-centre/customers/{c}/offers", headers=AGENT).json() for c in ids]
        assert [o["degraded"] for o in offers] == [False] * len(ids)
        # The decisions went to the cluster (one key each, spread over the nodes); outcomes are
        # checked against them there.
        decision_keys = [keys.decision_key(key_prefix, o["decision_id"]) for o in offers]
        wait_until(lambda: sum(cluster.exists(k) for k in decision_keys) == len(ids), 10.0,
                   "every decision written to the cluster")
        assert len({cluster.get_node_from_key(k).name for k in decision_keys}) == 3
        for c, o in zip(ids, offers):
            outcome = {"decision_id": o["decision_id"], "customer_id": c, "product_id": o["offers"][0]["product_id"],
                       "channel": "call_centre", "outcome": "shown"}
            assert client.post("/v1/outcomes", headers=AGENT, json=outcome).status_code == 202
        made_up = {**outcome, "decision_id": "d-" + uuid.uuid4().hex}
        assert client.post("/v1/outcomes", headers=AGENT, json=made_up).status_code == 404
        owner = _uncover(cluster, 16383)
        try:
            unready = client.get("/readyz")
            assert unready.status_code == 503 and unready.json()["redis"] is False
        finally:
            owner.execute_command("CLUSTER ADDSLOTS", 16383)
        wait_until(lambda: client.get("/readyz").status_code == 200, 10.0, "/readyz to say ready again")


@pytest.fixture
def own_broker(tmp_path) -> Iterator[str]:
    """A broker of this test's own: replay reads every topic from the beginning."""
    proc, bootstrap = start_tansu(tmp_path / "logs")
    try:
        create_topics(bootstrap, ALL_TOPICS, 4)
        yield bootstrap
    finally:
        proc.stop()


def test_replay_rebuilds_a_namespace_over_every_node_and_switches_it_live(own_broker, cluster_servers, cluster,
                                                                          key_prefix):
    from kafka import KafkaProducer

    from schemas.codec import encode
    from schemas.topics import partition_key
    from streams.replay import replay, switch

    ids = customers(60)
    events = {c: [deposit(c, i, 5_000 * (i + 1)) for i in range(2)] for c in ids}
    producer = KafkaProducer(bootstrap_servers=own_broker, acks="all")
    for c in ids:
        for e in events[c]:
            producer.send(DEPOSITS, key=partition_key(c), value=encode(e))
    producer.flush(timeout=60)
    producer.close()

    stale = customers(1)[0]  # live state the log does not know: gone after the switch
    live = RedisStateStore(cluster_servers.redis_url, key_prefix)
    rebuilt_prefix = f"{key_prefix}-replay"
    try:
        live.apply_batch([SourcedEvent(deposit(stale, 0, 1), DEPOSITS, 0, 0)], P, NOW_S)
        result = replay(own_broker, cluster_servers.redis_url, rebuilt_prefix, P, idle_s=1.5)
        assert (result.records, result.applied, result.customers) == (120, 120, 60)
        with pytest.raises(ValueError, match="already holds"):
            replay(own_broker, cluster_servers.redis_url, rebuilt_prefix, P, idle_s=0.5)

        assert switch(cluster_servers.redis_url, rebuilt_prefix, key_prefix) == 60
        assert sorted(live.customer_ids()) == sorted(ids)
        for c in ids:
            assert live.get(c) == apply_all(CustomerState(c), events[c], P)
        assert live.counters() == {"applied": 120, "duplicates": 0}  # the rebuilt namespace's, copied
        assert not any(True for _ in RedisStateStore(cluster_servers.redis_url, rebuilt_prefix).customer_ids())
        # The workers resume from their committed offsets: what replay applied is not applied again.
        again = live.apply_batch([SourcedEvent(events[ids[0]][0], DEPOSITS, 0, 0)], P, NOW_S)
        assert again.applied == 0
    finally:
        live.close()


def test_a_cluster_that_cannot_serve_a_slot_is_a_transient_error_for_the_worker(cluster_servers, cluster,
                                                                                key_prefix):
    """CLUSTERDOWN past the client's retries reaches the engine as a ConnectionError (bounded
    retries, then exit 3), never as a programming error; served again, the same batch applies."""
    c = next(c for c in customers(200) if cluster.keyslot(keys.state_key(key_prefix, c)) != 16383)
    slot = cluster.keyslot(keys.state_key(key_prefix, c))
    store = RedisStateStore(cluster_servers.redis_url, key_prefix)
    record = SourcedEvent(deposit(c, 0, 700), DEPOSITS, 0, 0)
    try:
        store.apply_batch([SourcedEvent(deposit(customers(1)[0], 0, 1), DEPOSITS, 0, 0)], P, NOW_S)
        owner = _uncover(cluster, slot)
        try:
            with pytest.raises(ClusterUnavailable) as raised:
                store.apply_batch([record], P, NOW_S)
            assert isinstance(raised.value, redis.ConnectionError)
        finally:
            owner.execute_command("CLUSTER ADDSLOTS", slot)
        wait_until(lambda: cluster_problems(cluster) == [], 10.0, "every node to serve every slot again")
        assert store.apply_batch([record], P, NOW_S).applied == 1
        assert store.get(c).balance_minor == 700
    finally:
        store.close()


@pytest.fixture
def own_cluster(tmp_path) -> Iterator["OwnCluster"]:
    """A Redis Cluster of 3 primaries of this test's own, to kill and start again."""
    procs, urls = start_valkey_cluster(tmp_path / "own-cluster")
    cluster = OwnCluster(tmp_path / "own-cluster", procs, urls)
    try:
        yield cluster
    finally:
        for proc in cluster.procs:
            proc.stop()


class OwnCluster:
    def __init__(self, data_dir, procs, urls) -> None:  # type: ignore[no-untyped-def]
        self.data_dir, self.procs, self.urls = data_dir, list(procs), list(urls)

    def port(self, i: int) -> int:
        return int(self.urls[i].rsplit(":", 1)[1].split("/")[0])

    def kill(self, *nodes: int) -> None:
        for i in nodes:
            self.procs[i].kill(signal.SIGKILL)

    def restart(self, *nodes: int) -> None:
        """Start the nodes again on their ports and data (nodes.conf): they rejoin with their slots."""
        for i in nodes:
            self.procs[i], _ = start_valkey(self.data_dir / f"node-{i}", port=self.port(i), cluster=True,
                                            name=f"redis-{i}")

    def states(self) -> list[str]:
        out = []
        for url in self.urls:
            client = redis.Redis.from_url(url, socket_timeout=1)
            try:
                out.append(str(client.cluster("INFO")["cluster_state"]))
            except redis.RedisError as exc:
                out.append(type(exc).__name__)
            finally:
                client.close()
        return out


def test_a_store_that_saw_the_whole_cluster_down_and_one_opened_meanwhile_both_write_once_it_is_back(own_cluster):
    """Every node killed and started again on its port and nodes.conf: the store that was open
    and one opened while nothing answered say why they are not ready, then write again."""
    before, a = RedisStateStore(own_cluster.urls[0], "down"), customers(1)[0]
    assert before.apply_batch([SourcedEvent(deposit(a, 0, 100), DEPOSITS, 0, 0)], P, NOW_S).applied == 1
    own_cluster.kill(0, 1, 2)
    during = RedisStateStore(own_cluster.urls[0], "down")
    try:
        for store in (before, during):
            problems = store.readiness_problems()
            assert problems and all("Connection" in p or "cannot be connected" in p for p in problems), problems
            with pytest.raises(redis.ConnectionError):
                store.apply_batch([SourcedEvent(deposit(a, 1, 200), DEPOSITS, 0, 1)], P, NOW_S)
        own_cluster.restart(0, 1, 2)
        for store in (before, during):
            wait_until(lambda: store.readiness_problems() == [], 60.0, "the store to find the cluster ok again")
        assert own_cluster.states() == ["ok"] * 3
        batch = [SourcedEvent(deposit(c, 1, 200), DEPOSITS, 0, 1) for c in customers(30)]
        assert before.apply_batch(batch, P, NOW_S).applied == 30
        assert during.apply_batch([SourcedEvent(deposit(a, 1, 300), DEPOSITS, 0, 1)], P, NOW_S).applied == 1
        assert before.get(a).balance_minor == 300 and before.get(a).events_applied == 2
        assert {c for c in during.customer_ids()} == {a, *(r.event.customer_id for r in batch)}
    finally:
        before.close()
        during.close()


def test_a_node_that_stops_answering_fails_a_batch_in_seconds_not_minutes(own_cluster):
    """A stopped node (its port open, nothing read): the batch's error reaches the caller after
    a couple of socket timeouts, where the engine's retries log it (redis-py's default 10
    retries of each command on its own held 10 customers for about a minute, silently)."""
    store = RedisStateStore(own_cluster.urls[0], "stopped", socket_timeout_s=1.0)
    batch = [SourcedEvent(deposit(c, 0, 100), DEPOSITS, 0, 0) for c in customers(10)]
    try:
        store.apply_batch(batch, P, NOW_S)
        os.kill(own_cluster.procs[2].pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
                store.apply_batch([SourcedEvent(r.event, DEPOSITS, 0, 1) for r in batch], P, NOW_S)
            took_s = time.monotonic() - started
        finally:
            os.kill(own_cluster.procs[2].pid, signal.SIGCONT)
        assert took_s < 30.0, f"the batch's error took {took_s:.1f} s"
        wait_until(lambda: store.readiness_problems() == [], 60.0, "the cluster ok again")
    finally:
        store.close()


def test_a_worker_started_while_the_cluster_is_down_waits_saying_so_and_runs_once_it_is_ok(own_broker, own_cluster,
                                                                                        tmp_path):
    """One node down (no replica: every node says cluster_state:fail). A worker given a short
    wait exits 3 ("Redis unavailable"); one given time says what it waits for, and once the
    node is back it applies what was sent meanwhile."""
    producer = KafkaProducer(bootstrap_servers=own_broker, acks="all")
    events = [deposit(c, 0, 100 + i) for i, c in enumerate(customers(20))]
    for event in events:
        producer.send(DEPOSITS, key=partition_key(event.customer_id), value=encode(event))
    producer.flush(timeout=30)
    producer.close()
    own_cluster.kill(2)
    wait_until(lambda: own_cluster.states()[:2] == ["fail", "fail"], 30.0, "the others to count the node failed")
    servers = Servers(own_broker, own_cluster.urls[0], [])

    def worker(wait_s: str, log_name: str) -> ManagedProcess:
        proc = ManagedProcess("worker", nbo_command("worker", "--log-level", "info"), tmp_path / log_name,
                              env=child_env(servers, NBO_REDIS__KEY_PREFIX="waits", NBO_STREAM__GROUP_ID="g-waits",
                                            NBO_STREAM__REDIS_WAIT_S=wait_s, NBO_DATA_DIR=str(tmp_path / "data")))
        proc.start()
        return proc

    hasty = worker("2", "hasty.log")
    try:
        wait_until(lambda: not hasty.alive(), 60.0, "the worker with a 2 s wait to stop")
        assert hasty.process.returncode == 3, hasty.tail(20)
        assert "Redis unavailable" in hasty.tail(20) and "cluster_state:fail" in hasty.tail(20)
    finally:
        hasty.stop()
    patient = worker("120", "patient.log")
    store = RedisStateStore(own_cluster.urls[0], "waits")
    try:
        wait_until(lambda: "waiting for Redis" in patient.tail(50), 60.0, "the worker to say it waits for Redis")
        assert "cluster_state:fail" in patient.tail(50)
        own_cluster.restart(2)
        wait_until(lambda: not patient.alive() or store.readiness_problems() == [] and store.counters().get(
            "applied", 0) >= len(events), 90.0, "the worker to apply every event once the cluster is ok")
        assert patient.alive(), patient.tail(30)
        assert "Redis ready after" in patient.tail(200)
        assert {c: store.get(c).balance_minor for c in (e.customer_id for e in events)} == {
            e.customer_id: e.balance_after_minor for e in events}
    finally:
        patient.stop()
        store.close()
