"""POST /v1/outcomes on the fakes (no servers): what a touchpoint sends about an offer it got
becomes the ``OfferOutcomeRecorded`` the stream folds, once; an outcome that names no decision
of the last 24 hours, or one that does not match what that decision offered, is refused with
what is wrong; a broker that does not acknowledge, or a decision store that does not answer, is
a 503 the client can retry."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from adapters.fakes import FixedModels, MemoryDecisionCache, MemoryPolicySource, MemoryPublisher, MemoryStateStore
from bootstrap import ApiParts, load_settings
from domain.catalog import load_catalog
from domain.features import FeatureParams
from recommender.model import PriorModel
from schemas.topics import OFFER_OUTCOMES
from services.api.app import create_app

CATALOG = load_catalog()
AGENT = {"X-API-Key": "dev-agent"}
MOBILE = {"X-API-Key": "dev-mobile"}
TELLER = {"X-API-Key": "dev-teller"}
CUSTOMER = "C000000042"


class Clock:
    """The decision cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now_s = time.time()

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def decisions(clock: Clock) -> MemoryDecisionCache:
    return MemoryDecisionCache(ttl_s=24 * 3600, clock=clock)


@pytest.fixture
def client(publisher: MemoryPublisher, decisions: MemoryDecisionCache) -> Iterator[TestClient]:
    settings = load_settings(api={"allow_dev_keys": True})
    parts = ApiParts(settings=settings, catalog=CATALOG, store=MemoryStateStore().reader(),
                     models=FixedModels(PriorModel(CATALOG)), publisher=publisher,
                     policies=MemoryPolicySource(), params=FeatureParams(), decisions=decisions)
    with TestClient(create_app(settings, parts)) as test_client:
        yield test_client


def agent_offer(client: TestClient, customer_id: str = CUSTOMER) -> dict:
    response = client.get(f"/v1/call-centre/customers/{customer_id}/offers", headers=AGENT)
    assert response.status_code == 200, response.text
    return response.json()


def declined(offer: dict, **change: object) -> dict:
    """The agent's "declined, too expensive" for the first product of ``offer``."""
    body = {"decision_id": offer["decision_id"], "customer_id": offer["customer_id"],
            "product_id": offer["offers"][0]["product_id"], "channel": "call_centre", "outcome": "declined",
            "decline_reason": "too_expensive", **change}
    return {k: v for k, v in body.items() if v is not None}


def test_a_declined_offer_is_recorded_with_its_reason(client, publisher):
    offer = agent_offer(client)
    response = client.post("/v1/outcomes", headers=AGENT, json=declined(offer))
    assert response.status_code == 202 and response.json()["status"] == "recorded"
    [event] = publisher.outcomes
    assert event.event_id == response.json()["event_id"]
    assert (event.decision_id, event.customer_id, event.product_id, event.channel, event.outcome,
            event.decline_reason) == (offer["decision_id"], CUSTOMER, offer["offers"][0]["product_id"],
                                      "call_centre", "declined", "too_expensive")
    assert event.source == "offer_api"
    assert [(r.topic, r.key) for r in publisher.records] == [(OFFER_OUTCOMES, CUSTOMER.encode())]


def test_an_accepted_mobile_slot_is_recorded_without_a_reason(client, publisher):
    slots = client.get(f"/v1/mobile/customers/{CUSTOMER}/slots", headers=MOBILE).json()
    body = {"decision_id": slots["decision_id"], "customer_id": CUSTOMER, "product_id": slots["slots"][1]["product_id"],
            "channel": "mobile", "outcome": "accepted"}
    response = client.post("/v1/outcomes", headers=MOBILE, json=body)
    assert response.status_code == 202, response.text
    [event] = publisher.outcomes
    assert (event.outcome, event.decline_reason, event.channel, event.product_id) == (
        "accepted", None, "mobile", slots["slots"][1]["product_id"])


def test_an_outcome_for_a_decision_still_in_the_buffer_and_after_it_was_written_is_recorded(client, decisions):
    # Right after the offer, the decision is only in this process's buffer (the writer flushes
    # every 100 ms); once flushed, it is read from the store, by this replica or another one.
    first, second = agent_offer(client), agent_offer(client)
    assert decisions.buffered == 2
    assert client.post("/v1/outcomes", headers=AGENT, json=declined(first)).status_code == 202
    assert asyncio.run(decisions.flush()) == 2 and decisions.buffered == 0
    assert client.post("/v1/outcomes", headers=AGENT, json=declined(second)).status_code == 202
    other_replica = decisions.replica()
    assert asyncio.run(other_replica.lookup(second["decision_id"])).customer_id == CUSTOMER


def test_the_same_outcome_sent_twice_carries_one_event_id_so_the_stream_folds_it_once(client, publisher):
    offer = agent_offer(client)
    first = client.post("/v1/outcomes", headers=AGENT, json=declined(offer)).json()["event_id"]
    again = client.post("/v1/outcomes", headers=AGENT, json=declined(offer)).json()["event_id"]
    second_product = offer["offers"][1]["product_id"]
    other = client.post("/v1/outcomes", headers=AGENT,
                        json=declined(offer, product_id=second_product)).json()["event_id"]
    assert first == again != other
    assert [e.event_id for e in publisher.outcomes] == [first, first, other]


