"""The EventPublisher contract, against ``MemoryPublisher`` and ``kafka_publisher.Publisher`` on
the real broker (read back with a real consumer): an outcome is on its topic, keyed by
customer, once ``publish_outcome`` returns; a retry carries the same event id; a broker that is
down makes it raise ``PublishError``; decisions are delivered in the background, and what the
bounded buffer cannot hold is counted as dropped."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from adapters.kafka_publisher import PublishError, outcome_event_id
from decisioning import Decision, Offer
from schemas.codec import decode
from schemas.events import DeclineReason, OfferDecisionMade, OfferOutcomeRecorded, Outcome
from schemas.topics import OFFER_DECISIONS, OFFER_OUTCOMES
from portkit import CATALOG, delivered, open_publisher, run, topic_reader


@dataclass(frozen=True)
class OutcomeBody:
    """The fields of the API's outcome request that the publisher reads."""

    decision_id: str
    customer_id: str
    product_id: str
    channel: str
    outcome: Outcome
    decline_reason: DeclineReason | None = None


def customer() -> str:
    return "C" + uuid.uuid4().hex[:12].upper()


def declined(customer_id: str) -> OutcomeBody:
    return OutcomeBody(f"d-{uuid.uuid4().hex[:16]}", customer_id, "bond_fund", "call_centre", Outcome.DECLINED,
                       DeclineReason.TOO_EXPENSIVE)


def a_decision() -> Decision:
    return Decision([Offer(CATALOG.get("bond_fund"), 0.2, 0.0, 0.3, None, ["large_inflow"])], ["eligibility"])


def test_an_outcome_is_on_its_topic_once_publish_returns(publisher_kind, request):
    c = customer()
    body = declined(c)

    async def scenario():
        publisher, bootstrap = open_publisher(publisher_kind, request)
        read, close_reader = topic_reader(publisher_kind, publisher, bootstrap)
        try:
            await publisher.start()
            assert publisher.connected
            event_id = await publisher.publish_outcome(body)
            return event_id, read(OFFER_OUTCOMES, lambda key, value: key == c.encode())
        finally:
            close_reader()
            await publisher.close()

    event_id, records = run(scenario())
    assert event_id == outcome_event_id(body.decision_id, body.product_id, "declined")
    assert len(records) == 1
    event = decode(records[0][1])
    assert isinstance(event, OfferOutcomeRecorded)
    assert (event.event_id, event.customer_id, event.decision_id, event.product_id) == (
        event_id, c, body.decision_id, "bond_fund")
    assert (event.outcome, event.decline_reason, event.channel, event.source) == (
        Outcome.DECLINED, DeclineReason.TOO_EXPENSIVE, "call_centre", "offer_api")


def test_a_retried_outcome_carries_the_same_event_id_and_another_outcome_another(publisher_kind, request):
    c = customer()
    body = declined(c)
    shown = OutcomeBody(body.decision_id, c, body.product_id, body.channel, Outcome.SHOWN)

    async def scenario():
        publisher, bootstrap = open_publisher(publisher_kind, request)
        read, close_reader = topic_reader(publisher_kind, publisher, bootstrap)
        try:
            await publisher.start()
            ids = [await publisher.publish_outcome(b) for b in (body, body, shown)]
            return ids, read(OFFER_OUTCOMES, lambda key, value: key == c.encode(), count=3)
        finally:
            close_reader()
            await publisher.close()

    ids, records = run(scenario())
    assert ids[0] == ids[1] != ids[2]
    assert sorted(decode(value).event_id for _, value in records) == sorted(ids)


def test_with_the_broker_down_an_outcome_raises_publish_error(publisher_kind, request):
    async def scenario():
        publisher, _ = open_publisher(publisher_kind, request, broker_up=False)
        try:
            await publisher.start(wait_s=0.3)
            assert not publisher.connected
            with pytest.raises(PublishError):
                await publisher.publish_outcome(declined(customer()))
        finally:
            await publisher.close()

    run(scenario())


def test_logged_decisions_reach_their_topic_and_count_as_sent(publisher_kind, request):
    customers = [customer() for _ in range(3)]
    keys = {c.encode() for c in customers}
    at = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)

    async def scenario():
        publisher, bootstrap = open_publisher(publisher_kind, request)
        read, close_reader = topic_reader(publisher_kind, publisher, bootstrap)
        try:
            await publisher.start()
            for i, c in enumerate(customers):
                publisher.log_decision(f"d-{c.lower()}{i}", c, "mobile", a_decision(), "v7", 1.5, at)
            await delivered(publisher, len(customers))
            records = read(OFFER_DECISIONS, lambda key, value: key in keys, count=3)
            return publisher.sent, publisher.dropped, records
        finally:
            close_reader()
            await publisher.close()

    sent, dropped, records = run(scenario())
    assert (sent, dropped) == (3, 0)
    events = [decode(value) for _, value in records]
    assert all(isinstance(e, OfferDecisionMade) for e in events)
    assert sorted(e.customer_id for e in events) == sorted(customers)
    assert {e.model_version for e in events} == {"v7"} and all(e.occurred_at == at for e in events)


def test_what_a_full_buffer_cannot_hold_is_dropped_and_counted(publisher_kind, request):
    at = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)

    async def scenario():
        publisher, _ = open_publisher(publisher_kind, request, buffer_size=2, broker_up=False)
        try:
            await publisher.start(wait_s=0.3)
            for i in range(5):  # nothing drains: the broker is down
                publisher.log_decision(f"d-full{i:04d}", customer(), "teller", a_decision(), "v1", 1.0, at)
            return publisher.dropped, publisher.sent
        finally:
            await publisher.close()

    assert run(scenario()) == (3, 0)
