"""The faust engine's consumer transport: faust's own aiokafka transport, with the broker fetch
wait taken from the broker URL instead of faust's fixed 1.5 s (which bounds freshness: a fetch
for a quiet partition holds the consumer that long).

faust picks a transport by the URL scheme of ``broker_consumer`` from its transport registry
(``faust.transport.drivers.TRANSPORTS``, the same mapping its ``faust.transports`` entry points
feed); ``register`` adds ``nbo-kafka://`` there. Subclassing follows faust's own driver
structure: ``Transport.Consumer`` is the consumer class, ``Consumer._new_consumer_thread`` makes
the thread that owns the aiokafka consumer, and ``_create_worker_consumer`` builds that consumer.

URL: ``nbo-kafka://host:port[;nbo-kafka://host:port]?fetch_max_wait_ms=5&fetch_max_bytes=...``
(the query of any of the URLs; unset values keep aiokafka's defaults and faust's 1.5 s wait).
With ``idle_fetch_wait_ms`` and ``idle_after_ms`` in the query the fetch wait follows
``streams.core.FetchPacing``, as in the direct engine: ``fetch_max_wait_ms`` while records flow,
the idle wait after a quiet spell, so an idle worker and broker do not spin.
"""

from __future__ import annotations

import asyncio
from typing import Any

import time

import aiokafka
import faust
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from faust.exceptions import ImproperlyConfigured
from faust.transport.drivers import TRANSPORTS
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver

from streams.core import FetchPacing

SCHEME = "nbo-kafka"
DEFAULT_FETCH_WAIT_MS = 1500  # what faust's own transport uses
CHUNKED_DRAIN = faust.__version__.startswith("0.15.")  # see Consumer


def register() -> None:
    """Make ``nbo-kafka://`` resolve to ``Transport`` (idempotent)."""
    TRANSPORTS[SCHEME] = f"{__name__}:Transport"


def broker_urls(bootstrap: str, **query: int) -> str:
    """faust's broker list (``;``-separated) for a Kafka bootstrap list (``,``-separated)."""
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return ";".join(f"{SCHEME}://{b.strip()}" + (f"?{params}" if params else "") for b in bootstrap.split(","))


def _query_int(transport: Any, name: str) -> int | None:
    for url in transport.url:
        if name in url.query:
            return int(url.query[name])
    return None


