"""``nbo demo --once`` is what a new user runs first: it must print offers with reasons on all
three channels and exit 0, starting its own servers."""

from __future__ import annotations

import os
import subprocess
import sys


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
