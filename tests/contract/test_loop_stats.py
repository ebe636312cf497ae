"""The closed loop's stream-side contract, against ``MemoryStateStore`` and ``RedisStateStore`` (one
Valkey, with and without the write cache, and a Redis Cluster of 3 primaries): decisions,
answers and purchases applied and settled show in ``LoopStatsReader.counts`` and in the online
evidence; a unit settled twice, or handed back by a redelivery, adds nothing; the evidence has
the stored form the offer API reads (``[accepts, others, as_of_s]`` per product and segment)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import orjson
import pytest

from adapters import keys
from adapters.fakes import MemoryStateStore
from adapters.ports import LoopCountRow, SourcedEvent
from adapters.redis_store import RedisLoopStats
from domain.attribution import LoopFacts, add_signed
from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.events import OfferDecisionMade, OfferedItem, OfferOutcomeRecorded, ProductPurchased
from schemas.topics import OFFER_DECISIONS, OFFER_OUTCOMES, PURCHASES

P = FeatureParams()
T0 = datetime(2026, 5, 4, 10, tzinfo=timezone.utc)
NOW_S = T0.timestamp() + 40 * 86_400


def stats_of(store):
    return store.loop_stats() if isinstance(store, MemoryStateStore) else RedisLoopStats(store.url, store.prefix)


def evidence_of(store) -> dict[str, list[float]]:
    if isinstance(store, MemoryStateStore):
        return dict(store.evidence)
    raw = store.client.hgetall(keys.learn_key(store.prefix))
    return {f.decode(): orjson.loads(v) for f, v in raw.items()}


def loop_events(customer_id: str, tag: str) -> list[SourcedEvent]:
    d1, d2 = f"d-{tag}01", f"d-{tag}02"
    events = [
        (OFFER_DECISIONS, OfferDecisionMade(
            event_id=f"dec-{tag}01", customer_id=customer_id, occurred_at=T0, source="offer_api", decision_id=d1,
            channel="teller", model_version="v3|x", arm="treatment",
            offers=(OfferedItem(product_id="fund_sip", rank=1, score=1, propensity=0.2),
                    OfferedItem(product_id="large_cd", rank=2, score=1, propensity=0.1)))),
        (OFFER_OUTCOMES, OfferOutcomeRecorded(
            event_id=f"oc-{tag}01", customer_id=customer_id, occurred_at=T0 + timedelta(minutes=1),
            source="offer_api", decision_id=d1, product_id="fund_sip", channel="teller", outcome="accepted")),
        (OFFER_OUTCOMES, OfferOutcomeRecorded(
            event_id=f"oc-{tag}02", customer_id=customer_id, occurred_at=T0 + timedelta(minutes=1),
            source="offer_api", decision_id=d1, product_id="large_cd", channel="teller", outcome="declined",
            decline_reason="too_expensive")),
        (OFFER_DECISIONS, OfferDecisionMade(
            event_id=f"dec-{tag}02", customer_id=customer_id, occurred_at=T0 + timedelta(days=1), source="offer_api",
            decision_id=d2, channel="mobile", model_version="v4", arm="control",
            offers=(OfferedItem(product_id="fund_sip", rank=1, score=1, propensity=0.2),))),
        (PURCHASES, ProductPurchased(
            event_id=f"buy-{tag}01", customer_id=customer_id, occurred_at=T0 + timedelta(days=3),
            source="core_banking", product_id="fund_sip", amount_minor=100, channel="branch")),
    ]
    return [SourcedEvent(e, topic, 0, i) for i, (topic, e) in enumerate(events)]


def test_settled_facts_show_as_rows_of_the_day_the_offers_were_shown(state, unique_customer_id):
    records = loop_events(unique_customer_id, "k" + unique_customer_id[-6:].lower())
    result = state.store.apply_batch(records, P, NOW_S)
    assert state.store.settle(result.units, NOW_S) == len(result.units) >= 1
    reader = stats_of(state.store)
    try:
        rows = reader.counts(date(2026, 5, 4), date(2026, 5, 5))
        segment = state.store.get(unique_customer_id).vs_segment
        assert rows == [
            LoopCountRow(date(2026, 5, 4), "fund_sip", "teller", segment, "treatment", "v3|x", shows=1, accepted=1),
            LoopCountRow(date(2026, 5, 4), "large_cd", "teller", segment, "treatment", "v3|x", shows=1,
                         declined={"too_expensive": 1}),
            # not answered, and the customer seen (the purchase) more than a day after: ignored
            LoopCountRow(date(2026, 5, 5), "fund_sip", "mobile", segment, "control", "v4", shows=1, ignored=1,
                         conversions=1),
        ]
        assert reader.counts(date(2026, 5, 6), date(2026, 5, 6)) == []
        with pytest.raises(ValueError, match="before"):
            reader.counts(date(2026, 5, 6), date(2026, 5, 5))
    finally:
        reader.close()
    (conversion,) = [c for u in result.units for c in u.conversions]
    assert (conversion["decision_id"], conversion["channel"], conversion["accepted_at_touchpoint"]) == (
        records[3].event.decision_id, "mobile", False)


def test_the_evidence_is_the_oracles_in_the_stored_form(state, unique_customer_id):
    records = loop_events(unique_customer_id, "e" + unique_customer_id[-6:].lower())
    state.store.settle(state.store.apply_batch(records, P, NOW_S).units, NOW_S)
    facts = LoopFacts()
    apply_all(CustomerState(unique_customer_id), [r.event for r in records], P, facts)
    expected: dict[str, list[float]] = {}
    for name, accepted, propensity, at_s, sign in facts.answers:
        expected[name] = add_signed(expected.get(name), accepted, propensity, at_s, sign, 30.0)
    got = evidence_of(state.store)
    assert got.keys() == expected.keys()
    for name, want in expected.items():
        assert got[name] == pytest.approx(want, rel=1e-12), name
    accepts, others, as_of_s, expected_accepts = got["fund_sip"]  # one acceptance and one offer ignored,
    # decayed to the latest; both offers were shown at the model's propensity 0.2
    assert (round(accepts, 3), round(others, 3), as_of_s) == (0.955, 1.0, (T0 + timedelta(days=2)).timestamp())
    assert expected_accepts == pytest.approx(0.2 * accepts + 0.2 * others, rel=1e-9)


def test_a_unit_settled_twice_or_handed_back_by_a_redelivery_adds_nothing(state, unique_customer_id):
    records = loop_events(unique_customer_id, "r" + unique_customer_id[-6:].lower())
    first = state.store.apply_batch(records, P, NOW_S)  # the writer "dies" before settling
    # the redelivery, to the next worker (another store: nothing in its cache)
    store = state.store if isinstance(state.store, MemoryStateStore) else state.open_store()
    again = store.apply_batch(records, P, NOW_S)
    assert again.applied == 0  # nothing new applied...
    assert {u.unit_id for u in again.units} == {u.unit_id for u in first.units}  # ...but the outbox comes back
    assert store.settle(again.units, NOW_S) == len(first.units)
    assert store.settle(first.units, NOW_S) == 0
    assert store.apply_batch(records, P, NOW_S).units == []  # settled: the outbox is empty
    reader = stats_of(state.store)
    try:
        rows = reader.counts(date(2026, 5, 4), date(2026, 5, 5))
    finally:
        reader.close()
    assert sum(r.shows for r in rows) == 3 and sum(r.conversions for r in rows) == 1
    assert round(evidence_of(state.store)["fund_sip"][0], 3) == 0.955