async def seek_to_committed_or_reset(member: Any, auto_offset_reset: str) -> dict[Any, int | None]:
    """Seek every assigned partition of the aiokafka ``member`` to its committed offset, and with
    ``auto_offset_reset`` ``earliest`` (the engine's) a partition without one back to its first
    record; the committed offsets. (With ``latest`` there is no position to go back to.)

    faust seeks to the committed offsets after every rebalance, before it resumes the flow, so
    records fetched and then dropped around the rebalance are fetched again. aiokafka's
    ``seek_to_committed`` leaves a partition without a committed offset (or at offset 0) where
    it is; after a dropped fetch that is past the dropped records, and faust has no read
    offset there to notice the jump: they were never delivered, and the next commit passes
    them. Such partitions are common after a worker dies (its newest partitions had no commit
    yet)."""
    committed = await member.seek_to_committed()
    uncommitted = [tp for tp, offset in committed.items() if not offset]
    if uncommitted and auto_offset_reset == "earliest":
        await member.seek_to_beginning(*uncommitted)
    return committed


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Builds the group member as faust's does for an app without tables or transactions (the
    stream engine has neither), plus the fetch settings from the URL; its seek to the committed
    offsets also resets partitions that have none (``seek_to_committed_or_reset``)."""

    async def seek_to_committed(self) -> Any:
        return await self.call_thread(seek_to_committed_or_reset, self._ensure_consumer(),
                                      self.app.conf.consumer_auto_offset_reset)

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        conf = self.app.conf
        if self.app.tables.changelog_topics or self.consumer.in_transaction:
            raise ImproperlyConfigured("the nbo-kafka transport serves apps without tables or transactions")
        if conf.broker_session_timeout > conf.broker_request_timeout:
            raise ImproperlyConfigured("broker_session_timeout cannot be greater than broker_request_timeout")
        self._assignor = RoundRobinPartitionAssignor
        fetch: dict[str, int] = {}
        for name in ("fetch_max_bytes", "fetch_min_bytes"):
            value = _query_int(transport, name)
            if value is not None:
                fetch[name] = value
        wait_ms = _query_int(transport, "fetch_max_wait_ms")
        return aiokafka.AIOKafkaConsumer(
            client_id=conf.broker_client_id,
            group_id=conf.id,
            group_instance_id=conf.consumer_group_instance_id,
            bootstrap_servers=driver.server_list(transport.url, transport.default_port),
            partition_assignment_strategy=[self._assignor],
            enable_auto_commit=False,
            auto_offset_reset=conf.consumer_auto_offset_reset,
            max_poll_records=conf.broker_max_poll_records,
            max_poll_interval_ms=int((conf.broker_max_poll_interval or 0) * 1000.0),
            max_partition_fetch_bytes=conf.consumer_max_fetch_size,
            fetch_max_wait_ms=wait_ms if wait_ms is not None else DEFAULT_FETCH_WAIT_MS,
            request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
            check_crcs=conf.broker_check_crcs,
            session_timeout_ms=int(conf.broker_session_timeout * 1000.0),
            rebalance_timeout_ms=int(conf.broker_rebalance_timeout * 1000.0),
            heartbeat_interval_ms=int(conf.broker_heartbeat_interval * 1000.0),
            isolation_level="read_uncommitted",
            metadata_max_age_ms=conf.consumer_metadata_max_age_ms,
            connections_max_idle_ms=conf.consumer_connections_max_idle_ms,
            **fetch,
            **driver.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
        )


class Consumer(driver.Consumer):
    """faust's aiokafka consumer, with the thread above and a cheaper delivery loop.

    faust's ``Consumer._drain_messages`` waits on every single message with ``wait_first``
    (the delivery, the flow-suspension event, stop, crash: four tasks and an ``asyncio.wait``
    per message), which costs more than everything else faust does per event. This one does the
    same per message (skip what was already read, record gaps, deliver, advance the read
    offset) but waits once per fetched chunk: the chunk's delivery is one task, abandoned when
    the flow is suspended (a rebalance), as faust abandons a single blocked delivery; the
    records not delivered are fetched again from the committed offsets after the rebalance
    (faust seeks every assigned partition there before it resumes the flow).

    The fetch itself is awaited outside that task, never abandoned. It runs in faust's consumer
    thread, which finishes a fetch it has begun even when the caller stopped waiting, moving the
    member's position past the records it returns. Abandoned while it waited on the broker, it
    would return after the rebalance's seek, its records dropped: the next fetch starts past
    them, faust takes the jump in offsets for a gap (as left by compaction or transaction
    markers), counts gaps as acknowledged, and commits past records never delivered. Awaited, it
    hands its records to faust's ``getmany``, which drops them and seeks back to the committed
    offsets itself when the flow was stopped meanwhile.

    Commits are left to faust's commit timer (``broker_commit_interval``), not counted here.
    Written against faust-streaming 0.15; on another version faust's own loop runs."""

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        if not CHUNKED_DRAIN:
            return await super()._drain_messages(fetcher)
        callback = self.callback
        pacing = self._pacing()
        delivered = [0]
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offsets = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag

        async def deliver(first: Any, fetched: Any) -> None:
            since_yield = 0
            tp, message = first
            next_record = fetched.__anext__
            while True:
                since_yield += 1
                if since_yield > 100:  # as faust: let other tasks run within a large chunk
                    await asyncio.sleep(0)
                    since_yield = 0
                offset = message.offset
                r_offset = read_offsets[tp]
                if r_offset is None or offset >= r_offset:
                    if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    await callback(message)
                    read_offsets[tp] = offset
                    delivered[0] += 1
                try:  # the rest of the chunk: no broker wait left in faust's getmany
                    tp, message = await next_record()
                except StopAsyncIteration:
                    return

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if not self.should_stop:
                    fetched = self.getmany(timeout=1.0)
                    first = await anext(fetched, None)  # the fetch: never abandoned (see above)
                    if first is not None:
                        await self.wait_first(deliver(first, fetched), self.suspend_flow.wait())
                if pacing is not None:
                    self._set_fetch_wait(pacing.polled(delivered[0], time.monotonic()))
                    delivered[0] = 0
                unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


    def _pacing(self) -> FetchPacing | None:
        busy, idle = _query_int(self.transport, "fetch_max_wait_ms"), _query_int(self.transport, "idle_fetch_wait_ms")
        after = _query_int(self.transport, "idle_after_ms")
        if busy is None or idle is None or after is None:
            return None
        return FetchPacing(busy, idle, after / 1000)

    def _set_fetch_wait(self, wait_ms: int) -> None:
        """The broker wait of the aiokafka member's next fetches (read per request; no public
        setter, as in the direct engine)."""
        consumer = getattr(self._thread, "_consumer", None)
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None and getattr(fetcher, "_fetch_max_wait_ms", wait_ms) != wait_ms:
            fetcher._fetch_max_wait_ms = wait_ms


class Transport(driver.Transport):
    Consumer = Consumer
