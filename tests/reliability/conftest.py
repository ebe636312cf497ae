"""Each reliability test gets its own broker and Redis (Valkey with AOF everysec in a tmp dir),
so it may kill and restart them and count every record on every topic as its own.

``redis_kind`` says which Redis: ``single`` (one server, the default) or ``cluster`` (a Redis
Cluster of 3 primaries; the worker is given one node's URL and finds the rest). Tests choose it
with ``@pytest.mark.parametrize("engine, redis_kind", ...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from schemas.topics import ALL_TOPICS
from services.runtime import Servers, create_topics, start_tansu, start_valkey, start_valkey_cluster

PARTITIONS = 4


@pytest.fixture
def redis_kind() -> str:
    return "single"


@pytest.fixture
def own_servers(tmp_path: Path, redis_kind: str) -> Iterator[Servers]:
    if redis_kind == "cluster":
        redis_procs, urls = start_valkey_cluster(tmp_path / "redis")
        redis_url = urls[0]
    else:
        redis_proc, redis_url = start_valkey(tmp_path / "redis")
        redis_procs = [redis_proc]
    try:
        kafka_proc, bootstrap = start_tansu(tmp_path / "logs")
    except BaseException:
        for proc in redis_procs:
            proc.stop()
        raise
    servers = Servers(bootstrap, redis_url, [*redis_procs, kafka_proc])
    try:
        create_topics(bootstrap, ALL_TOPICS, PARTITIONS)
        yield servers
    finally:
        servers.stop()
