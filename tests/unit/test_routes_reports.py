"""The effectiveness report at the API, on the fakes: a key of the marketing scope reads it (a
channel key gets 403, and the marketing key opens no channel route), the numbers are those of
the counters the store settled from decisions, answers and purchases, and a bad range is a 422
that says what to fix."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from adapters.fakes import FixedModels, MemoryDecisionCache, MemoryPolicySource, MemoryPublisher, MemoryStateStore
from adapters.ports import SourcedEvent
from bootstrap import ApiParts, load_settings
from domain.catalog import load_catalog
from domain.features import FeatureParams
from recommender.effectiveness import effectiveness
from recommender.model import PriorModel
from reportkit import days_ago, effect_records, oracle_rows
from schemas.codec import decode
from services.api.app import create_app

CATALOG = load_catalog()
MARKETING = {"X-API-Key": "dev-marketing"}
PATH = "/v1/reports/effectiveness"
START = days_ago(20)
RECORDS = effect_records(400, seed=5, first=700_000_000, start=START)


def app_with(stats) -> TestClient:
    settings = load_settings(api={"allow_dev_keys": True})
    parts = ApiParts(settings=settings, catalog=CATALOG, store=MemoryStateStore().reader(),
                     models=FixedModels(PriorModel(CATALOG)), publisher=MemoryPublisher(),
                     policies=MemoryPolicySource({}), params=FeatureParams(), decisions=MemoryDecisionCache(),
                     loop_stats=stats)
    return TestClient(create_app(settings, parts))


@pytest.fixture(scope="module")
def client():
    store = MemoryStateStore()
    events = [SourcedEvent(decode(r.value), r.topic, 0, i) for i, r in enumerate(RECORDS)]
    store.settle(store.apply_batch(events, FeatureParams(), time.time()).units, time.time())
    with app_with(store.loop_stats()) as test_client:
        yield test_client


def span() -> dict[str, str]:
    return {"from": START.date().isoformat(), "to": (START.date() + timedelta(days=14)).isoformat()}


def test_the_marketing_key_reads_the_report_of_the_settled_counters(client):
    response = client.get(PATH, params=span(), headers=MARKETING)
    assert response.status_code == 200, response.text
    body = response.json()
    want = effectiveness(oracle_rows(RECORDS), CATALOG, START.date(), START.date() + timedelta(days=14)).to_dict()
    assert body == want
    products = {g["key"]: g for g in body["by"]["product"]}
    assert set(products) == {"fund_sip", "credit_card_gold", "consumer_loan", "accident_insurance"}
    assert products["fund_sip"]["top_declines"][0]["reason"] == "too_expensive"
    assert body["overall"]["arms"]["treatment"]["shows"] > body["overall"]["arms"]["control"]["shows"] > 0
    assert body["currency"] == {"code": "CNY", "minor_unit_exponent": 2}


def test_without_a_range_the_report_covers_the_last_30_days(client):
    body = client.get(PATH, headers=MARKETING).json()
    today = date.today()
    assert (date.fromisoformat(body["to"]) - date.fromisoformat(body["from"])).days == 29
    assert abs((date.fromisoformat(body["to"]) - today).days) <= 1  # today in UTC
    assert body["overall"]["total"]["shows"] == sum(r.shows for r in oracle_rows(RECORDS))


@pytest.mark.parametrize("key, status, detail", [
    (None, 401, "missing API key"),
    ("not-a-key", 401, "unknown API key"),
    ("dev-teller", 403, "this API key is for the teller channel; the reports need a key of the marketing scope"),
    ("dev-agent", 403, "the reports need a key of the marketing scope"),
])
def test_only_a_marketing_key_opens_the_report(client, key, status, detail):
    response = client.get(PATH, params=span(), headers={"X-API-Key": key} if key else {})
    assert response.status_code == status and detail in response.json()["detail"]


def test_the_marketing_key_opens_no_offer_or_outcome(client):
    teller = client.post("/v1/teller/offers", headers=MARKETING,
                         json={"customer_id": "C000000001", "transaction": {"kind": "deposit", "amount_minor": 100}})
    assert teller.status_code == 403
    assert teller.json()["detail"] == "this API key is for the marketing reports, not the teller channel"
    generic = client.get("/v1/customers/C000000001/offers", params={"channel": "mobile"}, headers=MARKETING)
    assert generic.status_code == 403


@pytest.mark.parametrize("params, detail", [
    ({"from": "2026-05-10", "to": "2026-05-01"}, "to (2026-05-01) is before from (2026-05-10): give from <= to"),
    ({"from": "2025-01-01", "to": "2026-05-01"}, "the range holds 486 days; a report covers at most 400"),
    ({"from": "2026-5-1"}, "from: '2026-5-1' is not a day; write it as YYYY-MM-DD (a UTC day)"),
    ({"to": "yesterday"}, "to: 'yesterday' is not a day; write it as YYYY-MM-DD"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, "from: '2026-02-30' is not a day"),
])
def test_a_bad_range_is_a_422_that_says_what_to_fix(client, params, detail):
    response = client.get(PATH, params=params, headers=MARKETING)
    assert response.status_code == 422 and detail in response.json()["detail"]


class Broken:
    def counts(self, day_from, day_to):
        raise ConnectionError("Connection refused")

    def close(self) -> None:
        pass


def test_counters_that_cannot_be_read_are_a_503_that_says_so():
    with app_with(Broken()) as client:
        response = client.get(PATH, headers=MARKETING)
    assert response.status_code == 503
    assert response.json()["detail"] == ("the loop counters could not be read (ConnectionError: Connection refused); "
                                         "retry")


def test_the_page_is_served_with_its_own_assets_only(client):
    page = client.get("/reports")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert '<script src="/static/reports.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
    for asset in ("/static/reports.js", "/static/reports.css"):
        served = client.get(asset)
        text = served.text.replace('"http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
        assert served.status_code == 200 and "https://" not in text and "http://" not in text
    assert "/v1/reports/effectiveness" in client.get("/static/reports.js").text


def test_the_openapi_document_describes_the_report_and_its_key():
    spec = app_with(None).get("/openapi.json").json()
    operation = spec["paths"][PATH]["get"]
    assert operation["tags"] == ["reports"] and "marketing" in operation["description"]
    assert {"401", "403", "422", "503"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == ["from", "to"]
