"""Every Redis client the project opens is built here: one server or a Redis Cluster, sync and
asyncio.

``connect(url, mode)`` returns a ``redis.Redis`` for ``single`` and a
``redis.cluster.RedisCluster`` for ``cluster`` (started from the node in the URL: it discovers
the others). ``auto`` asks the server once (``INFO cluster``: ``cluster_enabled:1``) and keeps
the single-server client, connection included, when it is not a cluster node, so the single
server costs one round trip at start and nothing after. ``connect_async`` is the asyncio twin.

On a cluster the client follows ``MOVED`` and ``ASK`` and retries ``TRYAGAIN``, ``CLUSTERDOWN``
and lost connections itself (refreshing the slot map). What outlives those retries is raised as
``ClusterUnavailable``, a ``redis.ConnectionError``: the callers' bounded retries and their
"Redis unavailable" exit treat a cluster that cannot serve a slot like a server that is down.
The synchronous cluster client retries a lost connection, a timeout or ``CLUSTERDOWN``
``CLUSTER_CLIENT_RETRIES`` time(s), not redis-py's default 10: a cluster pipeline sends each
command that failed so again on its own, with those retries, so a node that stops answering
held one batch for (commands x 11 x the socket timeout) before the caller heard of it (10
customers at a 1 s timeout: 59 s, measured), where the callers' own retries log each attempt.

``readiness_problems`` says what keeps a client from serving every key now: on a single server
an error if it does not answer ``PING``, on a cluster ``cluster_problems``; empty when ready.

``security`` (a ``RedisSecurity``: ACL user and password, TLS files for a ``rediss://`` URL) goes
to every client built here, single or cluster, sync or asyncio, and to the pub/sub connection of
``connect_pubsub_async``. Credentials written in the URL itself win over it.

``cluster_problems`` / ``cluster_problems_async`` is the health of a cluster: every node the
client knows must answer ``CLUSTER INFO`` with ``cluster_state:ok`` and all 16384 slots
assigned; the list says which node says what otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Union

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    RedisClusterException,
    TryAgainError,
)
from redis.retry import Retry

Mode = Literal["auto", "single", "cluster"]
SyncClient = Union[redis.Redis, RedisCluster]
AsyncClient = Union[aredis.Redis, AsyncRedisCluster]

SLOTS = 16384
CLUSTER_SOCKET_TIMEOUT_S = 1.0
#: The synchronous cluster client's own retries of a lost connection, a timeout or CLUSTERDOWN
#: (one: a connection a restarted node dropped is refreshed at once; the rest is the callers').
CLUSTER_CLIENT_RETRIES = 1
#: Errors of a cluster that cannot serve a slot right now (MovedError is an AskError).
CLUSTER_ERRORS: tuple[type[BaseException], ...] = (ClusterDownError, ClusterError, TryAgainError, AskError,
                                                   RedisClusterException)


@dataclass(frozen=True)
class RedisSecurity:
    """How a client proves who it is and checks the server: an ACL user and password (or the
    ``requirepass`` password alone), and for a ``rediss://`` URL the CA bundle, the client
    certificate and key, and whether the certificate must name the host."""

    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True

    def options(self, url: str) -> dict[str, Any]:
        """The redis-py keyword arguments (the same for ``Redis``, ``RedisCluster`` and their
        asyncio twins); the TLS ones only for a ``rediss://`` URL (redis-py refuses them else)."""
        out: dict[str, Any] = {}
        if self.username:
            out["username"] = self.username
        if self.password is not None:
            out["password"] = self.password
        if url.startswith("rediss://"):
            out["ssl_check_hostname"] = self.check_hostname
            for name, value in (("ssl_ca_certs", self.ca_file), ("ssl_certfile", self.cert_file),
                                ("ssl_keyfile", self.key_file)):
                if value is not None:
                    out[name] = value
        return out

    def __repr__(self) -> str:  # never the password
        return (f"RedisSecurity(username={self.username!r}, password={'***' if self.password else None}, "
                f"ca_file={self.ca_file!r}, cert_file={self.cert_file!r}, key_file={self.key_file!r})")


NO_SECURITY = RedisSecurity()


class ClusterUnavailable(redis.ConnectionError):
    """A cluster error that outlived the client's own redirections and retries."""


