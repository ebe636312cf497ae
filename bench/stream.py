"""Stream benchmark: one ``nbo worker`` process, Kafka -> customer state in Redis.

Three measurements in one run, on the same broker and Redis (embedded Tansu and Valkey unless
NBO_KAFKA__BOOTSTRAP / NBO_REDIS__URL are set):

1. floor: a plain aiokafka ``getmany`` loop with the same decode (``schemas.codec.decode``) and
   one pipelined Redis write per batch — the most a Python consumer does on this machine;
2. throughput: ``nbo worker`` (the direct engine, and with ``--faust`` also the faust engine,
   each on its own key prefix and consumer group; exactly-once apply in Lua) draining the same
   pre-produced simulated traffic; timed from its first applied event to its last, so the
   consumer-group join is not counted;
3. idle: with the worker caught up and no traffic, the CPU time the broker, Redis and the
   worker use over ``--idle-seconds`` (from ``/proc/<pid>/stat``), as % of one core; the
   broker and Redis figures are of the embedded servers (null when external);
4. freshness: with the worker caught up, deposits are produced at a steady rate with
   ``occurred_at`` = send time; a poller reads the touched customers' states every few ms and
   records (time seen in Redis - occurred_at) for every new version.

Phases 3 and 4 run for the direct engine, and with ``--faust`` for the faust engine too. The
stream settings come from the environment as for ``nbo worker`` (``NBO_STREAM__FETCH_WAIT_MS=5
NBO_STREAM__IDLE_FETCH_WAIT_MS=5`` gives the old busy polling while idle, for a before/after).

Usage: ``python bench/stream.py [--events 60000] [--rate 5000] [--seconds 10] [--idle-seconds 10]
[--faust] [--json]``.
The last line of output is one JSON object with the figures. ``--write-doc`` updates the
``bench/stream.py`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaProducer  # noqa: E402

from domain.catalog import load_catalog  # noqa: E402
from simulator.bank import TYPE_NAMES, Simulator  # noqa: E402
from schemas.codec import decode  # noqa: E402
from schemas.topics import DEPOSITS, INPUT_TOPICS, TOPIC_FOR_TYPE  # noqa: E402
from services.runtime import ManagedProcess, child_env, nbo_command, running_servers  # noqa: E402
from bootstrap.settings import load_settings  # noqa: E402
from adapters.redis_store import RedisStateStore  # noqa: E402

AS_OF = re.compile(rb'"as_of_s":([0-9.eE+-]+)')


def log(*parts: object) -> None:
    print(*parts, flush=True)


def simulated(events: int, seed: int = 21) -> list[tuple[str, bytes, bytes]]:
    customers = max(50, events // 33)
    out: list[tuple[str, bytes, bytes]] = []
    for batch in Simulator(load_catalog(), customers, seed).run(30):
        for line, type_code, cust in zip(batch.lines, batch.types.tolist(), batch.customers.tolist()):
            out.append((TOPIC_FOR_TYPE[TYPE_NAMES[type_code]], f"C{cust:09d}".encode(), line.encode()))
    return out[:events]


def produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
    futures = [producer.send(t, key=k, value=v) for t, k, v in records]
    producer.flush(timeout=120)
    for f in futures:
        f.get(timeout=10)
    producer.close()


async def floor_rate(bootstrap: str, redis_url: str, total: int, prefix: str) -> float:
    """Plain consumer: getmany, decode, one pipelined HSET per customer per batch."""
    import redis.asyncio as aredis
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*INPUT_TOPICS, bootstrap_servers=bootstrap, group_id=f"floor-{prefix}",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=50,
                                session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_records=2000)
    client = aredis.Redis.from_url(redis_url)
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            if started is None:
                started, first = time.perf_counter(), len(records)
            pipe = client.pipeline(transaction=False)
            for record in records:
                event = decode(record.value)
                pipe.hset(f"{prefix}:{{{event.customer_id}}}:floor", mapping={"state": record.value,
                                                                               "o": record.offset})
            await pipe.execute()
            await consumer.commit()
            seen += len(records)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await client.aclose()
    return (seen - first) / elapsed


def worker_process(servers, prefix: str, log_dir: Path, engine: str) -> ManagedProcess:
    """``nbo worker`` on key prefix ``prefix`` in its own consumer group (the same one again on a restart)."""
    return ManagedProcess("worker", nbo_command("worker"), log_dir / f"worker-{engine}.log",
                          env=child_env(servers, NBO_REDIS__KEY_PREFIX=prefix, NBO_STREAM__GROUP_ID=f"g-{prefix}",
                                        NBO_DATA_DIR=str(log_dir / "data"), NBO_STREAM__ENGINE=engine))


def worker_rate(servers, store: RedisStateStore, total: int, prefix: str, log_dir: Path,
                engine: str = "direct") -> tuple[float, ManagedProcess]:
    worker = worker_process(servers, prefix, log_dir, engine)
    t_launch = time.perf_counter()
    worker.start()
    deadline = time.monotonic() + 180
    first_count = 0
    started = None
    while True:
        if not worker.alive():
            raise SystemExit(f"worker exited:\n{worker.tail(40)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"worker did not apply {total} events in time:\n{worker.tail(40)}")
        applied = store.counters().get("applied", 0)
        if started is None and applied > 0:
            started, first_count = time.perf_counter(), applied
            log(f"  worker consuming {started - t_launch:.1f} s after launch")
        if applied >= total:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    return (total - first_count) / elapsed, worker


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled(store: RedisStateStore, worker: ManagedProcess, at_least: int = 0, quiet_s: float = 1.0,
            deadline_s: float = 180) -> None:
    """Return once the worker has applied ``at_least`` events and its applied counter has not
    moved for ``quiet_s`` (caught up)."""
    deadline = time.monotonic() + deadline_s
    last, since = store.counters().get("applied", 0), time.monotonic()
    while last < at_least or time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline or not worker.alive():
            raise SystemExit(f"the worker did not settle:\n{worker.tail(40)}")
        time.sleep(0.1)
        now = store.counters().get("applied", 0)
        if now != last:
            last, since = now, time.monotonic()


def idle_cpu(servers, worker: ManagedProcess, seconds: float) -> dict[str, float | None]:
    """% of one core each process used over ``seconds`` of no traffic."""
    pids = {"broker": _pid(servers, "kafka"), "redis": _pid(servers, "redis"), "worker": worker.pid}
    before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    started = time.monotonic()
    time.sleep(seconds)  # the measurement window
    elapsed = time.monotonic() - started
    out: dict[str, float | None] = {name: None for name in pids}
    for name, pid in pids.items():
        if pid:
            out[name] = round(100 * (cpu_seconds(pid) - before[name]) / elapsed, 2)
    return out


def _pid(servers, name: str) -> int | None:
    try:
        return servers.process(name).pid
    except StopIteration:  # an external server
        return None


def freshness(bootstrap: str, store: RedisStateStore, rate: float, seconds: float) -> list[float]:
    """Latency (ms) from occurred_at (= send time) to the state in Redis, at a steady rate."""
    customers = [f"CFRESH{i:06d}" for i in range(200)]
    keys = [store.state_key(c) for c in customers[::4]]  # probe a quarter: the poller must stay light
    samples: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        last: dict[bytes, float] = {}
        while not stop.is_set():
            pipe = store.client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "state")
            replies = pipe.execute()
            now = time.time()
            for key, raw in zip(keys, replies):
                if not raw:
                    continue
                match = AS_OF.search(raw, 0, 200)
                as_of = float(match.group(1))
                if last.get(key) != as_of:
                    if key in last:
                        samples.append((now - as_of) * 1000)
                    last[key] = as_of
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    # The load comes from another process, so that producing and polling do not share a GIL.
    sender = multiprocessing.get_context("spawn").Process(
        target=send_steady, args=(bootstrap, customers, rate, seconds), daemon=True)
    sender.start()
    sender.join(seconds * 3 + 30)
    if sender.exitcode != 0:
        raise SystemExit(f"the freshness load generator failed (exit {sender.exitcode})")
    time.sleep(0.5)  # let the last events land before the poller stops (a measurement window)
    stop.set()
    poller.join()
    return samples


def send_steady(bootstrap: str, customers: list[str], rate: float, seconds: float) -> None:
    """Deposits at a steady ``rate`` for ``seconds``, ``occurred_at`` = the send time (5 ms ticks).

    aiokafka's batch API builds each tick's records per partition in C, so the load generator
    itself does not fall behind and add its own queueing to the figures."""
    asyncio.run(_send_steady(bootstrap, customers, rate, seconds))


async def _send_steady(bootstrap: str, customers: list[str], rate: float, seconds: float) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import murmur2

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(DEPOSITS))
        partition_of = {c: partitions[(murmur2(c.encode()) & 0x7FFFFFFF) % len(partitions)] for c in customers}
        template = ('{"event_id":"fr-%s-%d","schema_version":1,"customer_id":"%s","occurred_at":"%s",'
                    '"source":"bench","type":"deposit","kind":"deposit","amount_minor":100,"currency":"CNY",'
                    '"channel":"mobile","purpose":"other","branch_id":null,"balance_after_minor":%d}')
        run_id = uuid.uuid4().hex[:8]
        total = int(rate * seconds)
        tick_s = 0.005
        per_tick = max(1, int(rate * tick_s))
        start = time.monotonic()
        pending = []
        for first in range(0, total, per_tick):
            at = datetime.now(timezone.utc).isoformat()
            batches: dict[int, object] = {}
            for i in range(first, min(total, first + per_tick)):
                customer = customers[i % len(customers)]
                partition = partition_of[customer]
                batch = batches.get(partition) or batches.setdefault(partition, producer.create_batch())
                batch.append(key=customer.encode(), value=(template % (run_id, i, customer, at, i)).encode(),
                             timestamp=None)
            for partition, batch in batches.items():
                pending.append(await producer.send_batch(batch, DEPOSITS, partition=partition))
            ahead = start + (first + per_tick) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)  # pacing the load
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def idle_then_fresh(servers, store: RedisStateStore, worker: ManagedProcess, args: argparse.Namespace,
                    at_least: int = 0) -> tuple[dict[str, float | None], list[float]]:
    """The idle phase, then the freshness phase, on a worker caught up to ``at_least`` applied events."""
    settled(store, worker, at_least)
    log(f"idle for {args.idle_seconds:.0f} s ...")
    idle = idle_cpu(servers, worker, args.idle_seconds)
    log("  CPU % of one core: " + ", ".join(f"{k} {v}" for k, v in idle.items()))
    log(f"freshness at {args.rate:,} events/s for {args.seconds:.0f} s ...")
    samples = freshness(servers.kafka_bootstrap, store, args.rate, args.seconds)
    if samples:
        log(f"  p50 {statistics.median(samples):.0f} ms, p99 {percentile(samples, 0.99):.0f} ms")
    return idle, samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def write_doc(result: dict, command: str) -> None:
    path = ROOT / "docs" / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = (
        "## bench/stream.py\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n"
        f"Command: `{command}` (embedded Tansu broker and Valkey, {result['partitions']} partitions per topic)\n\n"
        "| what | figure |\n|---|---|\n"
        f"| `nbo worker`, one process, Kafka -> state in Redis ({result['events']:,} simulated events, 6 topics) "
        f"| **{result['events_per_s']:,.0f} events/s** |\n"
        f"| floor: plain aiokafka getmany + same decode + one pipelined write per batch | "
        f"{result['floor_events_per_s']:,.0f} events/s |\n"
        f"| worker / floor | {result['events_per_s'] / result['floor_events_per_s']:.2f} |\n"
        + (f"| `NBO_STREAM__ENGINE=faust`: one faust agent over the input topics, `take_events` batches, same store "
           f"| {result['faust_events_per_s']:,.0f} events/s |\n" if result["faust_events_per_s"] else "")
        + f"| load average (1 min) on the shared machine when the run started | {result['load_average_1m_at_start']} |\n"
        f"| freshness at a steady {result['freshness_rate_per_s']:,} events/s, occurred_at -> visible in Redis "
        f"({result['freshness_samples']:,} samples) | p50 **{result['freshness_p50_ms']:.0f} ms**, "
        f"p99 **{result['freshness_p99_ms']:.0f} ms** |\n\n"
        "Targets: >= 10,000 events/s per worker process, >= 1/4 of the floor, freshness p99 < 250 ms. "
        "Freshness samples are taken by polling the states every ~10 ms, so they over-state by about 5 ms; "
        "the steady load comes from a separate process (aiokafka batch API) so the generator does not queue. "
        "The simulated traffic has about one customer per 33 events, so a 2,000-record batch touches a customer "
        "more than once; with millions of customers each batch writes more customers and the rate is lower. "
        "The machine is shared with other builds: figures move by +-30 % between runs.\n"
    )
    pattern = re.compile(r"## bench/stream\.py\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rate", type=int, default=5_000, help="events/s for the freshness phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the freshness phase")
    parser.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    parser.add_argument("--write-doc", action="store_true", help="update docs/BENCHMARKS.md")
    parser.add_argument("--faust", action="store_true", help="also measure the faust engine on the same events")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="length of the idle phase")
    args = parser.parse_args()

    load_at_start = round(os.getloadavg()[0], 2)  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="nbo-bench-") as tmp:
        settings = load_settings(data_dir=Path(tmp))
        with running_servers(settings) as servers:
            records = simulated(args.events)
            log(f"producing {len(records):,} simulated events ...")
            produce(servers.kafka_bootstrap, records)
            prefix = "b" + uuid.uuid4().hex[:8]
            log("floor: plain aiokafka getmany loop ...")
            floor = asyncio.run(floor_rate(servers.kafka_bootstrap, servers.redis_url, len(records), prefix + "f"))
            log(f"  {floor:,.0f} events/s")
            faust_rate, faust_idle, faust_samples = None, None, []
            if args.faust:  # its throughput first, on the same records as the direct engine's
                log("nbo worker, faust engine ...")
                faust_store = RedisStateStore(servers.redis_url, prefix + "q")
                faust_rate, faust_worker = worker_rate(servers, faust_store, len(records), prefix + "q", Path(tmp),
                                                       engine="faust")
                faust_worker.stop()
                log(f"  {faust_rate:,.0f} events/s")
            store = RedisStateStore(servers.redis_url, prefix)
            log("nbo worker (direct engine, the default) ...")
            rate, worker = worker_rate(servers, store, len(records), prefix, Path(tmp))
            log(f"  {rate:,.0f} events/s")
            try:
                idle, samples = idle_then_fresh(servers, store, worker, args)
            finally:
                worker.stop()
                store.close()
            if args.faust:  # restarted in its group: it catches up the direct engine's freshness load first
                log("nbo worker, faust engine, idle and freshness ...")
                faust_worker = worker_process(servers, prefix + "q", Path(tmp), "faust")
                caught_up = faust_store.counters().get("applied", 0) + int(args.rate * args.seconds)
                faust_worker.start()
                try:
                    faust_idle, faust_samples = idle_then_fresh(servers, faust_store, faust_worker, args, caught_up)
                finally:
                    faust_worker.stop()
                    faust_store.close()
    result = {
        "events": len(records),
        "load_average_1m_at_start": load_at_start,
        "faust_events_per_s": round(faust_rate, 1) if faust_rate else None,
        "partitions": settings.kafka.partitions,
        "events_per_s": round(rate, 1),
        "floor_events_per_s": round(floor, 1),
        "worker_over_floor": round(rate / floor, 3),
        "freshness_rate_per_s": args.rate,
        "freshness_samples": len(samples),
        "freshness_p50_ms": round(statistics.median(samples), 1) if samples else None,
        "freshness_p99_ms": round(percentile(samples, 0.99), 1) if samples else None,
        "idle_seconds": args.idle_seconds,
        "idle_cpu_percent": idle,
        "faust_idle_cpu_percent": faust_idle,
        "faust_freshness_samples": len(faust_samples),
        "faust_freshness_p50_ms": round(statistics.median(faust_samples), 1) if faust_samples else None,
        "faust_freshness_p99_ms": round(percentile(faust_samples, 0.99), 1) if faust_samples else None,
        "stream_settings": {name: getattr(settings.stream, name)
                            for name in ("fetch_wait_ms", "batch_timeout_ms", "idle_fetch_wait_ms", "idle_after_ms",
                                         "take_window_ms")},
    }
    if args.write_doc:
        write_doc(result, "python bench/stream.py " + " ".join(sys.argv[1:]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
