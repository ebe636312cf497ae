"""The faust engine's wiring without a broker: the app consumes through the registered
``nbo-kafka://`` transport, whose group member gets the fetch wait from the settings."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from bootstrap.settings import load_settings
from schemas.topics import INPUT_TOPICS
from streams import faust_transport
from streams.faust_engine import create_app


def test_the_app_consumes_through_the_nbo_transport_with_the_configured_fetch_wait(tmp_path: Path):
    settings = load_settings(data_dir=tmp_path, kafka={"bootstrap": "127.0.0.1:1,127.0.0.2:2"},
                             redis={"url": "redis://127.0.0.1:1/0"}, stream={"fetch_wait_ms": 7})

    async def build():
        app = create_app(settings)
        assert isinstance(app.transport, faust_transport.Transport)
        consumer = app.consumer
        assert isinstance(consumer, faust_transport.Consumer)
        thread = consumer._new_consumer_thread()
        assert isinstance(thread, faust_transport.ConsumerThread)
        member = thread._create_worker_consumer(app.transport)
        await member.stop()  # never started: nothing was connected
        return app, member

    app, member = asyncio.run(build())
    assert member._fetch_max_wait_ms == 7  # aiokafka keeps it here until the consumer starts
    assert member._client._bootstrap_servers == ["127.0.0.1:1", "127.0.0.2:2"]
    assert member._group_id == settings.stream.group_id
    assert [str(u) for u in app.conf.broker_producer] == ["kafka://127.0.0.1:1", "kafka://127.0.0.2:2"]
    assert set(app.agents) == {"apply_events"}


def test_the_transport_is_found_by_its_url_scheme():
    faust_transport.register()
    assert faust.transport.by_url("nbo-kafka://localhost:9092") is faust_transport.Transport
    assert faust_transport.broker_urls("a:1, b:2", fetch_max_wait_ms=5) == (
        "nbo-kafka://a:1?fetch_max_wait_ms=5;nbo-kafka://b:2?fetch_max_wait_ms=5")


def test_the_faust_consumer_paces_its_fetch_wait_like_the_direct_engine(tmp_path: Path):
    """Short waits while records flow, the idle wait after a quiet spell (the settings reach the
    transport through the broker URL)."""
    settings = load_settings(data_dir=tmp_path, kafka={"bootstrap": "127.0.0.1:1"}, redis={"url": "redis://127.0.0.1:1/0"},
                             stream={"fetch_wait_ms": 7, "idle_fetch_wait_ms": 450, "idle_after_ms": 1000})

    async def pacing():
        return create_app(settings).consumer._pacing()

    pacing = asyncio.run(pacing())
    assert pacing is not None
    assert pacing.polled(10, now=100.0) == 7
    assert pacing.polled(0, now=100.5) == 7
    assert pacing.polled(0, now=101.2) == 450
    assert pacing.polled(1, now=101.3) == 7


class GroupMember:
    """The aiokafka member in faust's consumer thread, as the delivery loop reaches it through
    ``Consumer._getmany`` and ``seek_to_committed_or_reset``: one partition's records, a fetch
    position (from the committed offset, else the partition's first record, as aiokafka's
    ``earliest`` reset), aiokafka's seeks, and fetches that, once begun, run to their end even
    when the caller stops waiting (mode's thread method queue only skips a call whose caller gave
    up before it began), taking the records they return past the position."""

    def __init__(self, tp: Any, offsets: range, committed: int | None, per_fetch: int) -> None:
        self.tp, self.offsets, self.committed, self.per_fetch = tp, offsets, committed, per_fetch
        self.position = committed if committed is not None else offsets.start
        self.data = asyncio.Event()  # set: the broker has the records
        self.fetching = 0  # fetches begun and not yet returned

    async def getmany(self, active_partitions: Any, timeout: float) -> Any:
        return await asyncio.shield(asyncio.ensure_future(self._fetch()))

    async def _fetch(self) -> Any:
        self.fetching += 1
        try:
            await self.data.wait()
            taken = [o for o in self.offsets if o >= self.position][: self.per_fetch]
            if not taken:
                await asyncio.Event().wait()  # a long poll on a quiet partition
            self.position = taken[-1] + 1
            return {self.tp: [ConsumerRecord(self.tp.topic, self.tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, [])
                              for o in taken]}
        finally:
            self.fetching -= 1

    async def seek_to_committed(self) -> dict:  # as aiokafka: no seek without a committed offset
        if self.committed:
            self.position = self.committed
        return {self.tp: self.committed}

    async def seek_to_beginning(self, *tps: Any) -> None:
        assert tps == (self.tp,)
        self.position = self.offsets.start


async def turns(n: int = 50) -> None:
    """Let every task that is ready run ``n`` times (scheduling in one event loop, no clock)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def until(condition: Any, deadline_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + deadline_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("committed, offsets", [(10, range(10, 20)), (None, range(0, 10))],
                         ids=["committed", "no-commit-yet"])
def test_a_rebalance_during_a_fetch_loses_no_record_and_commits_no_offset_past_an_undelivered_one(
        tmp_path: Path, committed: int | None, offsets: range):
    """A rebalance (faust's ``stop_flow``) while a fetch waits on the broker: faust seeks the
    partitions back to their committed offsets before it resumes the flow, and the fetch that was
    waiting returns afterwards. The records it returns must reach the stream, or be fetched again;
    and the offset faust would commit after the stream acked what it got must not pass a record
    the stream never got (faust records a jump in offsets as a gap, and counts a gap as acked).
    Also for a partition that has no committed offset yet (a dead worker's newest partitions)."""
    settings = load_settings(data_dir=tmp_path, kafka={"bootstrap": "127.0.0.1:1"}, redis={"url": "redis://127.0.0.1:1/0"})

    async def run() -> tuple[list[int], int | None]:
        app = create_app(settings)
        consumer = app.consumer
        tp = TP(INPUT_TOPICS[0], 0)
        member = GroupMember(tp, offsets, committed=committed, per_fetch=5)
        consumer._getmany = member.getmany
        consumer.seek_to_committed = lambda: faust_transport.seek_to_committed_or_reset(member, "earliest")
        consumer.highwater = lambda tp: offsets.stop
        consumer._active_partitions = {tp}
        consumer._committed_offset[tp] = committed
        consumer._read_offset[tp] = committed
        app.topics.acks_enabled_for = lambda topic: True
        delivered: list[int] = []

        async def stream(message: Any) -> None:  # the stream takes and acks the record
            delivered.append(message.offset)
            consumer.ack(message)

        consumer.callback = stream
        consumer.resume_flow()
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        drain = asyncio.ensure_future(consumer._drain_messages(fetcher))
        try:
            await until(lambda: member.fetching == 1)
            consumer.stop_flow()  # a rebalance begins: partitions revoked
            await turns()
            await consumer.perform_seek()  # reassigned: faust seeks to the committed offsets
            member.data.set()  # the waiting fetch returns
            await turns()
            consumer.resume_flow()
            await until(lambda: offsets[-1] in delivered)
            await turns()
        finally:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        return delivered, consumer._new_offset(tp)

    delivered, commit = asyncio.run(run())
    assert sorted(set(delivered)) == list(offsets), f"records the stream never got: {sorted(set(offsets) - set(delivered))}"
    assert commit == offsets.stop
