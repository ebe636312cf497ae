"""The offer API learns online, against the real Redis and broker: what the stream writes to the
learn hash changes the API's ranking within a second or two, with no restart; and the arm is on
the answers of a customer the experiment put in control."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from adapters import keys
from adapters.redis_store import encode_state
from bootstrap.settings import load_settings
from decisioning import CONTROL, arm_of
from bootstrap import loop_params
from domain.features import apply
from domain.state import CustomerState
from schemas.events import CustomerProfileUpdated, DepositPosted
from services.api.app import create_app

pytestmark = pytest.mark.integration

MOBILE = {"X-API-Key": "dev-mobile"}
AGENT = {"X-API-Key": "dev-agent"}


def settings_for(servers, key_prefix, tmp_path, **loop):
    return load_settings(
        data_dir=tmp_path,
        kafka={"bootstrap": servers.kafka_bootstrap},
        redis={"url": servers.redis_url, "key_prefix": key_prefix, "timeout_ms": 250},
        api={"allow_dev_keys": True},
        loop={"refresh_ms": 100, "control_share": 0.0, "explore_channels": [], **loop},
    )


def seed_customer(settings, customer_id: str) -> None:
    now = datetime.now(timezone.utc)
    state = CustomerState(customer_id)
    state = apply(state, CustomerProfileUpdated(event_id=f"ev-{uuid.uuid4().hex}", customer_id=customer_id,
                                                occurred_at=now, source="core_banking", birth_year=1982,
                                                risk_tolerance=4, employment="salaried"))
    state = apply(state, DepositPosted(event_id=f"ev-{uuid.uuid4().hex}", customer_id=customer_id, occurred_at=now,
                                       source="core_banking", kind="deposit", amount_minor=20_000_000,
                                       channel="counter", purpose="salary", balance_after_minor=20_000_000))
    client = redis.Redis.from_url(settings.redis.url)
    client.hset(keys.state_key(settings.redis.key_prefix, customer_id), mapping={"state": encode_state(state), "v": 1})


def test_declines_the_stream_records_push_a_product_down_within_two_seconds(servers, key_prefix, tmp_path,
                                                                             unique_customer_id):
    settings = settings_for(servers, key_prefix, tmp_path)
    seed_customer(settings, unique_customer_id)
    store = redis.Redis.from_url(servers.redis_url)
    with TestClient(create_app(settings)) as client:
        def ranking() -> list[str]:
            body = client.get(f"/v1/customers/{unique_customer_id}/offers", params={"channel": "mobile", "limit": 6},
                              headers=MOBILE).json()
            assert body["degraded"] is False and body["arm"] == "treatment"
            return [o["product_id"] for o in body["offers"]]

        before = ranking()
        top = before[0]
        # What the stream writes after many customers declined the product on the mobile slots where
        # the model expected 400 acceptances: field <product>@<channel>, [accepts, others, as_of_s, expected].
        store.hset(keys.learn_key(key_prefix), f"{top}@mobile", orjson.dumps([0.0, 800.0, time.time(), 400.0]))
        deadline = time.monotonic() + 2.0
        after = ranking()
        while top in after[:3] and time.monotonic() < deadline:
            time.sleep(0.05)
            after = ranking()
        assert top not in after[:3], f"still ranked {after.index(top) + 1} after 2 s: {after}"
        # The products customers accept move up the same way.
        riser = after[-1]
        store.hset(keys.learn_key(key_prefix), f"{riser}@mobile", orjson.dumps([600.0, 20.0, time.time(), 30.0]))
        deadline = time.monotonic() + 2.0
        while ranking()[0] != riser and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ranking()[0] == riser


def test_a_control_customer_is_answered_in_the_control_arm_on_every_channel(servers, key_prefix, tmp_path):
    settings = settings_for(servers, key_prefix, tmp_path, control_share=0.5, control_salt="integration")
    loop = loop_params(settings)
    tag = uuid.uuid4().hex[:8].upper()
    customer_id = next(c for c in (f"C{tag}{i:04d}" for i in range(1000))
                       if arm_of(c, "call_centre", time.time(), loop) == CONTROL
                       and arm_of(c, "mobile", time.time(), loop) == CONTROL)
    seed_customer(settings, customer_id)
    with TestClient(create_app(settings)) as client:
        agent = client.get(f"/v1/call-centre/customers/{customer_id}/offers", headers=AGENT).json()
        slots = client.get(f"/v1/mobile/customers/{customer_id}/slots", headers=MOBILE).json()
    assert agent["arm"] == slots["arm"] == "control"
    assert agent["offers"] and slots["slots"] and not agent["degraded"]
