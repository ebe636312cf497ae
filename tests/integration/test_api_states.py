"""Every offer endpoint answers, with a real ranking, for any customer state the stream can write:
simulated customers and the edge cases a bank's data produces (a product the catalog retired,
an overdraft, a fortune, no birth year, an open complaint, a full day of contacts, ...)."""

from __future__ import annotations

import dataclasses
import itertools
import time
from datetime import datetime, timezone

import pytest
import redis
from fastapi.testclient import TestClient

from domain.catalog import load_catalog
from decisioning.contact import day_of
from domain.features import apply
from simulator.bank import simulate_events
from domain.state import ContactRecord, CustomerState, Holding
from schemas.events import MAX_AMOUNT_MINOR
from services.api.app import create_app
from services.commands.train import train_on_simulation
from bootstrap.settings import load_settings
from adapters import keys
from adapters.redis_store import encode_state

CATALOG = load_catalog()
KEYS = {"teller": {"X-API-Key": "dev-teller"}, "call_centre": {"X-API-Key": "dev-agent"},
        "mobile": {"X-API-Key": "dev-mobile"}}


def simulated_states(customers: int, seed: int) -> list[CustomerState]:
    states: dict[str, CustomerState] = {}
    for event in simulate_events(CATALOG, customers, 30, seed=seed):
        states[event.customer_id] = apply(states.get(event.customer_id) or CustomerState(event.customer_id), event)
    return list(states.values())


def edge_cases(base: CustomerState) -> dict[str, CustomerState]:
    """Variants of one simulated customer, each pushing one part of the state to an extreme."""
    now = time.time()
    today = day_of(now)

    def variant(name: str, **changes: object) -> tuple[str, CustomerState]:
        number = next(numbers)
        return name, dataclasses.replace(base, customer_id=f"{base.customer_id[:-4]}E{number:03d}", **changes)

    numbers = itertools.count()
    cases: dict[str, CustomerState] = {}
    retired = "retired_product"
    for name, state in [
        variant("retired product held, contacted and bought",
                holdings={**base.holdings, retired: Holding(2, now - 99, now - 9, 3.0)},
                contacts={retired: ContactRecord(last_declined_at_s=now - 60, last_decline_reason="not_interested")},
                recent_purchases=[[retired, now - 3600], *base.recent_purchases]),
        variant("overdraft", balance_minor=-MAX_AMOUNT_MINOR, invested_minor=0),
        variant("a fortune", balance_minor=10 * MAX_AMOUNT_MINOR, invested_minor=100 * MAX_AMOUNT_MINOR,
                value_tier="private"),
        variant("private tier with nothing left", balance_minor=0, invested_minor=0, value_tier="private"),
        variant("no birth year, no risk profile", birth_year=None, risk_tolerance=None, employment=None),
        variant("120 years old", birth_year=datetime.now(timezone.utc).year - 120),
        variant("a minor", birth_year=datetime.now(timezone.utc).year - 10, risk_tolerance=1),
        variant("open complaint", open_complaint=True, satisfaction=-1.0),
        variant("segment G: buys a lot, complains", vs_segment="G", purchases=max(base.purchases, 4), complaints=2),
        variant("every channel's cap used today",
                daily_contacts={f"{today}|{c}": 50 for c in ("teller", "call_centre", "mobile")}),
        variant("declines with reasons old and new",
                contacts={pid: ContactRecord(last_declined_at_s=now - 5, last_decline_reason=reason, declines=9)
                          for pid, reason in zip(CATALOG.ids, [None, "not_interested", "bad_timing", "a_new_reason"])}),
        variant("odd tokens", tokens={"hotline:unknown_intent": 1e12, "pos:new_category": 1e-9, "": 1.0}),
        variant("new customer, no history", holdings={}, tokens={}, recent_purchases=[], contacts={},
                recent_transactions=[], pos_spend={}, hotline_intents={}, events_applied=1),
        variant("every product held", holdings={pid: Holding(1, now - 10, now - 10, 0.0) for pid in CATALOG.ids}),
    ]:
        cases[name] = state
    return cases


@pytest.fixture(scope="module")
def api(servers, tmp_path_factory):
    key_prefix = "states" + str(int(time.time() * 1000) % 10**8)
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("api-states"), kafka={"bootstrap": servers.kafka_bootstrap},
        redis={"url": servers.redis_url, "key_prefix": key_prefix, "timeout_ms": 1000},
        api={"allow_dev_keys": True, "rate_per_s": 100_000, "rate_burst": 100_000})
    version = train_on_simulation(settings, customers=400, seed=5)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["model"] == version
        yield settings, client


def test_every_endpoint_answers_for_simulated_and_edge_case_states(api):
    settings, client = api
    states = simulated_states(60, seed=9)
    richest = max(states, key=lambda s: len(s.holdings) + len(s.recent_purchases))
    edges = edge_cases(richest)
    cases = {s.customer_id: s for s in states} | {s.customer_id: s for s in edges.values()}
    assert len(cases) == len(states) + len(edges) == 60 + 14
    store = redis.Redis.from_url(settings.redis.url)
    for cid, state in cases.items():
        store.hset(keys.state_key(settings.redis.key_prefix, cid), mapping={"state": encode_state(state), "v": 1})
    store.close()

    for cid, state in cases.items():
        answers = {
            "teller deposit": client.post("/v1/teller/offers", headers=KEYS["teller"], json={
                "customer_id": cid, "transaction": {"kind": "deposit", "amount_minor": MAX_AMOUNT_MINOR}}),
            "teller withdrawal": client.post("/v1/teller/offers", headers=KEYS["teller"], json={
                "customer_id": cid, "transaction": {"kind": "withdrawal", "amount_minor": MAX_AMOUNT_MINOR}}),
            "call centre": client.get(f"/v1/call-centre/customers/{cid}/offers", headers=KEYS["call_centre"]),
            "mobile": client.get(f"/v1/mobile/customers/{cid}/slots", params={"n": 10}, headers=KEYS["mobile"]),
        }
        for what, response in answers.items():
            assert response.status_code == 200, (cid, what, response.text)
            body = response.json()
            assert not body["degraded"], (cid, what)
            offered = [o["product_id"] for o in body.get("offers", body.get("slots", []))]
            held_once = {pid for pid in state.holdings if pid in CATALOG and not CATALOG.get(pid).multi_hold}
            assert not held_once & set(offered), (cid, what, "offered a product the customer holds")
            if state.open_complaint or state.vs_segment == "G":
                assert offered == [], (cid, what, "sold during an open complaint")
        profile = client.get(f"/v1/call-centre/customers/{cid}/profile", headers=KEYS["call_centre"])
        assert profile.status_code == 200, (cid, "profile", profile.text)
