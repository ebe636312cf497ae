"""Each port's contract runs against its in-memory fake and its real adapter.

The fixtures here are parametrised: ``memory`` is the fake of ``adapters.fakes``; the other ids
are the real adapters on the session's real Valkey and Tansu broker (``servers``), marked
``integration``, isolated by key prefix and unique customer ids. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from adapters.fakes import MemoryControl, MemoryPolicySource, MemoryRegistry, MemoryStateStore
from adapters.model_registry import ModelRegistry
from adapters.policy_file import PolicyHolder
from adapters.ports import PolicySource, StateReader, StateStore
from adapters.ports import ModelRegistry as ModelRegistryPort
from adapters.redis_store import AsyncRedisStateStore, RedisStateStore
from adapters.shared_control import POLICY, ControlledPolicy, ControlledRegistry, RedisControl
from portkit import CATALOG, closed_port

REAL = pytest.mark.integration


# --- state store and reader ----------------------------------------------------------------------

@dataclass
class StateBackend:
    """A store for writing and a way to open readers of the same data."""

    store: StateStore
    open_reader: Callable[[], StateReader]
    open_store: Callable[..., StateStore]  # another store with other settings (dedupe_ttl_s)


@pytest.fixture(params=["memory", pytest.param("redis", marks=REAL), pytest.param("redis-cached", marks=REAL),
                        pytest.param("redis-cluster", marks=REAL), pytest.param("redis-cluster-cached", marks=REAL)])
def state(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[StateBackend]:
    """``redis-cluster*``: the same adapters on a Redis Cluster of 3 primaries (``cluster_servers``),
    found from one node's URL."""
    if request.param == "memory":
        store = MemoryStateStore()
        yield StateBackend(store, store.reader, lambda **kw: MemoryStateStore(**kw))
        return
    on_cluster = request.param.startswith("redis-cluster")
    url = request.getfixturevalue("cluster_servers" if on_cluster else "servers").redis_url
    cache_size = 100 if request.param.endswith("-cached") else 0
    opened: list[RedisStateStore] = []

    def open_store(**kwargs: Any) -> RedisStateStore:
        opened.append(RedisStateStore(url, key_prefix, cache_size=cache_size, **kwargs))
        return opened[-1]

    store = open_store()
    yield StateBackend(store, lambda: AsyncRedisStateStore(url, key_prefix, timeout_s=0.5), open_store)
    for each in opened:
        each.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=REAL)])
def unreachable_reader(request: pytest.FixtureRequest) -> StateReader:
    """A reader whose store is down: the fake switched off, the real one on a closed port."""
    if request.param == "memory":
        reader = MemoryStateStore().reader()
        reader.fail_reads = True
        return reader
    return AsyncRedisStateStore(f"redis://127.0.0.1:{closed_port()}/0", "nbo", timeout_s=0.5)


# --- publisher -----------------------------------------------------------------------------------

@pytest.fixture(params=["memory", pytest.param("kafka", marks=REAL)])
def publisher_kind(request: pytest.FixtureRequest) -> str:
    return request.param


# --- model registry ------------------------------------------------------------------------------

@pytest.fixture(params=["memory", "files", "controlled", pytest.param("controlled-redis", marks=REAL)])
def registry(request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str) -> Iterator[ModelRegistryPort]:
    """An empty registry that checks models against the packaged catalog. ``controlled*``: the
    file registry whose current version is a ``ControlStore``'s (``NBO_API__CONTROL_SOURCE=redis``)."""
    if request.param == "memory":
        yield MemoryRegistry(CATALOG)
        return
    files = ModelRegistry(tmp_path / "registry", CATALOG)
    if request.param == "files":
        yield files
        return
    if request.param == "controlled":
        yield ControlledRegistry(files, MemoryControl(key_prefix))
        return
    control = RedisControl(request.getfixturevalue("servers").redis_url, key_prefix)
    yield ControlledRegistry(files, control)
    control.close()


# --- policy source -------------------------------------------------------------------------------

@dataclass
class PolicyBackend:
    """``open(mapping)`` builds the source from a first policy; ``change(mapping)`` is marketing
    saving a new one (for the file: a new JSON file with a later modification time)."""

    open: Callable[[Any], PolicySource]
    change: Callable[[PolicySource, Any], None]


@pytest.fixture(params=["memory", "file", "controlled", pytest.param("controlled-redis", marks=REAL)])
def policy_backend(request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str) -> Iterator[PolicyBackend]:
    """``controlled*``: ``ControlledPolicy`` (``NBO_API__CONTROL_SOURCE=redis``): the levers file
    serves first (a bad one stops the start), then marketing's changes are pushed to the store."""
    if request.param == "memory":
        yield PolicyBackend(lambda mapping: MemoryPolicySource(mapping),
                            lambda source, mapping: source.set(mapping))  # type: ignore[attr-defined]
        return
    path = tmp_path / "levers.json"

    def write(mapping: Any) -> None:
        before = path.stat().st_mtime_ns if path.exists() else 0
        path.write_text(json.dumps(mapping), encoding="utf-8")
        # A save always carries a later time than the last one, even within the clock's tick.
        later = max(path.stat().st_mtime_ns, before + 1_000_000)
        os.utime(path, ns=(later, later))

    def open_file(mapping: Any) -> PolicyHolder:
        write(mapping)
        return PolicyHolder(path)

    if request.param == "file":
        yield PolicyBackend(open_file, lambda source, mapping: write(mapping))
        return
    control = (MemoryControl(key_prefix) if request.param == "controlled"
               else RedisControl(request.getfixturevalue("servers").redis_url, key_prefix))
    yield PolicyBackend(lambda mapping: ControlledPolicy(control, open_file(mapping)),
                        lambda source, mapping: control.put(POLICY, json.dumps(mapping)))
    control.close()
