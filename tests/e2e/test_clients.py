"""The terminal clients against the running worker and offer API: ``nbo teller`` makes the one
offer with its pitch and records the answer (which flows through the broker and the worker back
into the customer's state), ``nbo mobile`` prints the slot payloads, and mistakes say what to fix."""

from __future__ import annotations

import json
import time

import httpx

from domain.catalog import load_catalog
from services.cli import main
from services.runtime import free_port
from services.stack import DEV_KEYS


def _offered(stack, customer_id: str, channel: str) -> list[str]:
    response = httpx.get(f"{stack.api_url}/v1/customers/{customer_id}/offers", params={"channel": channel},
                         headers={"X-API-Key": DEV_KEYS[channel]}, timeout=10)
    assert response.status_code == 200, response.text
    return [o["product_id"] for o in response.json()["offers"]]


def test_teller_offer_then_decline_holds_the_product_back(stack, unique_customer_id, capsys):
    code = main(["teller", "--api", stack.api_url, "--customer", unique_customer_id, "--deposit", "250000",
                 "--answer", "declined", "--reason", "not_interested"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "deposit of ¥250,000.00" in out
    offer_line = next(line for line in out.splitlines() if line.startswith("Offer: "))
    assert "Say:" in out and "话术:" in out
    assert "Recorded:" in out and "declined (not interested)" in out

    name = offer_line.removeprefix("Offer: ").split(" / ")[0]
    declined = next(p.product_id for p in load_catalog().products if p.name == name)

    # The answer reaches the customer's state through the outcomes topic and the worker.
    profile_url = f"{stack.api_url}/v1/call-centre/customers/{unique_customer_id}/profile"
    deadline = time.monotonic() + 30
    history: list = []
    while time.monotonic() < deadline:
        history = httpx.get(profile_url, headers={"X-API-Key": DEV_KEYS["call_centre"]}, timeout=10).json().get(
            "contact_history", [])
        if history:
            break
        time.sleep(0.1)
    assert [(h["product_id"], h["last_outcome"], h["decline_reason"]) for h in history] == [
        (declined, "declined", "not_interested")]
    assert declined not in _offered(stack, unique_customer_id, "teller")
    assert declined not in _offered(stack, unique_customer_id, "call_centre")


def test_mobile_prints_the_slot_payloads(stack, unique_customer_id, capsys):
    code = main(["mobile", unique_customer_id, "--slots", "4", "--api", stack.api_url])
    out, err = capsys.readouterr()
    assert code == 0, err
    body = json.loads(out)
    assert body["customer_id"] == unique_customer_id
    assert [s["slot"] for s in body["slots"]] == [1, 2, 3, 4]
    for slot in body["slots"]:
        assert slot["product_id"] and slot["creative_id"] and slot["title"]["zh"] and slot["reason"]["en"]

    assert main(["mobile", unique_customer_id, "--slots", "2", "--api", stack.api_url, "--table"]) == 0
    assert capsys.readouterr().out.count("slot ") == 2


def test_client_mistakes_say_what_to_fix(stack, capsys):
    assert main(["mobile", "not-a-customer", "--api", stack.api_url]) == 1
    assert "answered 422" in capsys.readouterr().err

    assert main(["mobile", "C000000001", "--api", stack.api_url, "--key", DEV_KEYS["teller"]]) == 1
    assert "teller channel" in capsys.readouterr().err

    assert main(["teller", "--api", stack.api_url, "--customer", "C000000001", "--deposit", "-5",
                 "--answer", "skip"]) == 1
    assert "must be positive" in capsys.readouterr().err

    assert main(["mobile", "C000000001", "--api", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach the offer API" in capsys.readouterr().err
