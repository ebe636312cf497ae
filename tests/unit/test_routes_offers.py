"""The offer routes on the fakes (no servers): what a teller terminal, the agent screen and the
mobile app see for a customer whose state is known, and when the state cannot be read."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from adapters.fakes import (
    FixedModels,
    MemoryDecisionCache,
    MemoryPolicySource,
    MemoryPublisher,
    MemoryStateReader,
    MemoryStateStore,
)
from adapters.ports import SourcedEvent
from bootstrap import ApiParts, load_settings
from decisioning import SAFE_FALLBACK
from domain.catalog import load_catalog
from domain.features import FeatureParams
from recommender.model import PriorModel
from schemas.events import (
    CustomerProfileUpdated,
    DepositPosted,
    Event,
    OfferOutcomeRecorded,
    ProductPurchased,
)
from services.api.app import create_app

CATALOG = load_catalog()
TELLER = {"X-API-Key": "dev-teller"}
AGENT = {"X-API-Key": "dev-agent"}
MOBILE = {"X-API-Key": "dev-mobile"}
CUSTOMER = "C000000042"
NOW = datetime.now(timezone.utc)


def history(balance_minor: int) -> list[Event]:
    """A salaried customer born 1985, risk tolerance 3, with ``balance_minor`` in the account,
    who bought a bond fund ten days ago and declined a credit card yesterday."""
    return [
        CustomerProfileUpdated(event_id="ev-history-1", customer_id=CUSTOMER, occurred_at=NOW - timedelta(days=400),
                               source="core_banking", birth_year=1985, risk_tolerance=3, employment="salaried"),
        DepositPosted(event_id="ev-history-2", customer_id=CUSTOMER, occurred_at=NOW - timedelta(days=20),
                      source="core_banking", kind="deposit", amount_minor=balance_minor, channel="counter",
                      purpose="salary", balance_after_minor=balance_minor),
        ProductPurchased(event_id="ev-history-3", customer_id=CUSTOMER, occurred_at=NOW - timedelta(days=10),
                         source="core_banking", product_id="bond_fund", channel="branch"),
        OfferOutcomeRecorded(event_id="ev-history-4", customer_id=CUSTOMER, occurred_at=NOW - timedelta(days=1),
                             source="offer_api", decision_id="d-0123456789abcdef", product_id="credit_card_gold",
                             channel="call_centre", outcome="declined", decline_reason="too_expensive"),
    ]


class Api:
    """The offer API on the fakes, started (lifespan run) by ``TestClient``."""

    def __init__(self, events: list[Event], levers: dict[str, float] | None = None, max_slots: int = 10) -> None:
        store = MemoryStateStore()
        store.apply_batch([SourcedEvent(e, "events", 0, i) for i, e in enumerate(events)], FeatureParams(),
                          time.time())
        self.reader: MemoryStateReader = store.reader()
        self.publisher = MemoryPublisher()
        settings = load_settings(api={"allow_dev_keys": True, "max_mobile_slots": max_slots})
        self.parts = ApiParts(settings=settings, catalog=CATALOG, store=self.reader,
                              models=FixedModels(PriorModel(CATALOG)), publisher=self.publisher,
                              policies=MemoryPolicySource(levers or {}), params=FeatureParams(),
                              decisions=MemoryDecisionCache())
        self.client = TestClient(create_app(settings, self.parts))


@pytest.fixture
def api() -> Iterator[Api]:
    built = Api(history(balance_minor=500_000))
    with built.client:
        yield built


def teller_offer(client: TestClient, amount_minor: int, kind: str = "deposit") -> dict:
    response = client.post("/v1/teller/offers", headers=TELLER, json={
        "customer_id": CUSTOMER, "transaction": {"kind": kind, "amount_minor": amount_minor}})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_deposit_that_clears_a_products_minimum_assets_makes_it_the_tellers_offer():
    # Marketing pushes the R2 wealth product (10,000 CNY minimum); the customer has 5,000 CNY.
    api = Api(history(balance_minor=500_000), levers={"wealth_r2": 1000})
    with api.client as client:
        small = teller_offer(client, 100_000)  # 6,000 CNY: still short
        enough = teller_offer(client, 500_000)  # 10,000 CNY: clears it
        again_small = teller_offer(client, 100_000)
    assert [o["product_id"] for o in small["offers"]] != ["wealth_r2"]
    assert [o["product_id"] for o in enough["offers"]] == ["wealth_r2"]
    assert not enough["degraded"] and enough["channel"] == "teller" and enough["customer_id"] == CUSTOMER
    # The deposit in hand was folded into a copy: the next customer at the counter, or the same
    # one with another transaction, is ranked from the stored state.
    assert [o["product_id"] for o in again_small["offers"]] != ["wealth_r2"]


def test_a_withdrawal_below_the_minimum_takes_the_product_off_the_tellers_offer():
    api = Api(history(balance_minor=1_500_000), levers={"wealth_r2": 1000})
    with api.client as client:
        before = teller_offer(client, 1_000, kind="withdrawal")
        after = teller_offer(client, 600_000, kind="withdrawal")  # 9,000 CNY left
    assert [o["product_id"] for o in before["offers"]] == ["wealth_r2"]
    assert [o["product_id"] for o in after["offers"]] != ["wealth_r2"]


def test_the_teller_gets_one_offer_with_reasons_in_both_languages_and_the_decision_is_logged(api):
    offer = teller_offer(api.client, 100_000)
    assert len(offer["offers"]) == 1
    first = offer["offers"][0]
    assert first["rank"] == 1 and first["reason"]["en"] and first["reason"]["zh"] and first["pitch"]["zh"]
    assert first["talking_points"] == [] and first["creative_id"] is None
    api.publisher.flush()
    assert [(d.decision_id, d.channel) for d in api.publisher.decisions] == [(offer["decision_id"], "teller")]


def test_the_agents_profile_shows_the_known_state(api):
    response = api.client.get(f"/v1/call-centre/customers/{CUSTOMER}/profile", headers=AGENT)
    assert response.status_code == 200
    profile = response.json()
    assert profile["customer_id"] == CUSTOMER and profile["known"] is True
    assert profile["age"] == datetime.now(timezone.utc).year - 1985
    assert (profile["risk_tolerance"], profile["employment"], profile["value_tier"]) == (3, "salaried", "mass")
    behaviour = profile["behaviour"]
    assert behaviour["balance_minor"] == 500_000
    assert behaviour["salary_credit"] is True  # 20 days ago
    assert behaviour["inflow_30d_minor"] == 500_000  # the one credit, 20 days ago: inside the 30-day window
    assert behaviour["open_complaint"] is False
    assert {h["product_id"]: (h["name"], h["count"]) for h in profile["holdings"]} == {
        "bond_fund": (CATALOG.get("bond_fund").name, 1)}
    assert [(t["kind"], t["amount_minor"], t["channel"]) for t in profile["recent_transactions"]] == [
        ("deposit", 500_000, "counter")]
    assert datetime.fromisoformat(profile["recent_transactions"][0]["at"]) == (NOW - timedelta(days=20))
    assert [(p["product_id"], p["name_zh"]) for p in profile["recent_purchases"]] == [
        ("bond_fund", CATALOG.get("bond_fund").name_zh)]
    assert profile["contact_history"] == [{
        "product_id": "credit_card_gold", "last_outcome": "declined", "decline_reason": "too_expensive",
        "at": (NOW - timedelta(days=1)).isoformat()}]


def test_an_unknown_customer_has_an_empty_profile_and_cold_start_offers(api):
    stranger = "C999999999"
    profile = api.client.get(f"/v1/call-centre/customers/{stranger}/profile", headers=AGENT).json()
    offers = api.client.get(f"/v1/call-centre/customers/{stranger}/offers", headers=AGENT).json()
    assert profile["known"] is False and profile["holdings"] == [] and profile["behaviour"]["balance_minor"] == 0
    assert len(offers["offers"]) == 3 and not offers["degraded"]
    assert all(o["talking_points"] for o in offers["offers"])


def test_mobile_slots_follow_the_mobile_ranking_one_per_offer():
    api = Api(history(balance_minor=500_000), max_slots=5)
    with api.client as client:
        slots = client.get(f"/v1/mobile/customers/{CUSTOMER}/slots", params={"n": 4}, headers=MOBILE).json()
        default = client.get(f"/v1/mobile/customers/{CUSTOMER}/slots", headers=MOBILE).json()
        ranked = client.get(f"/v1/customers/{CUSTOMER}/offers", params={"channel": "mobile", "limit": 4},
                            headers=MOBILE).json()
    assert [s["slot"] for s in slots["slots"]] == [1, 2, 3, 4] and len(default["slots"]) == 3
    assert [s["product_id"] for s in slots["slots"]] == [o["product_id"] for o in ranked["offers"]]
    for slot, offer in zip(slots["slots"], ranked["offers"]):
        assert slot["creative_id"] == f"mob-{slot['product_id']}-1"
        assert slot["title"] == {"en": offer["name"], "zh": offer["name_zh"]} and slot["reason"] == offer["reason"]
    assert slots["customer_id"] == CUSTOMER and slots["degraded"] is False and slots["model_version"] == "popularity"


@pytest.mark.parametrize("n", [0, 6, "three"])
def test_mobile_slots_outside_one_to_the_configured_maximum_are_a_422_naming_n(n):
    api = Api(history(balance_minor=500_000), max_slots=5)
    with api.client as client:
        response = client.get(f"/v1/mobile/customers/{CUSTOMER}/slots", params={"n": n}, headers=MOBILE)
    assert response.status_code == 422 and "n" in response.json()["detail"].split(":")[0]


def test_when_the_state_cannot_be_read_every_offer_route_answers_200_degraded(api):
    api.reader.fail_reads = True
    teller = api.client.post("/v1/teller/offers", headers=TELLER, json={
        "customer_id": CUSTOMER, "transaction": {"kind": "deposit", "amount_minor": 100_000}})
    agent = api.client.get(f"/v1/call-centre/customers/{CUSTOMER}/offers", headers=AGENT)
    mobile = api.client.get(f"/v1/mobile/customers/{CUSTOMER}/slots", headers=MOBILE)
    generic = api.client.get(f"/v1/customers/{CUSTOMER}/offers", params={"channel": "call_centre"}, headers=AGENT)
    for response, items in ((teller, "offers"), (agent, "offers"), (mobile, "slots"), (generic, "offers")):
        assert response.status_code == 200, response.text
        assert response.json()["degraded"] is True and response.json()[items]
    # Nothing is sold to a customer the service cannot see: only the safe fallback products.
    assert {o["product_id"] for o in agent.json()["offers"]} <= set(SAFE_FALLBACK)
    profile = api.client.get(f"/v1/call-centre/customers/{CUSTOMER}/profile", headers=AGENT)
    assert profile.status_code == 503 and "try again" in profile.json()["detail"]
    assert api.client.get("/readyz").status_code == 503
    metrics = api.client.get("/metrics").text  # its own read of the stream counters fails too: the 6th error
    assert "nbo_redis_errors_total 6.0" in metrics and 'nbo_fallbacks_total{channel="mobile"} 1.0' in metrics
    api.reader.fail_reads = False
    recovered = api.client.get(f"/v1/call-centre/customers/{CUSTOMER}/offers", headers=AGENT).json()
    assert recovered["degraded"] is False and api.client.get("/readyz").json()["redis"] is True


def test_the_channel_routes_need_their_channels_key(api):
    no_key = api.client.get(f"/v1/mobile/customers/{CUSTOMER}/slots")
    wrong = api.client.post("/v1/teller/offers", headers=AGENT, json={"customer_id": "not an id"})
    generic = api.client.get(f"/v1/customers/{CUSTOMER}/offers", params={"channel": "teller"}, headers=MOBILE)
    assert no_key.status_code == 401 and "X-API-Key" in no_key.json()["detail"]
    assert wrong.status_code == 403 and "call_centre" in wrong.json()["detail"]
    assert generic.status_code == 403 and "mobile" in generic.json()["detail"]
