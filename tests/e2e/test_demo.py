"""``nbo demo --once`` is what a new user runs first: it must print offers with reasons on all
three channels and exit 0, starting its own servers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_demo_once_prints_offers_with_reasons_on_every_channel(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    env["NBO_DATA_DIR"] = str(tmp_path / "nbo")
    env["NBO_API__PORT"] = "0"
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--once", "--customers", "60", "--train-customers", "1500"],
        env=env, capture_output=True, text=True, timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for channel in ("== teller ==", "== call_centre ==", "== mobile =="):
        assert channel in out
        section = out.split(channel, 1)[1].split("==", 1)[0]
        assert "1. " in section, f"no offer printed under {channel}:\n{section}"
    assert "/docs" in out and "/agent?customer=" in out


def _demo_once(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--once", "--customers", "60", "--train-customers", "1500"],
        env=env, capture_output=True, text=True, timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_a_second_demo_run_says_what_it_reused_and_applies_the_new_traffic(tmp_path):
    """The embedded broker forgets everything between runs while Redis and the model registry
    keep theirs: the second run must still apply its traffic, and its lines must say so."""
    import re

    from services.runtime import start_valkey

    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    env["NBO_DATA_DIR"] = str(tmp_path / "nbo")
    env["NBO_API__PORT"] = "0"

    def applied(out: str) -> tuple[int, int]:
        published = int(re.search(r"publishing (\d+) simulated bank events", out).group(1))
        match = re.search(r"the worker applied (\d+) of the (\d+) events", out)
        assert match, out
        assert int(match.group(2)) == published
        return int(match.group(1)), published

    first = _demo_once(env)
    assert "training the first model" in first and "cleared" not in first
    trained = re.search(r"serving model (\S+)", first).group(1)
    first_applied, first_published = applied(first)
    assert first_applied == first_published > 0

    second = _demo_once(env)
    steps = [line for line in second.splitlines() if line.startswith("[")]
    assert "training" not in "\n".join(steps), steps
    assert re.search(rf"\[2/6\] reusing model {re.escape(trained)} trained at \d{{4}}-\d\d-\d\dT", second), steps
    cleared = re.search(r"cleared ([\d,]+) Redis keys of an earlier run", second)
    assert cleared and int(cleared.group(1).replace(",", "")) > 0, second[:2000]
    second_applied, second_published = applied(second)
    assert second_applied == second_published > 0, "the second run's traffic was not applied"
    assert "already applied" not in second
    for channel in ("== teller ==", "== call_centre ==", "== mobile =="):
        section = second.split(channel, 1)[1].split("==", 1)[0]
        assert f"model {trained}" in section

    # The printed count is the worker's own: the counters the second run left in Redis agree.
    import redis

    from adapters.keys import stats_key
    from bootstrap.settings import RedisSettings

    valkey, url = start_valkey(tmp_path / "nbo" / "redis")
    try:
        stats = redis.Redis.from_url(url).hgetall(stats_key(RedisSettings().key_prefix))  # the demo's env sets none
    finally:
        valkey.stop()
    # The worker also folds the decision records of the offers the demo then asked for (one per
    # customer and channel printed), which may land before or after Redis stopped.
    decisions = len(re.findall(r"^C\S+  model ", second.split("== teller ==", 1)[1], flags=re.M))
    assert second_applied <= int(stats[b"applied"]) <= second_applied + decisions, (stats, decisions)


@pytest.mark.parametrize("started", ["in a terminal", "as a background job (SIGINT ignored at start)"])
def test_ctrl_c_stops_the_demo_and_every_server_it_started(tmp_path, started):
    import re
    import signal
    import socket
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    env["NBO_DATA_DIR"] = str(tmp_path / "nbo")
    env["NBO_API__PORT"] = "0"
    demo = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "demo", "--customers", "40", "--train-customers", "1500"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if "background" in started else None,
    )
    out = []
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            out.append(line)
            if "Serving until Ctrl-C" in line:
                break
        text = "".join(out)
        assert "Serving until Ctrl-C" in text, text[-3000:]
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text)]
        assert len(ports) >= 3, text  # broker, Redis, the API

        os.killpg(demo.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole foreground group
        assert demo.wait(timeout=60) == 0, "".join(out) + demo.stdout.read()[-3000:]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()

    def listening(port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    still = [p for p in ports if listening(p)]
    assert not still, f"ports still served after Ctrl-C: {still}"
