"""The decision-log record is written by hand for speed: it must still be a valid
``OfferDecisionMade`` that carries what was decided."""

from __future__ import annotations

from datetime import datetime, timezone

from domain.catalog import load_catalog
from decisioning import Decision, Offer
from schemas.codec import decode
from schemas.events import OfferDecisionMade
from adapters.kafka_publisher import decision_record, outcome_event_id

CATALOG = load_catalog()


def test_the_decision_record_decodes_to_the_decision_made():
    offers = [Offer(CATALOG.get("bond_fund"), 0.12, 0.0, 0.3, None, ["large_inflow"]),
              Offer(CATALOG.get("fund_sip"), 0.05, 1.2, 0.2, "bond_fund", ["similar_after_purchase"])]
    decision = Decision(offers, ["eligibility", "scoring"], degraded=False)
    at = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)
    event = decode(decision_record("d-abc123def", "C000000042", "mobile", decision, "v3", 1.7, at))
    assert isinstance(event, OfferDecisionMade)
    assert event.decision_id == "d-abc123def" and event.customer_id == "C000000042" and event.occurred_at == at
    assert [(o.product_id, o.rank) for o in event.offers] == [("bond_fund", 1), ("fund_sip", 2)]
    assert event.offers[1].reason_codes == ("similar_after_purchase",)
    assert event.rules_applied == ("eligibility", "scoring") and event.model_version == "v3"


def test_a_degraded_decision_without_offers_is_still_a_valid_record():
    at = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)
    event = decode(decision_record("d-zzzzzz", "C000000042", "teller", Decision([], ["fallback"], degraded=True),
                                   "popularity", 0.4, at))
    assert event.degraded and event.offers == ()


def test_the_same_outcome_gets_the_same_event_id_and_another_outcome_another():
    first = outcome_event_id("d-abc123", "bond_fund", "declined")
    assert first == outcome_event_id("d-abc123", "bond_fund", "declined")
    assert first != outcome_event_id("d-abc123", "bond_fund", "accepted")


def test_the_record_carries_each_offers_probability_the_arm_and_the_policy_version():
    offers = [Offer(CATALOG.get("bond_fund"), 0.12, 0.0, 0.3, None, ["large_inflow"]),
              Offer(CATALOG.get("fund_sip"), 0.05, 0.0, 0.2, None, [])]
    offers[0].probability, offers[1].probability = 1 / 17, 1 / 17
    decision = Decision(offers, ["eligibility", "select"], arm="control", policy_version="3f9a1c0b2d4e")
    at = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)
    event = decode(decision_record("d-abc123def", "C000000042", "mobile", decision, "v3", 1.7, at))
    assert event.arm == "control" and event.policy_version == "3f9a1c0b2d4e"
    assert [o.probability for o in event.offers] == [1 / 17, 1 / 17]
    ranked = decode(decision_record("d-abc123deg", "C000000042", "mobile", Decision(offers[:1], []), "v3", 1.0, at))
    assert ranked.arm == "treatment"
