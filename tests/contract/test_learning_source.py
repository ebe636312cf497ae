"""The LearningSource contract, against ``MemoryLearningSource`` and ``RedisLearningReader`` on a
real Valkey (single server and a 3-primary cluster): the learn hash, written as the stream
writes it (JSON ``[accepts, others, as_of_s]``), is served after a refresh; a field that is not a
valid value is left out and the rest still served; a store that goes down keeps the evidence read
before, and the reader does not raise."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import orjson
import pytest
import redis
from redis.cluster import RedisCluster

from adapters import keys
from adapters.fakes import MemoryLearningSource
from adapters.learning_reader import RedisLearningReader
from adapters.ports import LearningSource
from domain.learning import Evidence
from portkit import closed_port, run
from services.runtime import start_valkey

REAL = pytest.mark.integration


@dataclass
class LearningBackend:
    """``source`` reads what ``write(field, raw value)`` stores (the stream's HSET);
    ``take_down()`` makes the store unreachable (None: this backend cannot)."""

    source: LearningSource
    write: Callable[[str, bytes], None]
    take_down: Callable[[], None] | None = None


def _memory() -> LearningBackend:
    source = MemoryLearningSource()

    def down() -> None:
        source.store_up = False

    return LearningBackend(source, lambda name, raw: source.write(name, raw), down)


def _redis(url: str, prefix: str, cluster: bool = False) -> tuple[RedisLearningReader, Callable[[str, bytes], None]]:
    client = RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
    reader = RedisLearningReader(url, prefix, refresh_s=0.05, timeout_s=0.5)
    return reader, lambda name, raw: client.hset(keys.learn_key(prefix), name, raw)


@pytest.fixture(params=["memory", pytest.param("redis", marks=REAL), pytest.param("redis-cluster", marks=REAL)])
def learning(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[LearningBackend]:
    if request.param == "memory":
        yield _memory()
        return
    on_cluster = request.param == "redis-cluster"
    url = request.getfixturevalue("cluster_servers" if on_cluster else "servers").redis_url
    reader, write = _redis(url, key_prefix, on_cluster)
    yield LearningBackend(reader, write)


@pytest.fixture(params=["memory", pytest.param("redis", marks=REAL)])
def outage(request: pytest.FixtureRequest, key_prefix: str, tmp_path: Path) -> Iterator[LearningBackend]:
    """A backend whose store can be stopped: the real one on a Valkey of its own."""
    if request.param == "memory":
        yield _memory()
        return
    proc, url = start_valkey(tmp_path / "valkey")
    try:
        reader, write = _redis(url, key_prefix)
        yield LearningBackend(reader, write, proc.stop)
    finally:
        proc.stop()


def value(accepts: float, others: float, as_of_s: float, expected: float | None = None) -> bytes:
    """The stored form ``[accepts, others, as_of_s, expected]``; without ``expected`` the older
    ``[accepts, others, as_of_s]``."""
    return orjson.dumps([accepts, others, as_of_s] + ([] if expected is None else [expected]))


def test_the_evidence_written_is_served_after_a_refresh_and_nothing_before(learning):
    now_s = time.time()

    async def scenario() -> tuple[dict, bool, dict]:
        source = learning.source
        try:
            assert await source.refresh()
            before = dict(source.evidence())
            learning.write("fund_sip", value(3, 40.5, now_s, 9.25))
            learning.write("fund_sip|B", value(1, 2, now_s - 60, 0.5))
            learning.write("*", value(4, 42.5, now_s, 9.75))
            learning.write("bond_fund", value(7, 3, now_s - 5))  # written before expected was kept
            unchanged = dict(source.evidence()) == before  # nothing moves between reads
            assert await source.refresh()
            return before, unchanged, dict(source.evidence())
        finally:
            await source.close()

    before, unchanged, after = run(scenario())
    assert before == {} and unchanged
    assert after == {"fund_sip": Evidence(3.0, 40.5, now_s, 9.25), "fund_sip|B": Evidence(1.0, 2.0, now_s - 60, 0.5),
                     "*": Evidence(4.0, 42.5, now_s, 9.75), "bond_fund": Evidence(7.0, 3.0, now_s - 5, None)}
    assert learning.source.read_at_s is not None and abs(learning.source.read_at_s - time.time()) < 30


def test_a_field_that_is_not_a_valid_value_is_left_out_and_the_rest_served(learning):
    now_s = time.time()

    async def scenario() -> dict:
        try:
            learning.write("gold_account", value(2, 8, now_s, 1.5))
            learning.write("fund_sip", b"not json")
            learning.write("bond_fund", orjson.dumps([1, 2]))
            learning.write("wealth_r2", value(-1, 3, now_s))
            learning.write("index_fund", value(1, 3, now_s, -0.5))
            learning.write("mixed_fund", orjson.dumps([1, 3, now_s, 0.5, 9]))
            assert await learning.source.refresh()
            return dict(learning.source.evidence())
        finally:
            await learning.source.close()

    assert run(scenario()) == {"gold_account": Evidence(2.0, 8.0, now_s, 1.5)}


def test_a_store_that_goes_down_keeps_the_evidence_read_before(outage):
    now_s = time.time()

    async def scenario() -> tuple[dict, bool, dict, int]:
        source = outage.source
        try:
            outage.write("fund_sip", value(5, 5, now_s, 2.5))
            assert await source.refresh()
            read = dict(source.evidence())
            assert outage.take_down is not None
            outage.take_down()
            ok = await source.refresh()
            return read, ok, dict(source.evidence()), source.failures
        finally:
            await source.close()

    read, ok, kept, failures = run(scenario())
    assert read == {"fund_sip": Evidence(5.0, 5.0, now_s, 2.5)}
    assert ok is False and kept == read and failures == 1


@REAL
def test_an_unreachable_store_at_start_serves_no_evidence_and_does_not_raise(key_prefix):
    async def scenario() -> tuple[dict, int]:
        reader = RedisLearningReader(f"redis://127.0.0.1:{closed_port()}/0", key_prefix, timeout_s=0.3)
        try:
            await reader.start()  # the API starts anyway
            return dict(reader.evidence()), reader.failures
        finally:
            await reader.close()

    assert run(scenario()) == ({}, 1)


@REAL
def test_the_real_reader_refreshes_on_its_own_timer(servers, key_prefix):
    reader, write = _redis(servers.redis_url, key_prefix)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(reader.start())
        write("fund_sip", value(7, 1, time.time()))
        deadline = time.monotonic() + 5
        while "fund_sip" not in reader.evidence() and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.02))
        assert reader.evidence()["fund_sip"].accepts == 7.0
    finally:
        loop.run_until_complete(reader.close())
        loop.close()