@contextlib.contextmanager
def cluster_errors_as_unavailable() -> Iterator[None]:
    """Raise the cluster's errors as ``ClusterUnavailable`` (transient for the callers)."""
    try:
        yield
    except CLUSTER_ERRORS as exc:
        raise ClusterUnavailable(f"Redis Cluster: {type(exc).__name__}: {exc}") from exc


def cluster_enabled(info: dict[str, Any]) -> bool:
    """Whether an ``INFO cluster`` reply comes from a cluster node."""
    return str(info.get("cluster_enabled", "0")) == "1"


def connect(url: str, mode: Mode = "auto", *, socket_timeout_s: float = 5.0,
            connect_timeout_s: float | None = None, security: RedisSecurity = NO_SECURITY) -> SyncClient:
    """A client for the server or cluster at ``url``. ``auto`` raises ``redis.ConnectionError``
    when the server does not answer (it cannot tell what it is), ``redis.AuthenticationError``
    when it refuses the credentials."""
    options: dict[str, Any] = {"socket_timeout": socket_timeout_s, **security.options(url)}
    if connect_timeout_s is not None:
        options["socket_connect_timeout"] = connect_timeout_s
    if mode == "auto":
        single = redis.Redis.from_url(url, **options)
        try:
            if not cluster_enabled(single.info("cluster")):
                return single
        except BaseException:
            single.close()
            raise
        single.close()
        mode = "cluster"
    if mode == "single":
        return redis.Redis.from_url(url, **options)
    with cluster_errors_as_unavailable():
        return RedisCluster.from_url(_cluster_url(url), require_full_coverage=False,
                                     retry=Retry(NoBackoff(), CLUSTER_CLIENT_RETRIES), **options)


async def connect_async(url: str, mode: Mode = "auto", *, socket_timeout_s: float = 1.0,
                        connect_timeout_s: float | None = None, security: RedisSecurity = NO_SECURITY) -> AsyncClient:
    """The asyncio twin of ``connect``; a cluster client comes back initialised (slot map and
    command table read). Its sockets wait at least ``CLUSTER_SOCKET_TIMEOUT_S``: those first
    replies take longer than one request's budget, which the callers bound themselves."""
    options: dict[str, Any] = {"socket_timeout": socket_timeout_s, **security.options(url)}
    if connect_timeout_s is not None:
        options["socket_connect_timeout"] = connect_timeout_s
    if mode == "auto":
        single = aredis.Redis.from_url(url, **options)
        try:
            if not cluster_enabled(await single.info("cluster")):
                return single
        except BaseException:
            await single.aclose()
            raise
        await single.aclose()
        mode = "cluster"
    if mode == "single":
        return aredis.Redis.from_url(url, **options)
    options["socket_timeout"] = max(socket_timeout_s, CLUSTER_SOCKET_TIMEOUT_S)
    client = AsyncRedisCluster.from_url(_cluster_url(url), require_full_coverage=False, **options)
    try:
        with cluster_errors_as_unavailable():
            await client.initialize()
    except BaseException:
        await client.aclose()
        raise
    return client


class LazyAsyncClient:
    """An asyncio client opened on first use, so that building the API connects nothing and a
    Redis down at start is an error of the first requests, not of the start.

    ``client`` is the open client or None; ``open()`` opens it once, in a task of its own that a
    caller's time budget does not cancel (reading a cluster's slot map may take longer than one
    request's budget; the next request then finds it open). A failed open is tried again by the
    next caller."""

    def __init__(self, url: str, mode: Mode, *, socket_timeout_s: float, connect_timeout_s: float | None,
                 security: RedisSecurity = NO_SECURITY) -> None:
        self.url = url
        self.mode = mode
        self.security = security
        self.socket_timeout_s = socket_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.client: AsyncClient | None = None
        self._opening: asyncio.Task[AsyncClient] | None = None

    async def open(self) -> AsyncClient:
        if self.client is not None:
            return self.client
        if self._opening is None:
            self._opening = asyncio.ensure_future(connect_async(
                self.url, self.mode, socket_timeout_s=self.socket_timeout_s, connect_timeout_s=self.connect_timeout_s,
                security=self.security))
        opening = self._opening
        try:
            self.client = await asyncio.shield(opening)
        except BaseException:
            if opening.done() and self._opening is opening:
                self._opening = None  # failed: the next caller tries again
                if not opening.cancelled():
                    opening.exception()  # retrieved here, raised to the caller
            raise
        return self.client

    @property
    def cluster(self) -> bool:
        return isinstance(self.client, AsyncRedisCluster)

    async def aclose(self) -> None:
        opening, self._opening = self._opening, None
        if opening is not None and not opening.done():
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
        client, self.client = self.client, None
        if client is None and opening is not None and not opening.cancelled() and opening.exception() is None:
            client = opening.result()
        if client is not None:
            await client.aclose()


