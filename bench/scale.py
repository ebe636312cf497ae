"""Scale-out benchmark: ``nbo worker`` processes in one consumer group, on many partitions.

On one embedded broker and Redis (Tansu and Valkey; ``--partitions`` per input topic):

1. floor: the plain aiokafka ``getmany`` loop of bench/stream.py on the same pre-produced
   traffic, the most one Python consumer does on this machine right now (the machine's load
   shows in it, so every rate is also given as a ratio to it);
2. throughput: for each count in ``--workers`` (1,2,3), that many workers started together in a
   new group (and key prefix) drain the same pre-produced traffic; events/s from the first
   applied event to the last (the group's first join is not counted; a rebalance later in the
   run is, and the assignments seen are reported);
3. membership, for each join policy (``join at once``: ``NBO_STREAM__JOIN_WAIT_S=0``, the old
   behaviour; ``join wait``: the default, wait for the dead member's expiry): 3 workers under a
   steady load (``--rate`` deposits/s, from a separate process); one is SIGKILLed and a
   replacement started at once; later a 4th worker is added (a scale-out). For each: the
   longest time with no record applied at all (the pause every member takes in an eager
   rebalance), the time from the kill (the start) until every partition has an owner again
   (from the workers' ``partitions assigned: N`` log lines), the rebalances the survivors went
   through, and the records re-read (the store's duplicates counter);
4. with ``--static``, the same kill with static membership (``NBO_STREAM__INSTANCE_ID``, the
   replacement taking the dead worker's id).

Usage: ``python bench/scale.py [--events 100000] [--partitions 8] [--workers 1,2,3] [--rate 2000]
[--session-s 6] [--repeat 2] [--faust] [--static] [--json] [--write-doc]``. The last line of output is one JSON
object with the figures; ``--write-doc`` updates the ``bench/scale.py`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.stream import floor_rate, produce, send_steady, simulated  # noqa: E402
from schemas.topics import INPUT_TOPICS  # noqa: E402
from services.runtime import ManagedProcess, Servers, child_env, nbo_command, running_servers  # noqa: E402
from bootstrap.settings import load_settings  # noqa: E402
from adapters.redis_store import RedisStateStore  # noqa: E402

ASSIGNMENT = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]? .*?partitions (assigned|revoked): (\d+)", re.M)


def log(*parts: object) -> None:
    print(*parts, flush=True)


def start_worker(servers: Servers, prefix: str, log_path: Path, engine: str, **env: str) -> ManagedProcess:
    worker = ManagedProcess("worker", nbo_command("worker", "--log-level", "info"), log_path,
                            env=child_env(servers, NBO_REDIS__KEY_PREFIX=prefix, NBO_STREAM__GROUP_ID=f"g-{prefix}",
                                          NBO_DATA_DIR=str(log_path.parent / f"data-{log_path.stem}"),
                                          NBO_STREAM__ENGINE=engine, **env))
    worker.start()
    return worker


def assignments(worker: ManagedProcess) -> list[tuple[float, str, int]]:
    """(epoch s, 'assigned' | 'revoked', partitions) from the worker's log, in order."""
    try:
        text = worker.log_path.read_text(errors="replace")
    except OSError:
        return []
    return [(datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").timestamp(), what, int(n))
            for at, what, n in ASSIGNMENT.findall(text)]


def owned_at(workers: list[ManagedProcess], at: float) -> int:
    """Partitions the workers held at epoch ``at`` by their logs (a revoked worker holds none)."""
    total = 0
    for worker in workers:
        last = [(what, n) for t, what, n in assignments(worker) if t <= at]
        if last and last[-1][0] == "assigned":
            total += last[-1][1]
    return total


def all_owned_after(workers: list[ManagedProcess], since: float, partitions: int) -> float | None:
    """The first epoch after ``since`` from which ``workers`` own every partition, or None."""
    times = sorted({t for w in workers for t, _, _ in assignments(w) if t >= since})
    for t in times:
        if owned_at(workers, t) == partitions and all(owned_at([w], t) for w in workers):
            return t
    return None


def wait_until(condition, deadline_s: float, what: str, workers: list[ManagedProcess]) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        for worker in workers:
            if not worker.alive():
                raise SystemExit(f"a worker exited while waiting for {what}:\n{worker.tail(30)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}:\n" + "\n".join(w.tail(15) for w in workers))
        time.sleep(0.05)


def throughput(servers: Servers, total: int, count: int, engine: str, log_dir: Path) -> dict:
    prefix = "s" + uuid.uuid4().hex[:8]
    store = RedisStateStore(servers.redis_url, prefix)
    workers = [start_worker(servers, prefix, log_dir / f"{engine}-{count}-{i}.log", engine) for i in range(count)]
    try:
        started, first = None, 0
        deadline = time.monotonic() + 300
        while True:
            applied = store.counters().get("applied", 0)
            if started is None and applied > 0:
                started, first = time.perf_counter(), applied
            if applied >= total:
                break
            if time.monotonic() > deadline or not all(w.alive() for w in workers):
                raise SystemExit("the workers did not drain the traffic:\n" + "\n".join(w.tail(20) for w in workers))
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        rate = (total - first) / elapsed
        seen = [len([a for a in assignments(w) if a[1] == "assigned"]) for w in workers]
    finally:
        for worker in workers:
            worker.stop()
        store.close()
    return {"workers": count, "events_per_s": round(rate, 1), "assignments_per_worker": seen}


class AppliedTrace:
    """The store's applied counter, read every ~10 ms in a thread: (epoch s, applied)."""

    def __init__(self, store: RedisStateStore) -> None:
        self.store = store
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.store.counters().get("applied", 0)))
            time.sleep(0.01)  # the sampling period

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def longest_stall(self, start: float, end: float) -> float:
        """The longest stretch (s) within [start, end] in which the counter did not move."""
        window = [(t, n) for t, n in self.samples if start <= t <= end]
        longest, since = 0.0, None
        for (t0, n0), (t1, n1) in zip(window, window[1:]):
            if n1 == n0:
                since = t0 if since is None else since
                longest = max(longest, t1 - since)
            else:
                since = None
        return longest


