"""The bank's own catalog through ``NBO_CATALOG__PATH``, against the real Redis and broker: the
API offers only its products and says which catalog it serves; an edit of the file is served
within the poll interval (a retired product gone, a launched one offered) and a bad edit is
refused while the catalog in force keeps serving; ``nbo train`` with the same setting trains a
model the API then serves, and an API on another catalog refuses that model."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
from fastapi.testclient import TestClient

from adapters import keys
from adapters.redis_store import encode_state
from bank_catalog import BANK_IDS, GREEN_BOND_FUND, csv_text, save, without
from bootstrap.settings import load_settings
from domain.catalog import parse_catalog
from domain.features import apply
from domain.state import CustomerState
from schemas.events import CustomerProfileUpdated, DepositPosted
from services.api.app import create_app
from services.cli import main

AGENT = {"X-API-Key": "dev-agent"}
SMALL = ("demand_deposit", "time_deposit_1y", "bond_fund", "mixed_fund", "money_market_fund", "mobile_banking")
ROOM = {"daily_caps": {"call_centre": 10}, "daily_cap_total": 10}


def settings_for(servers, key_prefix: str, tmp_path: Path, catalog_path: Path, **api: Any):
    levers = tmp_path / "levers.json"
    levers.write_text(json.dumps(ROOM), encoding="utf-8")
    return load_settings(
        data_dir=tmp_path,
        kafka={"bootstrap": servers.kafka_bootstrap},
        redis={"url": servers.redis_url, "key_prefix": key_prefix, "timeout_ms": 500},
        api={"allow_dev_keys": True, "levers_file": levers, **api},
        catalog={"path": catalog_path, "poll_s": 0.05},
    )


def seed_customer(settings, customer_id: str) -> None:
    now = datetime.now(timezone.utc)
    state = apply(CustomerState(customer_id), CustomerProfileUpdated(
        event_id=f"ev-{uuid.uuid4().hex}", customer_id=customer_id, occurred_at=now, source="core_banking",
        birth_year=1980, risk_tolerance=3, employment="salaried"))
    state = apply(state, DepositPosted(event_id=f"ev-{uuid.uuid4().hex}", customer_id=customer_id, occurred_at=now,
                                       source="core_banking", kind="deposit", amount_minor=5_000_000,
                                       channel="counter", purpose="salary", balance_after_minor=5_000_000))
    client = redis.Redis.from_url(settings.redis.url)
    client.hset(keys.state_key(settings.redis.key_prefix, customer_id), mapping={"state": encode_state(state), "v": 1})


def offered(client: TestClient, customer_id: str) -> set[str]:
    response = client.get(f"/v1/customers/{customer_id}/offers", params={"channel": "call_centre", "limit": 10},
                          headers=AGENT)
    assert response.status_code == 200, response.text
    return {o["product_id"] for o in response.json()["offers"]}


def wait_for(condition: Callable[[], Any], deadline_s: float, what: str) -> Any:
    deadline = time.monotonic() + deadline_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.02)
    return value


def test_the_api_serves_the_file_the_setting_names_and_follows_its_edits(servers, key_prefix, tmp_path,
                                                                        unique_customer_id):
    path = tmp_path / "mybank.csv"
    save(path, csv_text(SMALL))
    settings = settings_for(servers, key_prefix, tmp_path, path)
    seed_customer(settings, unique_customer_id)
    with TestClient(create_app(settings)) as client:
        assert offered(client, unique_customer_id) == set(SMALL)
        ready = client.get("/readyz").json()
        assert ready["catalog_hash"] == parse_catalog(path.read_text()).content_hash()[:12]
        assert ready["catalog_products"] == len(SMALL) and ready["catalog_refused"] is False

        changed = csv_text(without("bond_fund", SMALL), (GREEN_BOND_FUND,))
        save(path, changed)
        started = time.monotonic()
        wait_for(lambda: "green_bond_fund" in offered(client, unique_customer_id), 5, "the edit served")
        took_s = time.monotonic() - started
        assert offered(client, unique_customer_id) == set(SMALL) - {"bond_fund"} | {"green_bond_fund"}
        assert client.get("/readyz").json()["catalog_hash"] == parse_catalog(changed).content_hash()[:12]

        save(path, changed.replace(",fund,2,", ",fund,9,"))  # risk level R9: refused
        wait_for(lambda: client.get("/readyz").json()["catalog_refused"], 5, "the bad edit refused")
        assert offered(client, unique_customer_id) == set(SMALL) - {"bond_fund"} | {"green_bond_fund"}
        assert client.get("/readyz").json()["catalog_hash"] == parse_catalog(changed).content_hash()[:12]
    assert took_s < 2  # a few poll intervals of 0.05 s, on a busy machine


def test_a_model_trained_with_the_setting_is_served_and_an_api_on_another_catalog_refuses_it(
        servers, key_prefix, tmp_path, monkeypatch, capsys):
    bank = tmp_path / "mybank.csv"
    save(bank, csv_text())
    other = tmp_path / "otherbank.csv"
    save(other, csv_text(without("mobile_banking")))
    registry = tmp_path / "models"
    monkeypatch.setenv("NBO_CATALOG__PATH", str(bank))
    monkeypatch.setenv("NBO_MODEL__REGISTRY_DIR", str(registry))
    # 1,500 simulated customers hold too few purchases for the promotion gate; this test is about
    # the catalog the model was trained for, so the promotion is forced (and recorded as such).
    assert main(["train", "--customers", "1500", "--days", "30", "--seed", "3", "--promote", "--force",
                 "--json"]) == 0
    version = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["version"]

    served = settings_for(servers, key_prefix, tmp_path, bank, model_poll_s=0.05)
    assert served.registry_dir == registry
    with TestClient(create_app(served)) as client:
        ready = client.get("/readyz").json()
    assert ready["model"] == version
    assert ready["catalog_hash"] == parse_catalog(bank.read_text()).content_hash()[:12]
    assert ready["catalog_products"] == len(BANK_IDS) and "model_catalog_hash" not in ready

    elsewhere = settings_for(servers, key_prefix, tmp_path, other)
    with TestClient(create_app(elsewhere)) as client:
        ready = client.get("/readyz").json()
    assert ready["model"] == "popularity"  # trained for another catalog: refused, the prior serves
    assert ready["catalog_hash"] == parse_catalog(other.read_text()).content_hash()[:12]
    assert ready["catalog_products"] == len(BANK_IDS) - 1
