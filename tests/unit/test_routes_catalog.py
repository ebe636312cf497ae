"""The offer API on the fakes while the bank edits its catalog: offers come only from the catalog
in force, ``/readyz`` says which one (and the model's, when it was trained for another), a
retired product leaves the offers and a launched one is offered within the poll interval, and a
bad edit is refused while the catalog in force keeps serving."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient

from adapters.fakes import (
    MemoryCatalogSource,
    MemoryDecisionCache,
    MemoryPolicySource,
    MemoryPublisher,
    MemoryRegistry,
    MemoryStateStore,
)
from adapters.model_watch import ModelHolder
from adapters.ports import SourcedEvent
from bank_catalog import GREEN_BOND_FUND, csv_text, trained_for
from bootstrap import ApiParts, load_settings
from domain.catalog import parse_catalog
from domain.features import FeatureParams
from schemas.events import CustomerProfileUpdated, DepositPosted
from services.api.app import create_app

AGENT = {"X-API-Key": "dev-agent"}
CUSTOMER = "C000000077"
NOW = datetime.now(timezone.utc)
#: A small bank: every product fits the customer below on the call centre, so each one the
#: catalog has is offered.
SMALL = ("demand_deposit", "time_deposit_1y", "bond_fund", "mixed_fund", "money_market_fund", "mobile_banking")
FIRST = csv_text(SMALL)
#: The bank retires the bond fund and launches a green bond fund.
CHANGED = csv_text(tuple(p for p in SMALL if p != "bond_fund"), (GREEN_BOND_FUND,))
#: An edit with a risk level outside R1..R5 on line 7.
BAD = csv_text(tuple(p for p in SMALL if p != "bond_fund"), (GREEN_BOND_FUND.replace(",fund,2,", ",fund,9,"),))
#: Room for every offer of the small catalog on the call centre.
ROOM = {"daily_caps": {"call_centre": 10}, "daily_cap_total": 10}


class Api:
    def __init__(self, trained: bool) -> None:
        store = MemoryStateStore()
        events = [
            CustomerProfileUpdated(event_id="ev-cat-1", customer_id=CUSTOMER, occurred_at=NOW - timedelta(days=300),
                                   source="core_banking", birth_year=1980, risk_tolerance=3, employment="salaried"),
            DepositPosted(event_id="ev-cat-2", customer_id=CUSTOMER, occurred_at=NOW - timedelta(days=5),
                          source="core_banking", kind="deposit", amount_minor=5_000_000, channel="counter",
                          purpose="salary", balance_after_minor=5_000_000),
        ]
        store.apply_batch([SourcedEvent(e, "events", 0, i) for i, e in enumerate(events)], FeatureParams(),
                          time.time())
        first = parse_catalog(FIRST, "mybank.csv")
        self.catalogs = MemoryCatalogSource(first, "mybank.csv")
        registry = MemoryRegistry()
        if trained:
            registry.save(trained_for(first), version="v-mybank")
            registry.promote("v-mybank", first)
        settings = load_settings(api={"allow_dev_keys": True}, catalog={"poll_s": 0.02})
        self.parts = ApiParts(settings=settings, catalog=first, catalogs=self.catalogs, store=store.reader(),
                              models=ModelHolder(registry, self.catalogs), publisher=MemoryPublisher(),
                              policies=MemoryPolicySource(ROOM), params=FeatureParams(),
                              decisions=MemoryDecisionCache())
        self.client = TestClient(create_app(settings, self.parts))

    def offers(self) -> dict[str, Any]:
        response = self.client.get(f"/v1/customers/{CUSTOMER}/offers", params={"channel": "call_centre", "limit": 10},
                                   headers=AGENT)
        assert response.status_code == 200, response.text
        return response.json()

    def offered(self) -> set[str]:
        return {o["product_id"] for o in self.offers()["offers"]}

    def ready(self) -> dict[str, Any]:
        return self.client.get("/readyz").json()


def wait_for(condition: Callable[[], Any], deadline_s: float, what: str) -> Any:
    deadline = time.monotonic() + deadline_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.01)
    return value


def test_offers_come_only_from_the_catalog_in_force_and_readyz_names_it():
    api = Api(trained=False)
    with api.client:
        assert api.offered() == set(SMALL)
        ready = api.ready()
    first = parse_catalog(FIRST)
    assert ready["catalog_hash"] == first.content_hash()[:12] and ready["catalog_products"] == len(SMALL)
    assert ready["catalog_refused"] is False and "model_catalog_hash" not in ready
    assert ready["model"] == "popularity"


def test_a_retired_product_leaves_and_a_launched_one_is_offered_within_the_poll_interval():
    api = Api(trained=True)
    with api.client:
        assert "bond_fund" in api.offered() and api.ready()["model"] == "v-mybank"
        api.catalogs.set(CHANGED)
        wait_for(lambda: "green_bond_fund" in api.offered(), 5, "the launched product in the offers")
        body = api.offers()
        ready = api.ready()
        retired = api.client.post("/v1/outcomes", headers=AGENT, json={
            "decision_id": body["decision_id"], "customer_id": CUSTOMER, "product_id": "bond_fund",
            "channel": "call_centre", "outcome": "declined", "decline_reason": "too_expensive"})
    offered = {o["product_id"]: o for o in body["offers"]}
    assert set(offered) == set(SMALL) - {"bond_fund"} | {"green_bond_fund"}
    # The model trained for the first catalog keeps serving; the product it never saw is marked new.
    assert body["model_version"] == "v-mybank" and ready["model"] == "v-mybank"
    new = offered["green_bond_fund"]
    assert "new_product" in new["reason_codes"] and new["reason_facts"]["propensity_from"] == "family_mean"
    assert new["propensity"] > 0
    assert all("new_product" not in o["reason_codes"] for pid, o in offered.items() if pid != "green_bond_fund")
    assert ready["catalog_hash"] == parse_catalog(CHANGED).content_hash()[:12]
    assert ready["model_catalog_hash"] == parse_catalog(FIRST).content_hash()[:12]
    assert ready["catalog_products"] == len(SMALL)
    assert retired.status_code == 404 and "not in the catalog" in retired.json()["detail"]


def test_a_bad_edit_is_refused_and_the_catalog_in_force_keeps_serving():
    api = Api(trained=False)
    with api.client:
        api.catalogs.set(CHANGED)
        wait_for(lambda: "green_bond_fund" in api.offered(), 5, "the good edit served")
        api.catalogs.set(BAD)
        ready = wait_for(lambda: (r := api.ready())["catalog_refused"] and r, 5, "the bad edit refused")
        offered = api.offered()
        metrics = api.client.get("/metrics").text
    assert offered == set(SMALL) - {"bond_fund"} | {"green_bond_fund"}
    assert ready["catalog_hash"] == parse_catalog(CHANGED).content_hash()[:12]
    assert api.catalogs.refusal == "mybank.csv:7: risk_level must be in [1, 5], got 9"
    assert "nbo_catalog_file_refused 1.0" in metrics