def membership(servers: Servers, partitions: int, backlog: int, args: argparse.Namespace, log_dir: Path,
               policy: str) -> dict:
    """Kill one of 3 workers under a steady load and start a replacement; then add a 4th. The
    group first drains the ``backlog`` (the pre-produced traffic) and 3 s of the steady load."""
    prefix = "m" + uuid.uuid4().hex[:8]
    env = {"NBO_STREAM__SESSION_TIMEOUT_S": str(args.session_s)}
    if policy == "join at once":
        env["NBO_STREAM__JOIN_WAIT_S"] = "0"
    static = policy == "static membership"
    store = RedisStateStore(servers.redis_url, prefix)
    slot = lambda i: {"NBO_STREAM__INSTANCE_ID": f"w{i}"} if static else {}  # noqa: E731
    tag = policy.replace(" ", "-") + "-" + prefix
    workers = [start_worker(servers, prefix, log_dir / f"{tag}-{i}.log", "direct", **env, **slot(i)) for i in range(3)]
    trace = AppliedTrace(store)
    seconds = 600.0  # longer than the phase: stopped at its end
    sender = multiprocessing.get_context("spawn").Process(
        target=send_steady, args=(servers.kafka_bootstrap, [f"CSCALE{i:06d}" for i in range(400)], args.rate, seconds),
        daemon=True)
    out: dict = {"policy": policy}
    everyone = list(workers)
    try:
        wait_until(lambda: all_owned_after(workers, 0.0, partitions) is not None, 60, "3 workers to share", workers)
        trace.start()
        sender.start()
        wait_until(lambda: store.counters().get("applied", 0) >= backlog, 120, "the backlog drained", workers)
        time.sleep(5.0)  # a measurement window: the backlog's offsets settle and commit, only the steady load flows
        if static:
            window_start = time.time()
            time.sleep(21.0)  # a measurement window: does the group stay formed?
            out["steady_rebalances_in_21_s"] = len([a for a in assignments(workers[0])
                                                    if a[0] > window_start and a[1] == "revoked"])
        duplicates_before = store.counters().get("duplicates", 0)
        killed_at = time.time()
        workers[1].kill(signal.SIGKILL)
        survivors = [workers[0], workers[2]]
        replacement = start_worker(servers, prefix, log_dir / f"{tag}-3.log", "direct", **env, **slot(1))
        everyone.append(replacement)
        workers = [*survivors, replacement]
        recovery_s = args.session_s + 25
        deadline = time.monotonic() + recovery_s
        owned = None
        while owned is None and time.monotonic() < deadline:
            time.sleep(0.2)
            owned = all_owned_after(workers, killed_at, partitions)
        time.sleep(3.0)  # a measurement window: the load flows on after the recovery
        out["kill"] = {
            "no_record_applied_longest_s": round(trace.longest_stall(killed_at, time.time()), 2),
            "kill_to_all_partitions_owned_s": round(owned - killed_at, 2) if owned else None,
            "survivor_rebalances": max(len([a for a in assignments(w) if a[0] > killed_at and a[1] == "revoked"])
                                       for w in survivors),
            "records_re_read": store.counters().get("duplicates", 0) - duplicates_before,
        }
        log(f"  kill + replacement: {out['kill']}")
        if not static:
            joined_at = time.time()
            added = start_worker(servers, prefix, log_dir / f"{tag}-4.log", "direct", **env)
            everyone.append(added)
            workers.append(added)
            wait_until(lambda: all_owned_after(workers, joined_at, partitions) is not None, args.session_s + 30,
                       "the added worker to get partitions", workers)
            owned = all_owned_after(workers, joined_at, partitions)
            time.sleep(2.0)  # a measurement window
            out["join"] = {
                "no_record_applied_longest_s": round(trace.longest_stall(joined_at, time.time()), 2),
                "start_to_all_partitions_owned_s": round(owned - joined_at, 2),
                "member_rebalances": max(len([a for a in assignments(w) if a[0] > joined_at and a[1] == "revoked"])
                                         for w in workers[:3]),
            }
            log(f"  added worker: {out['join']}")
    finally:
        sender.kill()
        trace.stop()
        for worker in everyone:
            worker.stop()
        store.close()
    return out


