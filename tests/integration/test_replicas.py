"""Several API replicas behave as one service (``NBO_API__CONTROL_SOURCE=redis``,
``NBO_API__RATE_LIMIT=shared``): two replicas (two apps, each with its own event loop and
lifespan, as two processes would) on the session's real Valkey switch to a promoted model and
to a pushed marketing policy within a second of each other, without waiting for their polls; a
policy that fails validation is refused by ``nbo levers push`` with the levers file's message and
changes nothing; and a key's rate limit holds across both replicas together."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from adapters import keys
from adapters.model_registry import ModelRegistry
from bank_catalog import trained_for
from bootstrap.settings import load_settings
from domain.catalog import load_catalog
from services.api.app import create_app
from services.cli import main as nbo

AGENT = {"X-API-Key": "dev-agent"}


@pytest.fixture
def env(servers: Any, key_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of the replicas and of the operator's commands (one deployment)."""
    values = {
        "NBO_DATA_DIR": str(tmp_path), "NBO_KAFKA__BOOTSTRAP": servers.kafka_bootstrap,
        "NBO_REDIS__URL": servers.redis_url, "NBO_REDIS__KEY_PREFIX": key_prefix, "NBO_REDIS__TIMEOUT_MS": "250",
        "NBO_MODEL__REGISTRY_DIR": str(tmp_path / "models"),  # the volume every replica mounts
        "NBO_API__ALLOW_DEV_KEYS": "true", "NBO_API__CONTROL_SOURCE": "redis", "NBO_API__RATE_LIMIT": "shared",
        "NBO_API__RATE_LIMIT_BUDGET_MS": "200",  # a busy shared test machine; the fallback is tested in tests/unit
        # Polls far apart: a switch within a second can only come from the notification.
        "NBO_API__MODEL_POLL_S": "60", "NBO_API__POLICY_POLL_S": "60",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def replicas(env: dict[str, str]) -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(create_app(load_settings())) as one, TestClient(create_app(load_settings())) as two:
        wait_until(lambda: subscribers(env) >= 2, 5, "both replicas subscribed")
        yield one, two


def subscribers(env: dict[str, str]) -> int:
    client = redis.Redis.from_url(env["NBO_REDIS__URL"])
    try:
        return int(dict(client.pubsub_numsub(keys.control_channel(env["NBO_REDIS__KEY_PREFIX"])))[
            keys.control_channel(env["NBO_REDIS__KEY_PREFIX"]).encode()])
    finally:
        client.close()


def wait_until(condition: Callable[[], Any], deadline_s: float, what: str) -> Any:
    deadline = time.monotonic() + deadline_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.005)
    return value


def switched_at(replicas: tuple[TestClient, ...], has_switched: Callable[[Any], bool],
                deadline_s: float = 5.0) -> list[float]:
    """When each replica was first seen switched (monotonic seconds), polling every 5 ms."""
    seen: dict[int, float] = {}

    def all_switched() -> bool:
        for i, replica in enumerate(replicas):
            if i not in seen and has_switched(replica.app.state.services):
                seen[i] = time.monotonic()
        return len(seen) == len(replicas)

    wait_until(all_switched, deadline_s, "every replica to switch")
    return [seen[i] for i in range(len(replicas))]


def test_a_promoted_model_is_served_by_both_replicas_within_a_second_of_each_other(
        replicas: tuple[TestClient, TestClient], env: dict[str, str], unique_customer_id: str) -> None:
    one, two = replicas
    registry = ModelRegistry(Path(env["NBO_MODEL__REGISTRY_DIR"]), load_catalog())
    model = trained_for(load_catalog())
    version = registry.save(model, dict(model.metadata))
    assert one.app.state.services.models.version == two.app.state.services.models.version == "popularity"

    promoted = time.monotonic()
    assert nbo(["promote", version, "--force"]) == 0  # a hand-made model: no promotion-gate verdict
    first, second = switched_at(replicas, lambda services: services.models.version == version)
    assert abs(first - second) < 1.0
    assert max(first, second) - promoted < 1.0  # not the 60 s poll
    for replica in replicas:  # what a terminal sees
        answer = replica.get(f"/v1/call-centre/customers/{unique_customer_id}/offers", headers=AGENT)
        assert answer.status_code == 200 and answer.json()["model_version"] == version


def test_a_pushed_policy_is_used_by_both_replicas_within_a_second_and_a_bad_one_is_refused(
        replicas: tuple[TestClient, TestClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    levers = tmp_path / "levers.json"
    levers.write_text(json.dumps({"levers": {"fund": 2.5, "loan": 0.5}}))
    pushed = time.monotonic()
    assert nbo(["levers", "push", str(levers)]) == 0
    first, second = switched_at(replicas, lambda services: services.policies.current.levers.get("fund") == 2.5)
    assert abs(first - second) < 1.0 and max(first, second) - pushed < 1.0
    assert "pushed" in capsys.readouterr().out

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"levers": {"fund": "lots"}}))
    assert nbo(["levers", "push", str(bad)]) == 2
    refusal = capsys.readouterr().err
    assert f"refused: {bad}: levers.fund" in refusal  # the levers file's own message
    for replica in replicas:
        assert replica.app.state.services.policies.current.levers.get("fund") == 2.5  # unchanged


def test_two_replicas_share_one_rate_limit(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                           unique_customer_id: str) -> None:
    monkeypatch.setenv("NBO_API__RATE_PER_S", "1")
    monkeypatch.setenv("NBO_API__RATE_BURST", "10")
    with TestClient(create_app(load_settings())) as one, TestClient(create_app(load_settings())) as two:
        started = time.monotonic()
        codes = [(one if i % 2 else two).get(f"/v1/call-centre/customers/{unique_customer_id}/offers",
                                             headers=AGENT).status_code for i in range(40)]
        took_s = time.monotonic() - started
        fallbacks = [c.app.state.services.shared_limiter.fallbacks for c in (one, two)]
    assert set(codes) == {200, 429}
    assert fallbacks == [0, 0]  # the shared limit decided every request
    # The burst plus the rate over the time the requests took, across both: not twice that.
    assert 10 <= codes.count(200) <= 10 + int(took_s * 1) + 1, (codes, took_s)
