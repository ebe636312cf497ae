"""The loop a bank cares about: an event published by a core system reaches the customer's
state through the stream worker, and the offer service answers from that state."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import httpx
from kafka import KafkaProducer

from schemas.codec import encode
from schemas.events import DepositPosted
from schemas.topics import DEPOSITS, partition_key
from services.stack import DEV_KEYS

DEADLINE_S = 60.0


def _wait_for(condition, deadline_s: float = DEADLINE_S, what: str = "condition"):
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}; last value {last!r}")


def test_a_deposit_for_a_new_customer_shows_in_the_offer_service(stack, unique_customer_id):
    deposit = DepositPosted(
        event_id=f"ev-{uuid.uuid4().hex}", customer_id=unique_customer_id,
        occurred_at=datetime.now(timezone.utc), source="core_banking", kind="deposit",
        amount_minor=8_800_000, channel="counter", purpose="cash", balance_after_minor=12_345_600,
    )
    producer = KafkaProducer(bootstrap_servers=stack.servers.kafka_bootstrap, acks="all")
    producer.send(DEPOSITS, key=partition_key(unique_customer_id), value=encode(deposit)).get(timeout=10)
    producer.close()

    client = httpx.Client(base_url=stack.api_url, timeout=5)
    profile_url = f"/v1/call-centre/customers/{unique_customer_id}/profile"
    headers = {"X-API-Key": DEV_KEYS["call_centre"]}

    def balance_seen():
        response = client.get(profile_url, headers=headers)
        if response.status_code != 200:
            return None
        return response.json()["behaviour"]["balance_minor"] == 12_345_600

    _wait_for(balance_seen, what="the deposit to reach the customer's state")

    for channel, key in DEV_KEYS.items():
        response = client.get(f"/v1/customers/{unique_customer_id}/offers",
                              params={"channel": channel}, headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["customer_id"] == unique_customer_id
        assert body["offers"], f"no offer on {channel}"
        for offer in body["offers"]:
            assert offer["reason"]["en"] and offer["reason"]["zh"]
