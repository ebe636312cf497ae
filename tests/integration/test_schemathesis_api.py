"""Schemathesis against the offer API's own OpenAPI spec, served by uvicorn on the real Redis and
broker: whatever a client sends, the answer is never a 5xx and always matches the spec."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings as hsettings

from services.api.app import create_app
from bootstrap.settings import load_settings
from schemas.rules import looks_like_card_number

KEYS = {"teller": "dev-teller", "call_centre": "dev-agent", "mobile": "dev-mobile", "marketing": "dev-marketing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def api_url(servers, tmp_path_factory) -> Iterator[str]:
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("schemathesis"),
        kafka={"bootstrap": servers.kafka_bootstrap},
        redis={"url": servers.redis_url, "key_prefix": "schemathesis", "timeout_ms": 200},
        api={"allow_dev_keys": True, "rate_per_s": 100_000, "rate_burst": 100_000},
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling a condition with a deadline, not synchronising by sleep
    else:
        raise RuntimeError("the API did not start within 30 s")
    yield url
    server.should_exit = True
    thread.join(timeout=10)


# The spec comes from the app itself (building the app connects to nothing); the requests go to
# the running server.
SCHEMA = schemathesis.openapi.from_dict(create_app(load_settings(api={"allow_dev_keys": True})).openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def _key_for(case) -> str:  # type: ignore[no-untyped-def]
    if case.path.startswith("/v1/teller"):
        return KEYS["teller"]
    if case.path.startswith("/v1/mobile"):
        return KEYS["mobile"]
    if case.path.startswith("/v1/call-centre"):
        return KEYS["call_centre"]
    if case.path.startswith("/v1/reports"):
        return KEYS["marketing"]
    channel = None
    if isinstance(case.query, dict):
        channel = case.query.get("channel")
    if channel is None and isinstance(case.body, dict):
        channel = case.body.get("channel")
    return KEYS.get(channel, KEYS["call_centre"]) if isinstance(channel, str) else KEYS["call_centre"]


def _refused_beyond_the_spec(case, response) -> bool:  # type: ignore[no-untyped-def]
    """A 422 for what no OpenAPI schema can express, with the detail that says so: a customer id
    that is a Luhn-valid card number, a currency the served rate table has no rate for, a report
    range whose `to` is before its `from` or that is too long."""
    if response.status_code != 422:
        return False
    detail = response.json().get("detail", "")
    ids = [v for v in (*(case.path_parameters or {}).values(), *((case.body or {}).values()
                                                                  if isinstance(case.body, dict) else ()))
           if isinstance(v, str)]
    card = any(looks_like_card_number(v) for v in ids) and "tokenised customer id" in detail
    report_range = case.path.startswith("/v1/reports") and ("give from <= to" in detail
                                                             or "a report covers at most" in detail)
    return card or report_range or ("transaction.currency" in detail and "has no exchange rate" in detail)


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_input_makes_the_api_fail_or_break_its_spec(operation, api_url):  # type: ignore[no-untyped-def]
    @given(case=operation.as_strategy())
    @hsettings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:  # type: ignore[no-untyped-def]
        case.headers = {**(case.headers or {}), "X-API-Key": _key_for(case)}
        response = case.call(base_url=api_url)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")
        if _refused_beyond_the_spec(case, response):
            return
        case.validate_response(response)

    check()
