"""Session fixtures: a real Kafka-protocol broker (Tansu) and a real Redis-protocol server
(Valkey) on free loopback ports, topics created. Tests isolate themselves by customer id and
Redis key prefix, never by mocking."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from services.runtime import Servers, running_servers
from services.settings import load_settings


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Embedded broker and Redis for the whole test session (or external ones when
    NBO_KAFKA__BOOTSTRAP / NBO_REDIS__URL are set)."""
    data_dir = tmp_path_factory.mktemp("nbo-data")
    settings = load_settings(data_dir=data_dir)
    with running_servers(settings) as running:
        yield running


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test uses."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def unique_customer_id() -> str:
    return "C" + uuid.uuid4().hex[:12].upper()


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