def test_a_made_up_decision_is_404_and_says_how_long_outcomes_are_accepted(client, publisher):
    offer = agent_offer(client)
    response = client.post("/v1/outcomes", headers=AGENT, json=declined(offer, decision_id="d-0123456789abcdef"))
    assert response.status_code == 404
    assert response.json()["detail"].startswith(
        "decision d-0123456789abcdef not found (outcomes are accepted for 24 hours after the decision)")
    assert publisher.outcomes == []


def test_an_outcome_after_the_window_is_404(client, publisher, decisions, clock):
    offer = agent_offer(client)
    asyncio.run(decisions.flush())
    clock.now_s += 24 * 3600 - 60
    assert client.post("/v1/outcomes", headers=AGENT, json=declined(offer)).status_code == 202
    clock.now_s += 120
    late = client.post("/v1/outcomes", headers=AGENT, json=declined(offer, outcome="shown", decline_reason=None))
    assert late.status_code == 404 and "24 hours" in late.json()["detail"]
    assert [e.outcome for e in publisher.outcomes] == ["declined"]


def test_an_outcome_for_another_customers_decision_is_409(client, publisher):
    offer = agent_offer(client)
    response = client.post("/v1/outcomes", headers=AGENT, json=declined(offer, customer_id="C000000043"))
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "another customer, not C000000043" in detail and CUSTOMER not in detail  # not told whose it was
    assert publisher.outcomes == []


def test_an_outcome_for_a_product_the_decision_did_not_offer_is_409_naming_what_it_offered(client, publisher):
    offer = agent_offer(client)
    offered = [o["product_id"] for o in offer["offers"]]
    not_offered = next(p.product_id for p in CATALOG.products if p.product_id not in offered)
    response = client.post("/v1/outcomes", headers=AGENT, json=declined(offer, product_id=not_offered))
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"product_id {not_offered!r} was not offered in decision {offer['decision_id']} (it offered "
        f"{', '.join(offered)}); send a product_id from that offer response")
    assert publisher.outcomes == []


def test_an_outcome_recorded_on_another_channel_than_the_decision_is_409(client, publisher):
    offer = agent_offer(client)
    response = client.post("/v1/outcomes", headers=TELLER, json=declined(offer, channel="teller"))
    assert response.status_code == 409 and "call_centre channel, not teller" in response.json()["detail"]
    assert publisher.outcomes == []


def test_when_the_decision_store_is_down_an_unflushed_decision_is_still_verified_else_503_retry(
        client, publisher, decisions):
    flushed = agent_offer(client)
    asyncio.run(decisions.flush())
    buffered = agent_offer(client)
    decisions.store_up = False
    assert client.post("/v1/outcomes", headers=AGENT, json=declined(buffered)).status_code == 202
    refused = client.post("/v1/outcomes", headers=AGENT, json=declined(flushed))
    assert refused.status_code == 503
    assert refused.json()["detail"].startswith(f"cannot verify decision {flushed['decision_id']}")
    assert "retry with the same body" in refused.json()["detail"]
    decisions.store_up = True
    assert client.post("/v1/outcomes", headers=AGENT, json=declined(flushed)).status_code == 202
    assert len(publisher.outcomes) == 2


def test_when_the_broker_does_not_acknowledge_the_answer_is_503_retry_and_nothing_is_recorded(client, publisher):
    offer = agent_offer(client)
    publisher.broker_up = False
    refused = client.post("/v1/outcomes", headers=AGENT, json=declined(offer))
    assert refused.status_code == 503 and "retry with the same body" in refused.json()["detail"]
    assert publisher.outcomes == []
    publisher.broker_up = True
    retried = client.post("/v1/outcomes", headers=AGENT, json=declined(offer))
    assert retried.status_code == 202 and [e.event_id for e in publisher.outcomes] == [retried.json()["event_id"]]


def test_recorded_outcomes_are_counted_per_channel_and_outcome(client):
    client.post("/v1/outcomes", headers=AGENT, json=declined(agent_offer(client)))
    assert 'nbo_outcomes_total{channel="call_centre",outcome="declined"} 1.0' in client.get("/metrics").text


@pytest.mark.parametrize("change, status, named", [
    ({"decline_reason": None}, 422, "decline_reason"),  # declined needs a reason
    ({"outcome": "accepted"}, 422, "decline_reason"),  # only a decline has one
    ({"product_id": "space_tourism"}, 404, "product_id"),
    ({"channel": "teller"}, 403, "call_centre"),  # the agent's key is not the teller's
    ({"decision_id": "42"}, 422, "decision_id"),
])
def test_a_wrong_outcome_is_refused_with_what_to_fix_and_not_recorded(client, publisher, change, status, named):
    response = client.post("/v1/outcomes", headers=AGENT, json=declined(agent_offer(client), **change))
    assert response.status_code == status and named in response.json()["detail"]
    assert publisher.outcomes == []
