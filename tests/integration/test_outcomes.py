"""Outcomes against the running product (the real worker and offer API on the real broker and
Redis): an outcome that names no real decision, or does not match it, is refused and changes
nothing; an accepted product leaves the offers of every channel once the worker has applied the
acceptance to the customer's state."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import httpx
import pytest
from kafka import KafkaProducer

from schemas.codec import encode
from schemas.events import CustomerProfileUpdated, DepositPosted, Event
from schemas.topics import DEPOSITS, PROFILES, partition_key
from services.stack import DEV_KEYS

KEY = {channel: {"X-API-Key": key} for channel, key in DEV_KEYS.items()}
DEADLINE_S = 60.0


def wait_for(condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what}; last value {last!r}")


def publish(bootstrap: str, events: list[tuple[str, Event]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for topic, event in events:
        producer.send(topic, key=partition_key(event.customer_id), value=encode(event)).get(timeout=10)
    producer.close()


def known_customer(stack, customer_id: str) -> httpx.Client:
    """A salaried customer with 60,000 CNY, published through the broker and applied by the worker."""
    now = datetime.now(timezone.utc)
    publish(stack.servers.kafka_bootstrap, [
        (PROFILES, CustomerProfileUpdated(event_id=f"ev-{uuid.uuid4().hex}", customer_id=customer_id, occurred_at=now,
                                          source="core_banking", birth_year=1984, risk_tolerance=3,
                                          employment="salaried")),
        (DEPOSITS, DepositPosted(event_id=f"ev-{uuid.uuid4().hex}", customer_id=customer_id, occurred_at=now,
                                 source="core_banking", kind="deposit", amount_minor=6_000_000, channel="counter",
                                 purpose="salary", balance_after_minor=6_000_000)),
    ])
    client = httpx.Client(base_url=stack.api_url, timeout=10)

    def applied() -> bool:
        profile = client.get(f"/v1/call-centre/customers/{customer_id}/profile", headers=KEY["call_centre"])
        return profile.status_code == 200 and profile.json()["behaviour"]["balance_minor"] == 6_000_000

    wait_for(applied, "the worker to apply the customer's events")
    return client


def offers_everywhere(client: httpx.Client, customer_id: str) -> dict[str, dict]:
    """Every channel's answer, through its own route and through the generic one (10 offers)."""
    answers = {
        "teller route": client.post("/v1/teller/offers", headers=KEY["teller"], json={
            "customer_id": customer_id, "transaction": {"kind": "deposit", "amount_minor": 10_000}}),
        "call-centre route": client.get(f"/v1/call-centre/customers/{customer_id}/offers", headers=KEY["call_centre"]),
        "mobile slots": client.get(f"/v1/mobile/customers/{customer_id}/slots", params={"n": 10},
                                   headers=KEY["mobile"]),
    }
    for channel in DEV_KEYS:
        answers[f"generic {channel}"] = client.get(f"/v1/customers/{customer_id}/offers",
                                                   params={"channel": channel, "limit": 10}, headers=KEY[channel])
    bodies = {}
    for where, response in answers.items():
        assert response.status_code == 200, f"{where}: {response.text}"
        bodies[where] = response.json()
    return bodies


def product_ids(body: dict) -> list[str]:
    return [o["product_id"] for o in body.get("offers", body.get("slots", []))]


def test_an_outcome_for_a_made_up_or_mismatched_decision_is_refused_and_changes_nothing(stack, unique_customer_id):
    client = known_customer(stack, unique_customer_id)
    offer = client.get(f"/v1/call-centre/customers/{unique_customer_id}/offers", headers=KEY["call_centre"]).json()
    real = {"decision_id": offer["decision_id"], "customer_id": unique_customer_id,
            "product_id": offer["offers"][0]["product_id"], "channel": "call_centre", "outcome": "accepted"}
    made_up = client.post("/v1/outcomes", headers=KEY["call_centre"], json={**real, "decision_id": "d-" + uuid.uuid4().hex})
    assert made_up.status_code == 404
    assert "not found (outcomes are accepted for 24 hours after the decision)" in made_up.json()["detail"]
    other_customer = client.post("/v1/outcomes", headers=KEY["call_centre"], json={**real, "customer_id": "C000000001"})
    assert other_customer.status_code == 409 and "another customer" in other_customer.json()["detail"]
    offered = set(product_ids(offer))
    never_offered = next(p for p in ("credit_card_platinum", "mortgage", "agri_loan", "physical_gold") if p not in offered)
    not_offered = client.post("/v1/outcomes", headers=KEY["call_centre"], json={**real, "product_id": never_offered})
    assert not_offered.status_code == 409 and "was not offered in decision" in not_offered.json()["detail"]

    # A real outcome sent after them reaches the state; the refused ones never did.
    assert client.post("/v1/outcomes", headers=KEY["call_centre"], json={**real, "outcome": "shown"}).status_code == 202

    def history() -> list[dict]:
        return client.get(f"/v1/call-centre/customers/{unique_customer_id}/profile",
                          headers=KEY["call_centre"]).json()["contact_history"]

    contacts = wait_for(history, "the shown outcome to reach the customer's state")
    assert [(c["product_id"], c["last_outcome"]) for c in contacts] == [(real["product_id"], "shown")]
    # Had the made-up "accepted" been recorded, the product would now be held back on every channel.
    again = client.get(f"/v1/call-centre/customers/{unique_customer_id}/offers", headers=KEY["call_centre"]).json()
    assert real["product_id"] in product_ids(again)


def test_an_accepted_product_leaves_every_channel_once_the_worker_applied_it(stack, unique_customer_id):
    client = known_customer(stack, unique_customer_id)
    before = offers_everywhere(client, unique_customer_id)
    generic = [where for where in before if where.startswith("generic")]
    common = set.intersection(*(set(product_ids(before[where])) for where in generic))
    assert common, f"no product offered on every channel: {[product_ids(before[w]) for w in generic]}"
    accepted = min(common, key=lambda p: product_ids(before["generic teller"]).index(p))
    decision = before["generic teller"]
    response = client.post("/v1/outcomes", headers=KEY["teller"], json={
        "decision_id": decision["decision_id"], "customer_id": unique_customer_id, "product_id": accepted,
        "channel": "teller", "outcome": "accepted"})
    assert response.status_code == 202, response.text

    def gone_everywhere() -> dict[str, list[str]] | None:
        now = offers_everywhere(client, unique_customer_id)
        return now if all(accepted not in product_ids(body) for body in now.values()) else None

    after = wait_for(gone_everywhere, f"{accepted} to leave every channel's offers")
    assert all(not body["degraded"] for body in after.values())
    profile = client.get(f"/v1/call-centre/customers/{unique_customer_id}/profile", headers=KEY["call_centre"]).json()
    assert (accepted, "accepted") in [(c["product_id"], c["last_outcome"]) for c in profile["contact_history"]]
