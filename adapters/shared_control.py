"""What the offer API's replicas share through Redis, so that they behave as one service.

**One rate limit per API key** (``RedisRateLimit``, the ``SharedRateLimit`` port): the generic
cell rate algorithm (GCRA) in one Lua script on one key per API key
(``<prefix>:rate:<sha256 of the key>``, see ``adapters.keys``) holding the key's *theoretical
arrival time* (TAT) in microseconds of the server's clock (``TIME``, so the replicas' clocks do not
matter). A request is admitted when the TAT is at most ``burst - 1`` emission intervals
(``1 / rate_per_s``) ahead of now; the TAT then moves one interval on. So a key gets ``burst``
requests at once and ``rate_per_s`` sustained, across all replicas together. One key per script
call: any slot of a Redis Cluster serves it. The key expires when the TAT is reached (an idle key
costs nothing).

**The promoted model version and the marketing policy** (``RedisControl``, the ``ControlStore``
port): ``nbo promote`` and ``nbo levers push`` ``put`` them (``<prefix>:control:model``, the
version name; ``<prefix>:control:policy``, the levers JSON) and publish the name of what changed on
``<prefix>:control:changed``. Each replica's ``ControlNotices.listen`` hears it and reloads at once;
its periodic poll stays as the fallback when a notification is lost (pub/sub keeps none for a
subscriber that is reconnecting, so after every (re)subscription it reloads both).
``ControlledRegistry`` is the model registry whose current version is Redis's (the artifacts stay
in the registry directory, a volume every replica mounts); ``ControlledPolicy`` the policy source
over Redis, the levers file serving until a policy was pushed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from typing import Any, Awaitable, Callable, Mapping, Sequence

import redis
from redis.exceptions import NoScriptError

from adapters import keys
from adapters.model_registry import RegistryError
from adapters.ports import ControlStore, ModelRegistry as ModelRegistryPort
from adapters.redis_connect import (
    NO_SECURITY,
    LazyAsyncClient,
    Mode,
    RedisSecurity,
    SyncClient,
    cluster_errors_as_unavailable,
    connect,
    connect_pubsub_async,
)
from adapters.watched_file import WatchedFile
from decisioning import Policy, PolicyError, policy_from_dict
from domain.catalog import Catalog
from recommender.model import NboModel

log = logging.getLogger("nbo.api.control")

#: The names a ``ControlStore`` holds.
MODEL = "model"
POLICY = "policy"
NAMES = (MODEL, POLICY)

# KEYS[1] the key's TAT; ARGV[1] emission interval (us), ARGV[2] burst.
# Returns {1, 0} when admitted, {0, microseconds until the next request would be} when not.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, math.ceil(tat - now - tolerance)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return {1, 0}
"""
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()


def emission_interval_us(rate_per_s: float) -> int:
    return max(1, round(1_000_000 / rate_per_s))


class RedisRateLimit:
    """The ``SharedRateLimit`` over Redis (one server or a cluster). Nothing connects before the
    first call; the caller bounds each call's time (``services.api.auth.SharedRateLimiter``)."""

    def __init__(self, url: str, prefix: str, rate_per_s: float, burst: int, *, mode: Mode = "auto",
                 security: RedisSecurity = NO_SECURITY, timeout_s: float = 0.05) -> None:
        self.prefix = prefix
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._interval = emission_interval_us(rate_per_s)
        self._redis = LazyAsyncClient(url, mode, socket_timeout_s=timeout_s, connect_timeout_s=max(timeout_s, 0.5),
                                      security=security)

    async def take(self, key_id: str) -> float:
        """Admit one request of ``key_id``: 0.0 if admitted, else the seconds until one would be."""
        client = self._redis.client
        if client is None:
            client = await self._redis.open()
        key = keys.rate_key(self.prefix, key_id)
        try:
            allowed, wait_us = await client.evalsha(GCRA_SHA, 1, key, self._interval, self.burst)
        except NoScriptError:  # a new or flushed server (or cluster node): EVAL caches it there
            allowed, wait_us = await client.eval(GCRA_SCRIPT, 1, key, self._interval, self.burst)
        return 0.0 if allowed else max(int(wait_us), 1) / 1_000_000

    async def close(self) -> None:
        await self._redis.aclose()


