"""Idle CPU of the embedded stack: ``nbo demo`` serving, no traffic.

Starts ``nbo demo`` (embedded Tansu and Valkey, a stream worker, the offer API) on a fresh data
directory with small simulated sizes, waits until it says it is serving, lets it settle, then
reads the CPU time of every process of the demo's tree from /proc over ``--seconds`` and prints
each one's share of a core. ``--faust`` measures a second run with ``NBO_STREAM__ENGINE=faust``.

    .venv/bin/python bench/idle.py [--seconds 20] [--faust] [--json] [--write-docs]

The last line of output is one JSON object with the figures. ``--write-docs`` replaces the
``## bench/idle.py`` section of docs/BENCHMARKS.md. Target: under 5 % of one core in all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def log(*parts: object) -> None:
    print(*parts, flush=True)


def tree(root_pid: int) -> dict[int, str]:
    """pid -> a short name, for ``root_pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        names[int(entry.name)] = _name(cmdline)
    found, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        found[pid] = names.get(pid, "?")
        todo += children.get(pid, [])
    return found


def _name(cmdline: list[bytes]) -> str:
    text = " ".join(part.decode(errors="replace") for part in cmdline if part)
    for needle, name in (("valkey", "redis"), ("tansu", "broker"), ("calfkit", "broker"), (" worker", "worker"),
                         (" api", "api"), (" demo", "demo")):
        if needle in text:
            return name
    return text.split(" ")[0].rsplit("/", 1)[-1] or "?"


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def measure_demo(seconds: float, engine: str) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix="nbo-idle-"))
    env = {**os.environ, "NBO_DATA_DIR": str(data_dir), "NBO_STREAM__ENGINE": engine, "PYTHONUNBUFFERED": "1"}
    env.pop("NBO_KAFKA__BOOTSTRAP", None)
    env.pop("NBO_REDIS__URL", None)
    command = [sys.executable, "-m", "services.cli", "demo", "--customers", "100", "--train-customers", "1500",
               "--days", "7"]
    demo = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        assert demo.stdout is not None
        for line in demo.stdout:
            if "Serving until Ctrl-C" in line:
                break
            if time.monotonic() > deadline or demo.poll() is not None:
                raise SystemExit(f"nbo demo did not come up: {line}")
        time.sleep(5)  # let the first model poll and the worker's last commits pass
        pids = tree(demo.pid)
        before = {pid: cpu_s(pid) for pid in pids}
        time.sleep(seconds)
        shares: dict[str, float] = {}
        for pid, name in pids.items():
            shares[name] = shares.get(name, 0.0) + 100 * (cpu_s(pid) - before[pid]) / seconds
        return {name: round(share, 2) for name, share in sorted(shares.items())}
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()


def write_docs(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    lines = ["## bench/idle.py", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
             f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
             f"Command: `.venv/bin/python bench/idle.py --seconds {args.seconds:g}{' --faust' if args.faust else ''} "
             "--write-docs` (`nbo demo` serving with no traffic: embedded Tansu and Valkey, one stream worker, one "
             "API process; CPU time of each process from /proc over the window)", "",
             "| stream engine | " + " | ".join(sorted(next(iter(results.values())))) + " | total |",
             "|---" * (len(next(iter(results.values()))) + 2) + "|"]
    for engine, shares in results.items():
        lines.append(f"| {engine} | " + " | ".join(f"{shares[k]:.1f} %" for k in sorted(shares))
                     + f" | **{sum(shares.values()):.1f} %** |")
    lines += ["", "Figures are percent of one core. Target: under 5 % in all while idle. The direct engine "
              "waits `NBO_STREAM__IDLE_FETCH_WAIT_MS` (500 ms) per fetch after `NBO_STREAM__IDLE_AFTER_MS` "
              "(1 s) without records, and the broker answers a fetch as soon as a record arrives, so the "
              "first record after a quiet spell is not delayed by the wait (freshness: bench/stream.py).", ""]
    write_section("## bench/idle.py", "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the idle window (default 20)")
    parser.add_argument("--faust", action="store_true", help="also measure with the faust engine")
    parser.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    results = {}
    for engine in (["direct", "faust"] if args.faust else ["direct"]):
        log(f"nbo demo with the {engine} engine, idle for {args.seconds:g} s ...")
        results[engine] = measure_demo(args.seconds, engine)
        log(f"  {results[engine]}  total {sum(results[engine].values()):.1f} % of a core")
    if args.write_docs:
        write_docs(results, args)
    print(json.dumps({f"{engine}_total_pct": round(sum(s.values()), 2) for engine, s in results.items()}
                     | {"per_process": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