def connect_pubsub_async(url: str, security: RedisSecurity = NO_SECURITY, *,
                         connect_timeout_s: float = 2.0) -> aredis.Redis:
    """A plain asyncio client to the node at ``url``, for ``SUBSCRIBE``: on a Redis Cluster too,
    where a message published on any node reaches the subscribers of every node. Its reads do
    not time out (a subscriber waits for messages); the caller checks it with ``PING``."""
    return aredis.Redis.from_url(url, socket_timeout=None,
                                 socket_connect_timeout=connect_timeout_s, **security.options(url))


def _cluster_url(url: str) -> str:
    """A cluster has only database 0; ``redis://host:port/0`` names the same thing."""
    head, _, db = url.rpartition("/")
    return head if db == "0" and head.count("/") == 2 else url


def is_cluster(client: object) -> bool:
    return isinstance(client, (RedisCluster, AsyncRedisCluster))


def _problems(node_name: str, info: Any) -> list[str]:
    if isinstance(info, (bytes, str)):
        text = info.decode() if isinstance(info, bytes) else info
        info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    state = str(info.get("cluster_state", "?"))
    assigned = int(info.get("cluster_slots_assigned", 0))
    out = []
    if state != "ok":
        out.append(f"{node_name}: cluster_state:{state}")
    if assigned != SLOTS:
        out.append(f"{node_name}: {SLOTS - assigned} slots not assigned")
    return out


def cluster_problems(client: RedisCluster, timeout_s: float = 2.0) -> list[str]:
    """Empty when every node the client knows says ``cluster_state:ok`` with every slot assigned."""
    out: list[str] = []
    for node in client.get_nodes():
        try:
            node_client = client.get_redis_connection(node)
            out += _problems(node.name, node_client.execute_command("CLUSTER INFO"))
        except (redis.RedisError, OSError) as exc:
            out.append(f"{node.name}: {type(exc).__name__}: {exc}")
    if out:
        _refresh(client)
    return out


def readiness_problems(client: SyncClient) -> list[str]:
    """What keeps ``client`` from serving every key now (empty when nothing): a single server
    that does not answer ``PING``; on a cluster, ``cluster_problems`` (a node down or saying
    ``cluster_state:fail``, a slot without a node), each prefixed with ``Redis Cluster``."""
    if is_cluster(client):
        try:
            with cluster_errors_as_unavailable():
                return [f"Redis Cluster {problem}" for problem in cluster_problems(client)]  # type: ignore[arg-type]
        except redis.RedisError as exc:
            return [f"Redis Cluster: {type(exc).__name__}: {exc}"]
    try:
        return [] if client.ping() else ["Redis: no PONG"]
    except (redis.RedisError, OSError) as exc:
        return [f"Redis: {type(exc).__name__}: {exc}"]


async def cluster_problems_async(client: AsyncRedisCluster) -> list[str]:
    """The asyncio twin of ``cluster_problems``, asking every node at once."""
    nodes = client.get_nodes()

    async def ask(node: Any) -> list[str]:
        try:
            return _problems(node.name, await client.execute_command("CLUSTER INFO", target_nodes=node))
        except (redis.RedisError, OSError) as exc:
            return [f"{node.name}: {type(exc).__name__}: {exc}"]

    out = [p for each in await asyncio.gather(*(ask(n) for n in nodes)) for p in each]
    if out:
        with contextlib.suppress(redis.RedisError, RedisClusterException, OSError):
            await client.nodes_manager.initialize()  # a failover moved slots: ask again with the new map
    return out


def _refresh(client: RedisCluster) -> None:
    with contextlib.suppress(redis.RedisError, RedisClusterException, OSError):
        client.nodes_manager.initialize()


def scan_keys(client: SyncClient, match: str, count: int = 1000) -> Iterator[bytes]:
    """Every key matching ``match``: on a cluster, over every primary."""
    if not isinstance(client, RedisCluster):
        yield from client.scan_iter(match=match, count=count)
        return
    with cluster_errors_as_unavailable():
        primaries = client.get_primaries()
    for node in primaries:
        yield from client.get_redis_connection(node).scan_iter(match=match, count=count)
