"""The StateStore contract (stream side), against ``MemoryStateStore`` and ``RedisStateStore``:
every event is folded in exactly once whatever the log redelivers or the sources repeat, in
the order of the records per customer, and the counters say what happened."""

from __future__ import annotations

import random
import uuid
import zlib
from datetime import datetime, timedelta, timezone

from adapters.ports import SourcedEvent
from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.codec import decode
from schemas.events import DepositPosted, Event
from schemas.topics import DEPOSITS, HOTLINE, TOPIC_FOR_TYPE
from simulator.bank import Simulator
from portkit import CATALOG

P = FeatureParams()
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
NOW_S = T0.timestamp() + 86_400


def customer() -> str:
    return "C" + uuid.uuid4().hex[:12].upper()


def deposit(customer_id: str, minute: int, balance_minor: int = 10_000, event_id: str | None = None) -> DepositPosted:
    return DepositPosted(event_id=event_id or f"ev-{uuid.uuid4().hex}", customer_id=customer_id,
                         occurred_at=T0 + timedelta(minutes=minute), source="core_banking", kind="deposit",
                         amount_minor=1_000, channel="mobile", balance_after_minor=balance_minor)


def oracle(customer_id: str, events: list[Event]) -> CustomerState:
    return apply_all(CustomerState(customer_id), events, P)


def test_a_customer_never_seen_has_no_state(state):
    assert state.store.get(customer()) is None
    assert list(state.store.customer_ids()) == []


def test_a_batch_is_folded_into_each_customers_state(state):
    a, b = customer(), customer()
    events = {a: [deposit(a, i, 10_000 * (i + 1)) for i in range(3)], b: [deposit(b, i) for i in range(2)]}
    records = [SourcedEvent(e, DEPOSITS, 0, i) for i, e in enumerate(events[a] + events[b])]
    result = state.store.apply_batch(records, P, NOW_S)
    assert (result.applied, result.redelivered, result.duplicates) == (5, 0, 0)
    assert state.store.get(a) == oracle(a, events[a])
    assert state.store.get(b) == oracle(b, events[b])
    assert state.store.get(a).balance_minor == 30_000


def test_a_redelivered_batch_changes_nothing(state):
    c = customer()
    events = [deposit(c, i) for i in range(4)]
    records = [SourcedEvent(e, DEPOSITS, 2, 100 + i) for i, e in enumerate(events)]
    state.store.apply_batch(records, P, NOW_S)
    before = state.store.get(c)

    again = state.store.apply_batch(records[1:], P, NOW_S)  # the log hands the same offsets again
    assert (again.applied, again.redelivered, again.duplicates) == (0, 3, 0)
    assert state.store.get(c) == before == oracle(c, events)


def test_a_repeated_event_id_at_a_new_offset_is_a_duplicate_and_its_offset_still_counts(state):
    c = customer()
    first = deposit(c, 0, 10_000)
    state.store.apply_batch([SourcedEvent(first, DEPOSITS, 0, 10)], P, NOW_S)
    copy = SourcedEvent(deposit(c, 5, 99_999, event_id=first.event_id), DEPOSITS, 0, 50)  # upstream resend
    result = state.store.apply_batch([copy], P, NOW_S)
    assert (result.applied, result.duplicates) == (0, 1)
    assert state.store.get(c) == oracle(c, [first])

    # The duplicate moved the partition's offset to 50: a record at 30 is now a redelivery.
    late = state.store.apply_batch([SourcedEvent(deposit(c, 6), DEPOSITS, 0, 30)], P, NOW_S)
    assert (late.applied, late.redelivered) == (0, 1)
    assert state.store.get(c) == oracle(c, [first])


def test_within_one_batch_a_repeated_id_or_offset_is_applied_once(state):
    c = customer()
    one, two = deposit(c, 0, 1_000), deposit(c, 1, 2_000)
    records = [SourcedEvent(one, DEPOSITS, 0, 1), SourcedEvent(one, DEPOSITS, 0, 2),  # same id, next offset
               SourcedEvent(two, DEPOSITS, 0, 2)]  # same offset again
    result = state.store.apply_batch(records, P, NOW_S)
    assert (result.applied, result.duplicates, result.redelivered) == (1, 1, 1)
    assert state.store.get(c) == oracle(c, [one])


def test_offsets_are_kept_per_topic_and_partition(state):
    c = customer()
    events = [deposit(c, i) for i in range(4)]
    records = [SourcedEvent(events[0], DEPOSITS, 0, 500), SourcedEvent(events[1], DEPOSITS, 1, 3),
               SourcedEvent(events[2], HOTLINE, 0, 7), SourcedEvent(events[3], HOTLINE, 1, 0)]
    assert state.store.apply_batch(records, P, NOW_S).applied == 4
    assert state.store.get(c) == oracle(c, events)


