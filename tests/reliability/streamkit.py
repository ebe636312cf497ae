"""What the stream reliability tests share: simulated traffic as Kafka records, a producer,
a worker child process, the oracle (the same events folded by the pure functions) and a
key-by-key comparison of Redis against it."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pytest
import redis
from kafka import KafkaProducer

from domain.catalog import load_catalog
from domain.features import FeatureParams, apply_all
from simulator.bank import TYPE_NAMES, Simulator
from domain.state import CustomerState
from schemas.codec import InvalidEvent, decode, encode
from schemas.events import OfferOutcomeRecorded
from schemas.topics import OFFER_OUTCOMES, TOPIC_FOR_TYPE, partition_key
from services.runtime import ManagedProcess, Servers, child_env, nbo_command, start_valkey, wait_cluster_ok
from adapters.redis_store import RedisStateStore


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes


def simulated_records(customers: int, days: int, seed: int = 11) -> list[Record]:
    """Simulated bank traffic in production order, plus offer outcomes for every 7th customer."""
    records: list[Record] = []
    outcomes = 0
    for batch in Simulator(load_catalog(), customers, seed).run(days):
        for line, type_code in zip(batch.lines, batch.types.tolist()):
            value = line.encode()
            event = decode(value)
            records.append(Record(TOPIC_FOR_TYPE[TYPE_NAMES[type_code]], partition_key(event.customer_id), value))
            if int(event.customer_id[1:]) % 7 == 0 and TYPE_NAMES[type_code] == "deposit":
                outcomes += 1
                outcome = OfferOutcomeRecorded(
                    event_id=f"oc-{seed}-{outcomes:08d}", customer_id=event.customer_id,
                    occurred_at=event.occurred_at + timedelta(seconds=30), source="nbo",
                    decision_id=f"d-test{outcomes:06d}", product_id="fund_sip", channel="teller",
                    outcome="declined" if outcomes % 3 == 0 else "shown",
                    decline_reason="bad_timing" if outcomes % 3 == 0 else None)
                records.append(Record(OFFER_OUTCOMES, partition_key(event.customer_id), encode(outcome)))
    return records


def oracle(records: Iterable[Record], params: FeatureParams = FeatureParams()) -> dict[str, CustomerState]:
    """Each customer's state from the valid records, first occurrence of each event id, in order."""
    by_customer: dict[str, list] = {}
    seen: set[str] = set()
    for record in records:
        try:
            event = decode(record.value)
        except InvalidEvent:
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        by_customer.setdefault(event.customer_id, []).append(event)
    return {c: apply_all(CustomerState(c), events, params) for c, events in by_customer.items()}


