"""Redis with ACL users (``NBO_REDIS__USERNAME`` / ``NBO_REDIS__PASSWORD``, the password from
``NBO_REDIS__PASSWORD_FILE``): a real Valkey whose default user is off and whose ``nbo`` user has a
password. The worker's health check, its state store, the API (state reads, shared rate limit,
shared control values) connect with the credentials, and without them fail in a way that says
so. (TLS cannot be tried here: the packaged Valkey is built without it, see docs/OPERATIONS.md;
the TLS arguments are checked in tests/unit/test_connection_settings.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from adapters.shared_control import MODEL, RedisControl
from bootstrap import state_store
from bootstrap.connections import redis_security
from bootstrap.settings import load_settings
from services.api.app import create_app
from services.cli import main as nbo
from services.runtime import start_valkey

USER, PASSWORD = "nbo", "correct horse battery staple"


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_valkey(tmp_path_factory.mktemp("acl-redis"), name="redis-acl")
    try:
        admin = redis.Redis.from_url(url)
        admin.acl_setuser(USER, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], channels=["*"],
                          commands=["+@all"])
        admin.acl_setuser("default", enabled=False)  # from here on, only the nbo user gets in
        admin.close()
        yield url
    finally:
        proc.stop()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "redis_password"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def env(acl_redis: str, servers: Any, tmp_path: Path, password_file: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"NBO_DATA_DIR": str(tmp_path), "NBO_KAFKA__BOOTSTRAP": servers.kafka_bootstrap,
                        "NBO_REDIS__URL": acl_redis, "NBO_REDIS__USERNAME": USER,
                        "NBO_REDIS__PASSWORD_FILE": str(password_file), "NBO_REDIS__TIMEOUT_MS": "500",
                        "NBO_API__ALLOW_DEV_KEYS": "true", "NBO_API__RATE_LIMIT": "shared",
                        "NBO_API__RATE_LIMIT_BUDGET_MS": "500", "NBO_API__CONTROL_SOURCE": "redis"}.items():
        monkeypatch.setenv(name, value)
    yield


def test_the_worker_health_check_passes_with_the_credentials_and_says_why_without(
        env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert nbo(["worker", "--check"]) == 0
    monkeypatch.delenv("NBO_REDIS__PASSWORD_FILE")
    monkeypatch.setenv("NBO_REDIS__PASSWORD", "wrong")
    assert nbo(["worker", "--check"]) == 1
    assert "invalid username-password pair" in capsys.readouterr().out


def test_the_workers_state_store_writes_with_the_credentials_and_is_refused_without(env: None) -> None:
    settings = load_settings()
    store = state_store(settings)
    try:
        store.count("applied", 3)
        assert store.counters()["applied"] == 3
    finally:
        store.close()
    anonymous = state_store(settings.model_copy(update={"redis": settings.redis.model_copy(
        update={"username": None, "password": None})}))
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.counters()
    finally:
        anonymous.close()


def test_the_api_serves_with_the_credentials_and_says_why_it_is_not_ready_without(
        env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unique_customer_id: str) -> None:
    settings = load_settings()
    control = RedisControl(settings.redis.url, settings.redis.key_prefix, security=redis_security(settings.redis))
    assert control.get(MODEL) is None  # the shared control values are readable with the credentials
    control.close()
    with TestClient(create_app(load_settings())) as api:
        ready = api.get("/readyz")
        offer = api.get(f"/v1/call-centre/customers/{unique_customer_id}/offers", headers={"X-API-Key": "dev-agent"})
        assert ready.status_code == 200 and ready.json()["redis"] is True
        assert offer.status_code == 200 and offer.json()["degraded"] is False
        assert api.app.state.services.shared_limiter.fallbacks == 0  # the shared limit answered
    (tmp_path / "wrong_password").write_text("wrong\n")
    monkeypatch.setenv("NBO_REDIS__PASSWORD_FILE", str(tmp_path / "wrong_password"))
    with TestClient(create_app(load_settings())) as api:
        ready = api.get("/readyz")
        offer = api.get(f"/v1/call-centre/customers/{unique_customer_id}/offers", headers={"X-API-Key": "dev-agent"})
        assert ready.status_code == 503
        assert "invalid username-password pair" in ready.json()["redis_error"]
        assert offer.status_code == 200 and offer.json()["degraded"] is True  # safe offers, never a 5xx


def test_cluster_clients_sync_and_asyncio_send_the_credentials_to_every_node(cluster_servers: Any) -> None:
    """On the session's cluster (its default user takes any password), every node connection of
    both cluster clients carries the ACL user and password."""
    import asyncio

    from adapters.redis_connect import RedisSecurity, connect, connect_async

    security = RedisSecurity(username="default", password="cluster-secret")
    client = connect(cluster_servers.redis_url, "cluster", security=security)
    try:
        assert client.ping()
        kwargs = [node.redis_connection.connection_pool.connection_kwargs for node in client.get_nodes()]
        assert len(kwargs) == 3
        assert all((k["username"], k["password"]) == ("default", "cluster-secret") for k in kwargs)
    finally:
        client.close()

    async def asyncio_nodes() -> list[dict[str, Any]]:
        aclient = await connect_async(cluster_servers.redis_url, "cluster", security=security)
        try:
            await aclient.ping()
            return [node.connection_kwargs for node in aclient.get_nodes()]
        finally:
            await aclient.aclose()

    nodes = asyncio.run(asyncio_nodes())
    assert len(nodes) == 3
    assert all((k["username"], k["password"]) == ("default", "cluster-secret") for k in nodes)
