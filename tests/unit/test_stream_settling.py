"""The faust engine's held acks (``streams.faust_engine.Settling``), on faust's own message type."""

from __future__ import annotations

from faust.types import TP
from faust.types.tuples import Message

from streams.faust_engine import Settling


class Event:
    """What ``Settling`` uses of a faust event: its message, and ``ack`` dropping one reference."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.message = Message(topic, partition, offset, timestamp=0.0, timestamp_type=0, headers=[],
                               key=None, value=b"", checksum=None, tp=TP(topic, partition))
        self.message.incref()  # the stream's reference, as faust takes it on delivery
        self.acked_to_consumer = False

    def ack(self) -> None:
        if not self.message.decref():
            self.acked_to_consumer = True


def test_events_are_acked_only_once_their_writes_are_old_enough():
    settling = Settling(lag_s=3.0)
    first = [Event("deposits", 0, 1), Event("deposits", 0, 2)]
    settling.hold(first, now=10.0)
    for event in first:  # take_events acks the batch right after it was handled
        event.ack()
    assert not any(e.acked_to_consumer for e in first)
    second = [Event("deposits", 0, 3)]
    settling.hold(second, now=12.0)
    assert settling.release(now=12.9) == 0
    assert settling.release(now=13.0) == 2 and all(e.acked_to_consumer for e in first)
    second[0].ack()
    assert not second[0].acked_to_consumer and len(settling) == 1


def test_a_revoked_partition_is_forgotten_unacked():
    settling = Settling(lag_s=3.0)
    kept, revoked = Event("deposits", 0, 1), Event("deposits", 1, 1)
    settling.hold([kept, revoked], now=0.0)
    settling.forget({TP("deposits", 1)})
    assert len(settling) == 1
    settling.release(now=5.0)
    kept.ack()
    revoked.ack()
    assert kept.message.refcount == 0 and revoked.message.refcount == 1


def test_a_batch_taken_before_it_is_applied_is_not_released_by_fausts_ack():
    """The engine takes a reference when the batch arrives and starts the lag only once the batch
    was applied (the next batch is taken meanwhile)."""
    settling = Settling(lag_s=3.0)
    batch = [Event("deposits", 0, 1), Event("deposits", 0, 2)]
    settling.take(batch)
    for event in batch:  # take_events acks as soon as the agent asks for the next batch
        event.ack()
    assert not any(e.acked_to_consumer for e in batch) and len(settling) == 0
    assert settling.release(now=100.0) == 0  # not applied yet: nothing to release, whatever the time
    settling.settled_at(batch, now=100.0)
    assert settling.release(now=102.0) == 0
    assert settling.release(now=103.0) == 2 and all(e.acked_to_consumer for e in batch)
