"""API keys bound to channels, stored hashed; the per-key rate limit; the body limit; start-up
refusal of a missing or development key set. Pure request handling, no servers."""

from __future__ import annotations

import asyncio

import pytest

from services.api.app import create_app
from services.api.auth import ApiError, Authenticator, RateLimiter, digest
from services.api.limits import BodyLimit
from bootstrap.settings import ClientKey, SettingsError, load_settings

BRANCH_KEY = "s3cret-branch-001"
KEYS = {digest(BRANCH_KEY): ClientKey(client="branch-001", channel="teller")}


def test_a_key_works_only_on_its_own_channel():
    auth = Authenticator(KEYS, allow_dev_keys=False)
    assert auth.authenticate(BRANCH_KEY, "teller").name == "branch-001"
    with pytest.raises(ApiError) as wrong_channel:
        auth.authenticate(BRANCH_KEY, "mobile")
    assert wrong_channel.value.status == 403 and "teller" in wrong_channel.value.detail


def test_missing_and_unknown_keys_are_401_and_dev_keys_need_permission():
    auth = Authenticator(KEYS, allow_dev_keys=False)
    for key in (None, "", "dev-teller", digest(BRANCH_KEY)):  # the stored digest is not a key
        with pytest.raises(ApiError) as refused:
            auth.authenticate(key, "teller")
        assert refused.value.status == 401 and "X-API-Key" in refused.value.detail
    assert Authenticator(KEYS, allow_dev_keys=True).authenticate("dev-agent", "call_centre").channel == "call_centre"


def test_rate_limit_allows_the_burst_then_429_with_retry_after_then_refills():
    auth = Authenticator(KEYS, allow_dev_keys=False)
    client = auth.authenticate(BRANCH_KEY, "teller")
    limiter = RateLimiter(rate_per_s=2.0, burst=3)
    for _ in range(3):
        limiter.check(client, now_s=100.0)
    with pytest.raises(ApiError) as limited:
        limiter.check(client, now_s=100.0)
    assert limited.value.status == 429 and int(limited.value.headers["Retry-After"]) >= 1
    limiter.check(client, now_s=100.6)  # 0.6 s at 2/s refilled one request


def test_settings_accept_only_sha256_digests_as_keys():
    with pytest.raises(SettingsError) as bad:
        load_settings(api={"keys": {"plain-key": {"client": "x", "channel": "teller"}}})
    assert "NBO_API__KEYS" in str(bad.value) and "sha256" in str(bad.value)


def test_the_app_refuses_to_start_without_keys_or_with_dev_keys_as_real_ones():
    with pytest.raises(SettingsError, match="NBO_API__ALLOW_DEV_KEYS"):
        create_app(load_settings())
    dev_as_real = {digest("dev-teller"): {"client": "x", "channel": "teller"}}
    with pytest.raises(SettingsError, match="development key"):
        create_app(load_settings(api={"keys": dev_as_real}))
    assert create_app(load_settings(api={"keys": {digest(BRANCH_KEY): {"client": "b", "channel": "teller"}}}))


def _call(app, body: bytes, declared: bool) -> tuple[int, bytes, bool]:  # type: ignore[no-untyped-def]
    sent: list[dict] = []
    reached = False
    chunks = [body[i:i + 100] for i in range(0, len(body), 100)] or [b""]

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        nonlocal reached
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
        reached = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():  # type: ignore[no-untyped-def]
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    headers = [(b"content-length", str(len(body)).encode())] if declared else []
    asyncio.run(BodyLimit(inner, max_bytes=256)({"type": "http", "headers": headers}, receive, send))
    return sent[0]["status"], sent[-1]["body"], reached


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed():
    status, body, _ = _call(None, b"x" * 1000, declared=True)
    assert status == 413 and b"256 bytes" in body
    status, _, _ = _call(None, b"x" * 1000, declared=False)
    assert status == 413
    status, body, reached = _call(None, b"x" * 200, declared=True)
    assert status == 200 and reached