class Producer:
    """kafka-python producer (its idempotent mode works on Tansu; aiokafka's does not)."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                      batch_size=256 * 1024, max_in_flight_requests_per_connection=1)

    def send(self, records: Sequence[Record]) -> None:
        futures = [self.producer.send(r.topic, key=r.key, value=r.value) for r in records]
        self.producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=10)

    def send_at_rate(self, records: Sequence[Record], per_s: float) -> threading.Thread:
        """Send in the background at about ``per_s`` records per second (chunks of 1/20 s)."""
        chunk = max(1, int(per_s / 20))
        errors: list[BaseException] = []

        def run() -> None:
            start = time.monotonic()
            try:
                for i in range(0, len(records), chunk):
                    self.send(records[i:i + chunk])
                    ahead_s = start + (i + chunk) / per_s - time.monotonic()
                    if ahead_s > 0:
                        time.sleep(ahead_s)  # pacing the load, not synchronising
            except BaseException as exc:  # surfaced by join_sender
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.errors = errors  # type: ignore[attr-defined]
        thread.start()
        return thread

    def close(self) -> None:
        self.producer.close()


def join_sender(thread: threading.Thread, timeout_s: float = 120.0) -> None:
    thread.join(timeout_s)
    assert not thread.is_alive(), "the producer did not finish"
    assert not thread.errors, thread.errors  # type: ignore[attr-defined]


def start_worker(servers: Servers, prefix: str, log_dir: Path, **env: str) -> ManagedProcess:
    worker = ManagedProcess(
        "worker", nbo_command("worker", "--log-level", "info"), log_dir / "worker.log",
        env=child_env(servers, NBO_REDIS__KEY_PREFIX=prefix, NBO_STREAM__GROUP_ID=f"g-{prefix}",
                      NBO_DATA_DIR=str(log_dir / "data"), **env))
    worker.start()
    return worker


def wait_for(condition: Callable[[], object], deadline_s: float, what: str,
             alive: Sequence[ManagedProcess] = ()) -> object:
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        for proc in alive:
            if not proc.alive():
                pytest.fail(f"{proc.name} exited while waiting for {what}:\n{proc.tail(40)}")
        time.sleep(0.05)
    tails = "\n".join(p.tail(40) for p in alive)
    pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what} (last: {last!r})\n{tails}")


def applied_events(store: RedisStateStore, customer_ids: Sequence[str]) -> int:
    """Events folded into these customers' states in Redis (the states' own counters)."""
    pipe = store.client.pipeline(transaction=False)
    for customer_id in customer_ids:
        pipe.hget(store.state_key(customer_id), "state")
    total = 0
    import orjson

    for raw in pipe.execute():
        if raw:
            total += orjson.loads(raw)["events_applied"]
    return total


def assert_matches_oracle(store: RedisStateStore, expected: dict[str, CustomerState]) -> None:
    """Key by key: every customer's state in Redis equals the oracle's (floats to 1e-9)."""
    stored_ids = set(store.customer_ids())
    assert stored_ids == set(expected), (
        f"missing {sorted(set(expected) - stored_ids)[:5]}, unexpected {sorted(stored_ids - set(expected))[:5]}")
    mismatches = []
    for customer_id, want in expected.items():
        got = store.get(customer_id)
        assert got is not None
        diff = state_diff(got, want)
        if diff:
            mismatches.append((customer_id, diff))
    assert not mismatches, f"{len(mismatches)} customers differ, e.g. {mismatches[:3]}"


def state_diff(a: CustomerState, b: CustomerState) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    out = []
    for key in da.keys() | db.keys():
        if not _close(da.get(key), db.get(key)):
            out.append(f"{key}: {da.get(key)!r} != {db.get(key)!r}")
    return out


def _close(x: object, y: object) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(p, q) for p, q in zip(x, y))
    return x == y


class RedisOutage:
    """Kill the Redis of ``servers`` and start it again on the same port and data: the one server,
    or on a cluster the node whose URL the worker was given (a primary holding a third of the
    slots, without a replica: the cluster is down until it is back)."""

    def __init__(self, servers: Servers, data_dir: Path) -> None:
        nodes = [p for p in servers.processes if p.name.startswith("redis-")]
        self.cluster = bool(nodes)
        self.proc = servers.process("redis-0" if self.cluster else "redis")
        self.port = int(servers.redis_url.rsplit(":", 1)[1].split("/")[0])
        self.data_dir = data_dir / "node-0" if self.cluster else data_dir
        self.urls = [f"redis://127.0.0.1:{p.argv[p.argv.index('--port') + 1]}/0" for p in nodes]
        self.restarted: ManagedProcess | None = None

    def kill(self) -> None:
        """On a cluster, return once the other nodes count the killed one failed (their
        ``cluster_state:fail``: every slot then answers CLUSTERDOWN, not only the killed node's)."""
        self.proc.kill(signal.SIGKILL)
        if self.cluster:
            others = [redis.Redis.from_url(url, socket_timeout=1) for url in self.urls
                      if int(url.rsplit(":", 1)[1].split("/")[0]) != self.port]
            try:
                wait_for(lambda: all(c.cluster("INFO")["cluster_state"] == "fail" for c in others), 30.0,
                         "the other nodes to count the killed one failed")
            finally:
                for client in others:
                    client.close()

    def restart(self, wait_ok: bool = True) -> str:
        """Start it again (once it answers PING); on a cluster, with ``wait_ok``, return once every
        node says ``cluster_state:ok`` (the others count a primary failed for a while after it
        is back: 2 node timeouts). Without, return at once, as an operator would."""
        self.restarted, url = start_valkey(self.data_dir, port=self.port, cluster=self.cluster, name=self.proc.name)
        if wait_ok:
            self.wait_ok()
        return url

    def wait_ok(self) -> None:
        """On a cluster, return once every node says ``cluster_state:ok`` (a no-op on one server)."""
        if self.cluster:
            wait_cluster_ok(self.urls, [p for p in (self.restarted,) if p is not None], deadline_s=60.0)

    def stop(self) -> None:
        if self.restarted is not None:
            self.restarted.stop()
