"""The faust engine's wiring without a broker: the app consumes through the registered
``nbo-kafka://`` transport, whose group member gets the fetch wait from the settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from bootstrap.settings import load_settings
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
