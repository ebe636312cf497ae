"""The running product on one machine: servers, a stream worker and the offer API as children.

Used by ``nbo demo`` and by the end-to-end and browser tests, so both exercise the same start-up
path as an operator would. Every child dies with its parent (``PR_SET_PDEATHSIG``), and
``Stack.stop`` stops them in reverse order.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from services.runtime import ManagedProcess, RuntimeStartError, Servers, child_env, free_port, nbo_command

#: Development API keys, one per channel; accepted only when dev keys are allowed.
DEV_KEYS = {"teller": "dev-teller", "call_centre": "dev-agent", "mobile": "dev-mobile"}


@dataclass
class Stack:
    servers: Servers
    log_dir: Path
    api_port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    worker: ManagedProcess | None = None
    api: ManagedProcess | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        return child_env(
            self.servers,
            NBO_API__ALLOW_DEV_KEYS="true",
            NBO_API__HOST="127.0.0.1",
            NBO_API__PORT=str(self.api_port),
            **self.extra_env,
        )

    def start_worker(self) -> ManagedProcess:
        self.worker = ManagedProcess("worker", nbo_command("worker"), self.log_dir / "worker.log", env=self.env())
        self.worker.start()
        return self.worker

    def start_api(self, ready_deadline_s: float = 60.0) -> ManagedProcess:
        self.api_port = self.api_port or free_port()
        self.api = ManagedProcess("api", nbo_command("api"), self.log_dir / "api.log", env=self.env())
        self.api.start()
        wait_http_ok(self.api, f"{self.api_url}/healthz", ready_deadline_s)
        return self.api

    def children(self) -> list[ManagedProcess]:
        return [p for p in (self.worker, self.api) if p is not None]

    def stop(self) -> None:
        for proc in reversed(self.children()):
            proc.stop()


def wait_http_ok(proc: ManagedProcess, url: str, deadline_s: float) -> None:
    """Wait until ``url`` answers 200, failing early (with its log) if the process died."""
    deadline = time.monotonic() + deadline_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeStartError(f"{proc.name} exited during start-up:\n{proc.tail(30)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise RuntimeStartError(f"{proc.name} did not answer {url} within {deadline_s:.0f} s ({last_error}):\n{proc.tail(30)}")
