"""API keys bound to a channel, stored as sha256 digests; a token bucket per key, or one limit
per key shared by all replicas (``SharedRateLimiter``, the bucket as its fallback); the
middleware that checks both on the channel routes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from fastapi.responses import JSONResponse

from adapters.ports import SharedRateLimit
from bootstrap.settings import ClientKey
from schemas.events import OfferChannel

log = logging.getLogger("nbo.api")

#: Development keys, accepted only with NBO_API__ALLOW_DEV_KEYS=true (the demo and tests).
DEV_KEYS: dict[str, ClientKey] = {
    "dev-teller": ClientKey(client="dev-teller", channel="teller"),
    "dev-agent": ClientKey(client="dev-agent", channel="call_centre"),
    "dev-mobile": ClientKey(client="dev-mobile", channel="mobile"),
    "dev-marketing": ClientKey(client="dev-marketing", channel="marketing"),
}

#: The scope of the keys that read the effectiveness report (and nothing else).
MARKETING = "marketing"


class ApiError(Exception):
    """A client-facing error with its HTTP status and a message that says what to fix."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


@dataclass(frozen=True)
class Client:
    name: str
    channel: str
    key_digest: str


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Authenticator:
    def __init__(self, keys: Mapping[str, ClientKey], allow_dev_keys: bool) -> None:
        self._keys = dict(keys)
        if allow_dev_keys:
            self._keys.update({digest(k): v for k, v in DEV_KEYS.items()})
        self._cache: dict[str, Client | None] = {}

    def authenticate(self, key: str | None, channel: str) -> Client:
        if not key:
            raise ApiError(401, "missing API key: send it in the X-API-Key header")
        client = self._cache.get(key)
        if client is None:
            found = self._keys.get(digest(key))
            if found is None:
                raise ApiError(401, "unknown API key: check the X-API-Key header")
            client = Client(found.client, found.channel, digest(key))
            if len(self._cache) < 10_000:
                self._cache[key] = client
        if client.channel != channel:
            raise ApiError(403, wrong_scope(client.channel, channel))
        return client


def wrong_scope(have: str, need: str) -> str:
    """The 403's sentence: what the key is for, and what the route needs."""
    if need == MARKETING:
        return f"this API key is for the {have} channel; the reports need a key of the marketing scope"
    if have == MARKETING:
        return f"this API key is for the marketing reports, not the {need} channel"
    return f"this API key is for the {have} channel, not {need}"


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


@dataclass
class RateLimiter:
    """Token bucket per key: ``rate_per_s`` sustained, ``burst`` at once."""

    rate_per_s: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def check(self, client: Client, now_s: float | None = None) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        bucket = self._buckets.get(client.key_digest)
        if bucket is None:
            bucket = self._buckets[client.key_digest] = _Bucket(float(self.burst), now_s)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now_s - bucket.updated_s) * self.rate_per_s)
        bucket.updated_s = now_s
        if bucket.tokens < 1.0:
            raise rate_limited(self.rate_per_s, (1.0 - bucket.tokens) / self.rate_per_s)
        bucket.tokens -= 1.0


def rate_limited(rate_per_s: float, retry_s: float) -> ApiError:
    return ApiError(429, f"rate limit of {rate_per_s:g} requests/s for this key exceeded; retry later",
                    headers={"Retry-After": str(max(1, math.ceil(retry_s)))})


class SharedRateLimiter:
    """The limit all replicas share (a ``SharedRateLimit``: one GCRA cell per key in Redis), with
    this replica's token bucket as the fallback. A request waits at most ``budget_s`` for the
    shared answer; when Redis is slower than that, or fails, the local bucket decides, and Redis
    is not asked again for ``pause_s`` (so an outage costs one budget per ``pause_s``, not one per
    request). ``fallbacks`` counts the requests the local bucket decided."""

    def __init__(self, shared: SharedRateLimit, local: RateLimiter, budget_s: float, pause_s: float = 1.0,
                 clock: Any = time.monotonic) -> None:
        self.shared = shared
        self.local = local
        self.budget_s = budget_s
        self.pause_s = pause_s
        self.clock = clock
        self.fallbacks = 0
        self._paused_until = 0.0

    async def check(self, client: Client) -> None:
        if self._paused_until and self.clock() < self._paused_until:
            self.fallbacks += 1
            self.local.check(client)
            return
        try:
            async with asyncio.timeout(self.budget_s):
                retry_s = await self.shared.take(client.key_digest)
        except Exception as exc:  # slow, down, or a cluster in trouble: never fail the request for it
            if not self._paused_until:
                log.warning("shared rate limit unavailable (%s); this replica's own bucket decides for now",
                            type(exc).__name__)
            self._paused_until = self.clock() + self.pause_s
            self.fallbacks += 1
            self.local.check(client)
            return
        if self._paused_until:
            log.warning("shared rate limit back")
            self._paused_until = 0.0
        if retry_s > 0:
            raise rate_limited(self.shared.rate_per_s, retry_s)


class KeyGuards(Protocol):
    """What the middleware needs of the app's parts (``deps.Services`` has both)."""

    auth: "Authenticator"

    async def admit(self, client: Client) -> None:
        """Raise ``ApiError`` 429 if the client is over its rate limit."""


class ChannelKeys:
    """Pure ASGI middleware: the key check and rate limit of the channel routes, chosen by path
    prefix, before FastAPI parses anything (so a request without a valid key gets 401/403/429
    whatever else is wrong with it). Routes it guards declare the key in the OpenAPI document
    with ``deps.KEY_REQUIRED``. Doing it here rather than as a FastAPI dependency costs less per
    request (see docs/API.md, Performance)."""

    PREFIXES: tuple[tuple[str, str], ...] = (
        ("/v1/teller/", OfferChannel.TELLER.value),
        ("/v1/call-centre/", OfferChannel.CALL_CENTRE.value),
        ("/v1/mobile/", OfferChannel.MOBILE.value),
    )

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for prefix, channel in self.PREFIXES:
                if path.startswith(prefix):
                    try:
                        await self._check(scope, channel)
                    except ApiError as exc:
                        await JSONResponse({"detail": exc.detail}, status_code=exc.status,
                                           headers=exc.headers)(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)

    @staticmethod
    async def _check(scope: dict[str, Any], channel: str) -> None:
        services: KeyGuards = scope["app"].state.services
        key = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"x-api-key"), None)
        await services.admit(services.auth.authenticate(key, channel))
