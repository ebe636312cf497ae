"""POST /v1/outcomes on the fakes (no servers): what a touchpoint sends becomes the
``OfferOutcomeRecorded`` the stream folds, once, and a broker that does not acknowledge is a 503
the client can retry."""

from __future__ import annotations

from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from adapters.fakes import FixedModels, MemoryPolicySource, MemoryPublisher, MemoryStateStore
from bootstrap import ApiParts, load_settings
from domain.catalog import load_catalog
from domain.features import FeatureParams
from recommender.model import PriorModel
from schemas.topics import OFFER_OUTCOMES
from services.api.app import create_app

CATALOG = load_catalog()
AGENT = {"X-API-Key": "dev-agent"}
MOBILE = {"X-API-Key": "dev-mobile"}
DECLINED = {"decision_id": "d-0123456789abcdef", "customer_id": "C000000042", "product_id": "credit_card_gold",
            "channel": "call_centre", "outcome": "declined", "decline_reason": "too_expensive"}


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def client(publisher: MemoryPublisher) -> Iterator[TestClient]:
    settings = load_settings(api={"allow_dev_keys": True})
    parts = ApiParts(settings=settings, catalog=CATALOG, store=MemoryStateStore().reader(),
                     models=FixedModels(PriorModel(CATALOG)), publisher=publisher,
                     policies=MemoryPolicySource(), params=FeatureParams())
    with TestClient(create_app(settings, parts)) as test_client:
        yield test_client


def test_a_declined_offer_is_recorded_with_its_reason(client, publisher):
    response = client.post("/v1/outcomes", headers=AGENT, json=DECLINED)
    assert response.status_code == 202 and response.json()["status"] == "recorded"
    [event] = publisher.outcomes
    assert event.event_id == response.json()["event_id"]
    assert (event.decision_id, event.customer_id, event.product_id, event.channel, event.outcome,
            event.decline_reason) == ("d-0123456789abcdef", "C000000042", "credit_card_gold", "call_centre",
                                      "declined", "too_expensive")
    assert event.source == "offer_api"
    assert [(r.topic, r.key) for r in publisher.records] == [(OFFER_OUTCOMES, b"C000000042")]


def test_an_accepted_offer_is_recorded_without_a_reason(client, publisher):
    body = {**DECLINED, "outcome": "accepted", "channel": "mobile"}
    del body["decline_reason"]
    response = client.post("/v1/outcomes", headers=MOBILE, json=body)
    assert response.status_code == 202
    [event] = publisher.outcomes
    assert (event.outcome, event.decline_reason, event.channel) == ("accepted", None, "mobile")


def test_the_same_outcome_sent_twice_carries_one_event_id_so_the_stream_folds_it_once(client, publisher):
    first = client.post("/v1/outcomes", headers=AGENT, json=DECLINED).json()["event_id"]
    again = client.post("/v1/outcomes", headers=AGENT, json=DECLINED).json()["event_id"]
    other = client.post("/v1/outcomes", headers=AGENT, json={**DECLINED, "product_id": "bond_fund"}).json()["event_id"]
    assert first == again != other
    assert [e.event_id for e in publisher.outcomes] == [first, first, other]


def test_when_the_broker_does_not_acknowledge_the_answer_is_503_retry_and_nothing_is_recorded(client, publisher):
    publisher.broker_up = False
    refused = client.post("/v1/outcomes", headers=AGENT, json=DECLINED)
    assert refused.status_code == 503 and "retry with the same body" in refused.json()["detail"]
    assert publisher.outcomes == []
    publisher.broker_up = True
    retried = client.post("/v1/outcomes", headers=AGENT, json=DECLINED)
    assert retried.status_code == 202 and [e.event_id for e in publisher.outcomes] == [retried.json()["event_id"]]


def test_recorded_outcomes_are_counted_per_channel_and_outcome(client):
    client.post("/v1/outcomes", headers=AGENT, json=DECLINED)
    assert 'nbo_outcomes_total{channel="call_centre",outcome="declined"} 1.0' in client.get("/metrics").text


@pytest.mark.parametrize("change, status, named", [
    ({"decline_reason": None}, 422, "decline_reason"),  # declined needs a reason
    ({"outcome": "accepted"}, 422, "decline_reason"),  # only a decline has one
    ({"product_id": "space_tourism"}, 404, "product_id"),
    ({"channel": "teller"}, 403, "call_centre"),  # the agent's key is not the teller's
    ({"decision_id": "42"}, 422, "decision_id"),
])
def test_a_wrong_outcome_is_refused_with_what_to_fix_and_not_recorded(client, publisher, change, status, named):
    body = {k: v for k, v in {**DECLINED, **change}.items() if v is not None}
    response = client.post("/v1/outcomes", headers=AGENT, json=body)
    assert response.status_code == status and named in response.json()["detail"]
    assert publisher.outcomes == []
