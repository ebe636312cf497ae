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