def test_per_customer_the_records_keep_their_order(state):
    """Two deposits stamped at the same instant: the later record sets the balance."""
    a, b = customer(), customer()
    records = [SourcedEvent(deposit(a, 0, 111), DEPOSITS, 0, 0), SourcedEvent(deposit(b, 0, 333), DEPOSITS, 1, 0),
               SourcedEvent(deposit(a, 0, 222), DEPOSITS, 0, 1), SourcedEvent(deposit(b, 0, 444), DEPOSITS, 1, 1)]
    state.store.apply_batch(records, P, NOW_S)
    assert (state.store.get(a).balance_minor, state.store.get(b).balance_minor) == (222, 444)
    assert state.store.get(a) == oracle(a, [records[0].event, records[2].event])


def test_counters_say_what_was_applied_and_what_was_dropped(state):
    assert state.store.counters() == {}
    c = customer()
    events = [deposit(c, i) for i in range(3)]
    records = [SourcedEvent(e, DEPOSITS, 0, i) for i, e in enumerate(events)]
    state.store.apply_batch(records, P, NOW_S)
    state.store.apply_batch(records[:2] + [SourcedEvent(events[2], DEPOSITS, 0, 9)], P, NOW_S)
    assert state.store.counters() == {"applied": 3, "duplicates": 3}  # duplicates include redeliveries

    state.store.count("dead_letters", 2)
    state.store.count("dead_letters")
    state.store.count("never_counted", 0)
    assert state.store.counters() == {"applied": 3, "duplicates": 3, "dead_letters": 3}


def test_a_scan_sees_every_customer_once(state):
    customers = [customer() for _ in range(250)]
    state.store.apply_batch([SourcedEvent(deposit(c, 0), DEPOSITS, 0, i) for i, c in enumerate(customers)],
                            P, NOW_S)
    found = list(state.store.customer_ids())
    assert sorted(found) == sorted(customers)


def test_seen_ids_are_forgotten_after_the_dedupe_ttl(state):
    store = state.open_store(dedupe_ttl_s=3600)
    c = customer()
    first = deposit(c, 0)
    store.apply_batch([SourcedEvent(first, DEPOSITS, 0, 1)], P, NOW_S)
    assert store.apply_batch([SourcedEvent(first, DEPOSITS, 0, 2)], P, NOW_S + 60).duplicates == 1
    # Two hours on, the customer is written again, which trims ids older than the TTL ...
    store.apply_batch([SourcedEvent(deposit(c, 1), DEPOSITS, 0, 3)], P, NOW_S + 7200)
    # ... so the same id at a new offset is taken as new.
    assert store.apply_batch([SourcedEvent(first, DEPOSITS, 0, 4)], P, NOW_S + 7201).applied == 1


def test_a_log_replayed_with_redeliveries_and_duplicates_gives_the_oracles_state(state):
    """Simulated traffic in batches that overlap (redelivery after a crash) and with some events
    resent at new offsets: every customer ends as the in-process fold of each event once."""
    # The tag ends in a letter, so the ids never hold a run of 13 digits a card-number check refuses.
    tag = uuid.uuid4().hex[:4].upper() + "X"
    log: list[SourcedEvent] = []
    next_offset: dict[tuple[str, int], int] = {}
    for batch in Simulator(CATALOG, 20, 11).run(12):
        for line in batch.lines:
            event = decode(line.replace('"customer_id":"C', f'"customer_id":"C{tag}', 1).encode())
            topic, partition = TOPIC_FOR_TYPE[event.type], zlib.crc32(event.customer_id.encode()) % 4
            offset = next_offset.get((topic, partition), 0)
            next_offset[(topic, partition)] = offset + 1
            log.append(SourcedEvent(event, topic, partition, offset))
    rng = random.Random(3)
    resent = []
    for record in rng.sample(log, 25):  # the source sends some events twice: a new offset, same id
        offset = next_offset[(record.topic, record.partition)]
        next_offset[(record.topic, record.partition)] = offset + 1
        resent.append(SourcedEvent(record.event, record.topic, record.partition, offset))
    stream = log + resent

    total = 0
    start = 0
    while start < len(stream):
        end = min(len(stream), start + 60)
        total += state.store.apply_batch(stream[start:end], P, NOW_S).applied
        start = end - 15 if end < len(stream) else end  # the last 15 come again in the next batch
    assert total == len(log)

    by_customer: dict[str, list[Event]] = {}
    for record in log:
        by_customer.setdefault(record.event.customer_id, []).append(record.event)
    assert sorted(state.store.customer_ids()) == sorted(by_customer)
    for customer_id, events in by_customer.items():
        assert state.store.get(customer_id) == oracle(customer_id, events)
    assert state.store.counters()["applied"] == len(log)


def test_a_store_that_answers_has_no_readiness_problems(state):
    assert state.store.readiness_problems() == []