def write_doc(result: dict, command: str) -> None:
    tp = result["throughput"]
    lines = [
        "## bench/scale.py", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Command: `{command}` (embedded Tansu broker and Valkey, {result['partitions_per_topic']} partitions per "
        f"input topic = {result['partitions']} partitions for the group; {result['events']:,} pre-produced simulated "
        f"events; session timeout {result['session_s']:g} s; load average (1 min) at start "
        f"{result['load_average_1m_at_start']}, shared machine)", "",
        "| engine | workers | events/s | x one worker | / aiokafka floor of the run |", "|---|---|---|---|---|",
    ]
    for engine in ("direct", "faust"):
        rows = [r for r in tp if r["engine"] == engine]
        for row in rows:
            lines.append(f"| {engine} | {row['workers']} | {row['events_per_s']:,.0f} | "
                         f"{row['events_per_s'] / rows[0]['events_per_s']:.2f} | "
                         f"{row['events_per_s'] / result['floor_events_per_s']:.2f} |")
    lines += ["", f"Floor (one plain aiokafka getmany loop, same traffic): {result['floor_events_per_s']:,.0f} events/s.",
              "", f"Membership: 3 direct workers under a steady {result['rate']:,} deposits/s; one SIGKILLed and a "
              "replacement started at once; then a 4th worker added.", "",
              "| join policy | event | no record applied, longest s | until every partition has an owner, s | "
              "rebalances of the others | records re-read |", "|---|---|---|---|---|---|"]
    for m in result["membership"]:
        k = m["kill"]
        if "steady_rebalances_in_21_s" in m:
            lines.append(f"| {m['policy']} | no kill, 21 s of steady load | | | {m['steady_rebalances_in_21_s']} | |")
        lines.append(f"| {m['policy']} | kill + replacement | {k['no_record_applied_longest_s']} | "
                     f"{k['kill_to_all_partitions_owned_s']} | {k['survivor_rebalances']} | {k['records_re_read']:,} |")
        if "join" in m:
            j = m["join"]
            lines.append(f"| {m['policy']} | 4th worker added | {j['no_record_applied_longest_s']} | "
                         f"{j['start_to_all_partitions_owned_s']} | {j['member_rebalances']} | |")
    lines += ["", "Throughput on 2 shared cores: the broker, Valkey, the load and every worker compete for them, so "
              "more workers here mostly measure the machine; the ratio to the floor of the same run is the figure "
              "to compare between runs. Pauses and recovery times depend on the broker's group protocol (Tansu "
              "0.6 here), not on the load; docs/CAPACITY.md reads them.", ""]
    write_section("## bench/scale.py", "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8, help="partitions per input topic")
    parser.add_argument("--workers", default="1,2,3", help="worker counts for the throughput phase")
    parser.add_argument("--rate", type=int, default=2_000, help="deposits/s of the steady load in the membership phase")
    parser.add_argument("--session-s", type=float, default=6.0, help="NBO_STREAM__SESSION_TIMEOUT_S of the workers")
    parser.add_argument("--faust", action="store_true", help="also the faust engine's throughput")
    parser.add_argument("--static", action="store_true", help="also the kill with static membership")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each membership policy")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    parser.add_argument("--write-doc", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()

    load_at_start = round(os.getloadavg()[0], 2)
    counts = [int(c) for c in args.workers.split(",")]
    os.environ["NBO_KAFKA__PARTITIONS"] = str(args.partitions)
    partitions = args.partitions * len(INPUT_TOPICS)
    result: dict = {"events": args.events, "partitions_per_topic": args.partitions, "partitions": partitions,
                    "session_s": args.session_s, "rate": args.rate, "load_average_1m_at_start": load_at_start,
                    "throughput": [], "membership": []}
    with tempfile.TemporaryDirectory(prefix="nbo-scale-") as tmp:
        settings = load_settings(data_dir=Path(tmp))
        with running_servers(settings) as servers:
            records = simulated(args.events)
            log(f"producing {len(records):,} simulated events on {partitions} partitions ...")
            produce(servers.kafka_bootstrap, records)
            log("floor: plain aiokafka getmany loop ...")
            floor = asyncio.run(floor_rate(servers.kafka_bootstrap, servers.redis_url, len(records),
                                           "f" + uuid.uuid4().hex[:8]))
            result["floor_events_per_s"] = round(floor, 1)
            log(f"  {floor:,.0f} events/s")
            engines = ["direct", "faust"] if args.faust else ["direct"]
            for engine in ([] if args.skip_throughput else engines):
                for count in counts:
                    log(f"{engine}: {count} worker(s) draining {len(records):,} events ...")
                    row = throughput(servers, len(records), count, engine, Path(tmp))
                    row["engine"] = engine
                    result["throughput"].append(row)
                    log(f"  {row['events_per_s']:,.0f} events/s (assignments per worker {row['assignments_per_worker']})")
            for policy in ["join at once", "join wait", *(["static membership"] if args.static else [])]:
                log(f"membership, {policy}: kill one of 3 workers at {args.rate:,} deposits/s ...")
                for _ in range(args.repeat):
                    result["membership"].append(membership(servers, partitions, len(records), args, Path(tmp), policy))
    if args.write_doc:
        write_doc(result, "python bench/scale.py " + " ".join(sys.argv[1:]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
