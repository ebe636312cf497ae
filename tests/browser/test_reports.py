"""The marketing report page (``/reports``) in headless Chromium, against the running worker and
offer API on the real broker and Redis: decisions, answers and purchases with a known effect go
through the broker and the worker's counters, and the page, opened with the marketing key, shows
every product the API reports, the lift's verdict in English and, after the switch, in Chinese,
and asks nothing of any host but the API's. A screenshot is saved to artifacts/reports.png.

Debian's ``chromium`` driven by Playwright, as in ``test_agent_screen.py``."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from reportkit import days_ago, effect_records, oracle_rows
from services.commands.simulate import publish
from services.stack import Stack

MARKETING = "dev-marketing"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
START = days_ago(60)  # days no other test shows offers on
SPAN = {"from": START.date().isoformat(), "to": (START.date() + timedelta(days=14)).isoformat()}


@pytest.fixture(scope="module")
def report(stack: Stack) -> dict:
    """The API's report of the range once the worker counted every record published for it."""
    records = effect_records(1_500, seed=31, first=730_000_000, start=START)
    publish([r.value for r in records], stack.servers.kafka_bootstrap)
    shows = sum(r.shows for r in oracle_rows(records))
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=stack.api_url, timeout=10, headers={"X-API-Key": MARKETING}) as client:
        while True:
            body = client.get("/v1/reports/effectiveness", params=SPAN).json()
            if body["overall"]["total"]["shows"] == shows and body["overall"]["total"]["conversions"] == sum(
                    r.conversions for r in oracle_rows(records)):
                return body
            assert time.monotonic() < deadline, f"the worker did not count the records within 120 s: {body['overall']}"
            time.sleep(0.2)


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    """A page whose every request to a host other than 127.0.0.1 is aborted and listed."""
    opened = browser.new_page(viewport={"width": 1366, "height": 900}, locale="en-US")
    left: list[str] = []

    def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort("internetdisconnected")

    opened.route("**/*", only_loopback)
    opened.left_loopback = left
    try:
        yield opened
    finally:
        opened.close()


def _open(stack: Stack, page, params: dict, key: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{stack.api_url}/reports?from={params['from']}&to={params['to']}#key={key}")


def test_marketing_reads_the_products_and_the_verdict_in_english_and_chinese(stack, page, report):
    _open(stack, page, SPAN, MARKETING)
    rows = page.locator("[data-testid=product-row]")
    rows.first.wait_for(timeout=15_000)
    products = [g["key"] for g in report["by"]["product"]]
    assert rows.count() == len(products) == 4
    assert [rows.nth(i).get_attribute("data-product") for i in range(rows.count())] == products
    assert MARKETING not in page.url, "the key leaves the address bar"

    verdict = page.locator("[data-testid=verdict]")
    assert verdict.inner_text() == report["overall"]["lift"]["text"]
    fund = page.locator("[data-testid=product-row][data-product=fund_sip]")
    fund_lift = next(g for g in report["by"]["product"] if g["key"] == "fund_sip")["lift"]
    assert fund_lift["verdict"] == "significant"  # 30 % against 10 % in the traffic
    assert fund.locator("[data-testid=product-verdict]").inner_text() == fund_lift["text"]
    assert fund.locator("td").first.inner_text() == "Monthly fund SIP"
    assert f"{report['overall']['total']['shows']:,}" in page.locator("[data-testid=shows]").inner_text()
    assert page.locator("#rate-chart svg rect").count() >= 8  # two arms per product
    assert page.locator("#lift-chart svg circle").count() == 4
    text = page.locator("main").inner_text()
    assert "undefined" not in text and "NaN" not in text and "null" not in text
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reports.png"), full_page=True)

    page.click("#lang")
    expect(page.locator("h2 >> text=各产品转化率：实验组与对照组")).to_be_visible()
    expect(fund.locator("[data-testid=product-verdict]")).to_have_text(
        f"显著：实验组转化率比对照组高{round(abs(fund_lift['lift']) * 100)}%"
        f"（95%置信区间 +{round(fund_lift['interval'][0] * 100)}% 至 +{round(fund_lift['interval'][1] * 100)}%）")
    assert verdict.inner_text().startswith(("显著：", "尚无定论："))
    assert fund.locator("td").first.inner_text() == "基金定投"
    page.screenshot(path=str(ARTIFACTS / "reports-zh.png"), full_page=True)
    assert page.left_loopback == [], f"the page reached beyond the API: {page.left_loopback}"


def test_a_channel_key_or_a_reversed_range_is_told_what_to_fix(stack, page):
    _open(stack, page, SPAN, "dev-teller")
    banner = page.locator("#banner")
    expect(banner).to_have_text("this API key is for the teller channel; the reports need a key of the marketing scope",
                                timeout=15_000)
    assert page.locator("#report").is_hidden()

    page.fill("#key", MARKETING)
    page.fill("#from", "2026-05-10")
    page.fill("#to", "2026-05-01")
    page.click("text=Show")
    expect(banner).to_contain_text("is before from (2026-05-10): give from <= to", timeout=15_000)
    assert page.left_loopback == []
