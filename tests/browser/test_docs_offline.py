"""The offer API's documentation on a machine without internet: ``/docs`` (Swagger UI) and
``/redoc`` (ReDoc) render from the assets the API serves itself, with every request to a host other
than loopback refused, and ``/`` leads to them. The OpenAPI document gives every operation a
summary and a description, and its examples are valid requests and responses.

Headless Debian ``chromium`` driven by Playwright, as in ``test_agent_screen.py``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from bootstrap import load_settings
from services.api import models
from services.api.app import create_app
from services.stack import Stack

LOOPBACK = {"127.0.0.1"}


@pytest.fixture
def offline_page(browser):  # type: ignore[no-untyped-def]
    """A page whose every request to a host other than 127.0.0.1 is aborted; ``page.left_loopback``
    lists those requests."""
    page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="en-US")
    left: list[str] = []

    def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            left.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", only_loopback)
    page.left_loopback = left
    try:
        yield page
    finally:
        page.close()


def _spec() -> dict:
    return TestClient(create_app(load_settings(api={"allow_dev_keys": True}))).get("/openapi.json").json()


def test_swagger_ui_renders_every_operation_with_the_network_cut_off(stack: Stack, offline_page):
    page = offline_page
    page.goto(f"{stack.api_url}/")
    assert urlsplit(page.url).path == "/docs", "/ leads to the API documentation"

    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible(timeout=15_000)
    paths = sorted({(op["summary"], path) for path, item in _spec()["paths"].items() for op in item.values()})
    assert operations.count() == len(paths)
    teller = page.locator(".opblock", has_text="/v1/teller/offers")
    expect(teller).to_contain_text("The one offer for the customer at the counter")

    # Opening an operation shows its description and the example request body.
    teller.locator(".opblock-summary").click()
    expect(teller).to_contain_text("The transaction in hand (amount in integer minor units")
    expect(teller.locator(".body-param__example, .microlight").first).to_contain_text("amount_minor")
    assert page.left_loopback == [], f"the docs page reached beyond loopback: {page.left_loopback}"


def test_redoc_renders_the_operations_with_the_network_cut_off(stack: Stack, offline_page):
    page = offline_page
    page.goto(f"{stack.api_url}/redoc")
    outcomes = page.locator("h2", has_text="Record what became of an offer")
    expect(outcomes).to_be_visible(timeout=15_000)
    expect(page.locator("h2", has_text="The one offer for the customer at the counter")).to_be_visible()
    expect(page.get_by_text("Answers 202 once the broker has acknowledged").first).to_be_visible()
    assert page.left_loopback == [], f"the ReDoc page reached beyond loopback: {page.left_loopback}"


def test_every_operation_has_a_summary_and_a_description():
    missing = [f"{method.upper()} {path}" for path, item in _spec()["paths"].items() for method, op in item.items()
               if not op.get("summary") or len(op.get("description", "")) < 40]
    assert missing == []


@pytest.mark.parametrize("name", ["TellerRequest", "DeclinedOutcome", "OtherOutcome", "OfferResponse",
                                  "SlotsResponse", "OutcomeAck", "Problem"])
def test_the_documented_examples_are_valid_bodies(name):
    schema = _spec()["components"]["schemas"][name]
    assert schema.get("examples"), f"{name} has no example in the OpenAPI document"
    for example in schema["examples"]:
        getattr(models, name).model_validate(example)
