"""Each reliability test gets its own broker and Redis (Valkey with AOF everysec in a tmp dir),
so it may kill and restart them and count every record on every topic as its own."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from schemas.topics import ALL_TOPICS
from services.runtime import Servers, create_topics, start_tansu, start_valkey

PARTITIONS = 4


@pytest.fixture
def own_servers(tmp_path: Path) -> Iterator[Servers]:
    redis_proc, redis_url = start_valkey(tmp_path / "redis")
    try:
        kafka_proc, bootstrap = start_tansu(tmp_path / "logs")
    except BaseException:
        redis_proc.stop()
        raise
    servers = Servers(bootstrap, redis_url, [redis_proc, kafka_proc])
    try:
        create_topics(bootstrap, ALL_TOPICS, PARTITIONS)
        yield servers
    finally:
        servers.stop()