class RedisControl:
    """The ``ControlStore`` over Redis: ``get`` / ``put`` (synchronous: the commands and the API's
    watcher threads call it) and ``listen`` (asyncio, the API's notification task)."""

    def __init__(self, url: str, prefix: str, *, mode: Mode = "auto", security: RedisSecurity = NO_SECURITY,
                 timeout_s: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self.mode = mode
        self.security = security
        self.timeout_s = timeout_s
        self.channel = keys.control_channel(prefix)
        self._client: SyncClient | None = None
        self._lock = threading.Lock()

    def _sync(self) -> SyncClient:
        with self._lock:
            if self._client is None:
                self._client = connect(self.url, self.mode, socket_timeout_s=self.timeout_s,
                                       connect_timeout_s=self.timeout_s, security=self.security)
            return self._client

    def get(self, name: str) -> str | None:
        with cluster_errors_as_unavailable():
            raw = self._sync().get(keys.control_key(self.prefix, name))
        return raw.decode("utf-8") if raw is not None else None

    def put(self, name: str, value: str) -> int:
        """Store ``value`` under ``name`` and tell the replicas; returns how many subscribers
        heard it (on a cluster: those connected to the node that published)."""
        client = self._sync()
        with cluster_errors_as_unavailable():
            client.set(keys.control_key(self.prefix, name), value.encode("utf-8"))
            return int(client.publish(self.channel, name))

    async def listen(self, on_change: Callable[[str], Awaitable[object]], *, retry_s: float = 1.0,
                     on_subscribed: Callable[[], object] | None = None) -> None:
        """For ever: subscribe, reload both values (what changed while not subscribed), then call
        ``on_change(name)`` for each notification. A lost connection is logged and re-made after
        ``retry_s``; meanwhile the caller's poll keeps the values fresh."""
        down = False
        while True:
            client = connect_pubsub_async(self.url, self.security)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if down:
                    log.warning("control notifications from Redis are back")
                down = False
                if on_subscribed is not None:
                    on_subscribed()
                for name in NAMES:
                    await on_change(name)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message.get("data")
                        name = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                        if name in NAMES:
                            await on_change(name)
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as exc:
                if not down:
                    log.warning("control notifications from Redis lost (%s: %s); polling until they are back",
                                type(exc).__name__, exc)
                down = True
            finally:
                await _quietly(pubsub.aclose())
                await _quietly(client.aclose())
            await asyncio.sleep(retry_s)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:  # closing what is already broken
        pass


class ControlledRegistry:
    """The model registry (``files``: the artifacts on the shared volume) whose current version
    is the one in the ``ControlStore``. When Redis holds none, or cannot be read, the registry's
    own ``CURRENT`` file says (``nbo promote`` writes both)."""

    def __init__(self, files: ModelRegistryPort, control: ControlStore) -> None:
        self.files = files
        self.control = control
        self._down = False

    @property
    def catalog(self) -> Catalog | None:
        return getattr(self.files, "catalog", None)

    def current_version(self) -> str | None:
        try:
            version = self.control.get(MODEL)
        except (redis.RedisError, OSError) as exc:
            if not self._down:
                log.warning("promoted model version unreadable in Redis (%s); following the registry's CURRENT file",
                            type(exc).__name__)
            self._down = True
            return self.files.current_version()
        self._down = False
        return version if version else self.files.current_version()

    def promote(self, version: str, catalog: Catalog | None = None, *, forced: bool = False,
                overrode: Sequence[str] = ()) -> None:
        """Promote in the files (``forced`` past the promotion gate's ``overrode`` reasons: recorded
        there), then announce in Redis; ``RegistryError`` if Redis cannot be told."""
        self.files.promote(version, catalog, forced=forced, overrode=overrode)
        try:
            self.control.put(MODEL, version)
        except (redis.RedisError, OSError) as exc:
            raise RegistryError(f"{version} is current in the registry's files, but Redis could not be told "
                                f"({type(exc).__name__}: {exc}); the API replicas following Redis keep their model: "
                                "run nbo promote again") from None

    def save(self, model: NboModel, metadata: Mapping[str, Any] | None = None, version: str | None = None) -> str:
        return self.files.save(model, metadata, version)

    def versions(self) -> list[str]:
        return self.files.versions()

    def metadata(self, version: str) -> dict[str, Any]:
        return self.files.metadata(version)

    def load(self, version: str | None = None, catalog: Catalog | None = None) -> NboModel:
        return self.files.load(version or self.current_version(), catalog)


def parse_policy_text(text: str, where: str) -> Policy:
    """A policy from levers JSON text, with the messages of ``decisioning.load_policy``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    try:
        return policy_from_dict(data)
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None


class ControlledPolicy:
    """The ``PolicySource`` over the ``ControlStore``: the policy pushed there (``nbo levers push``)
    once there is one, else ``files`` (the levers file, watched as without Redis). A pushed policy
    that fails validation (written around the command) is refused with the reason in the log, and
    the policy in force keeps serving; Redis unreachable keeps it too."""

    def __init__(self, control: ControlStore, files: WatchedFile[Policy]) -> None:
        self.control = control
        self.files = files
        self.current: Policy = files.current
        self.refusal: str | None = None
        self._text: str | None = None
        self._down = False
        self._lock = threading.Lock()  # the poll and the notification may both call refresh

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    @property
    def failed_stamp(self) -> str | None:
        """What was refused (``PolicyHolder``'s name): the refusal, or None."""
        return self.refusal

    @property
    def where(self) -> str:
        return f"the policy pushed to Redis ({keys.control_key(getattr(self.control, 'prefix', '?'), POLICY)})"

    def refresh(self) -> bool:
        """Load the pushed policy if it changed (else follow the file); True if swapped."""
        with self._lock:
            try:
                text = self.control.get(POLICY)
            except (redis.RedisError, OSError) as exc:
                if not self._down:
                    log.warning("marketing policy unreadable in Redis (%s); the policy in force keeps serving",
                                type(exc).__name__)
                self._down = True
                return False
            self._down = False
            if text is None:
                if self._text is not None:  # the pushed policy was deleted: back to the file
                    self._text = None
                    self.current = self.files.current
                    return True
                swapped = self.files.refresh()
                if swapped or self.current is not self.files.current:
                    self.current = self.files.current
                    return True
                return False
            if text == self._text:
                return False
            try:
                policy = parse_policy_text(text, self.where)
            except PolicyError as exc:
                if self.refusal != str(exc):
                    log.error("keeping the policy in force: %s", exc)
                self.refusal = str(exc)
                return False
            self._text, self.refusal, self.current = text, None, policy
            log.warning("marketing policy reloaded from Redis")
            return True
