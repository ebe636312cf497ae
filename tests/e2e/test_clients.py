"""The terminal clients against the running worker and offer API: ``nbo teller`` makes the one
offer with its pitch and records the answer (which flows through the broker and the worker back
into the customer's state), ``nbo mobile`` prints the slot payloads, and mistakes say what to fix."""

from __future__ import annotations

import json
import time

import httpx
import pytest

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
    # A customer the bank knows nothing about gets only the cold-start products, so the app may
    # get fewer slots than it asked for: the client prints what the API answered, in order.
    asked = httpx.get(f"{stack.api_url}/v1/mobile/customers/{unique_customer_id}/slots", params={"n": 4},
                      headers={"X-API-Key": DEV_KEYS["mobile"]}, timeout=10).json()
    assert [s["product_id"] for s in body["slots"]] == [s["product_id"] for s in asked["slots"]]
    assert 1 <= len(body["slots"]) <= 4
    assert [s["slot"] for s in body["slots"]] == list(range(1, len(body["slots"]) + 1))
    for slot in body["slots"]:
        assert slot["product_id"] and slot["creative_id"] and slot["title"]["zh"] and slot["reason"]["en"]

    assert main(["mobile", unique_customer_id, "--slots", "1", "--api", stack.api_url, "--table"]) == 0
    assert capsys.readouterr().out.count("slot ") == 1


def test_client_mistakes_say_what_to_fix(stack, capsys):
    assert main(["mobile", "C4111111111111111", "--api", stack.api_url]) == 1
    err = capsys.readouterr().err
    assert "answered 422" in err and "tokenised" in err and "4111111111111111" not in err

    assert main(["mobile", "C000000001", "--api", stack.api_url, "--key", DEV_KEYS["teller"]]) == 1
    assert "teller channel" in capsys.readouterr().err

    assert main(["teller", "--api", stack.api_url, "--customer", "C000000001", "--deposit", "-5",
                 "--answer", "skip"]) == 1
    assert "must be positive" in capsys.readouterr().err

    assert main(["mobile", "C000000001", "--api", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach the offer API" in capsys.readouterr().err


def _teller_decisions(stack) -> float:
    """Offer decisions the API has made on the teller channel (its ``nbo_decisions_total``)."""
    text = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('nbo_decisions_total{channel="teller"'))


def _nbo(*args: str) -> list[str]:
    from services.runtime import nbo_command

    return nbo_command(*args)


def test_teller_without_a_terminal_refuses_a_decline_without_reason_before_asking_for_an_offer(stack,
                                                                                                unique_customer_id):
    import subprocess

    before = _teller_decisions(stack)
    refused = subprocess.run(_nbo("teller", "--api", stack.api_url, "--customer", unique_customer_id,
                                  "--deposit", "5000", "--answer", "declined"),
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "--answer declined needs --reason" in refused.stderr
    assert "Offer:" not in refused.stdout
    assert _teller_decisions(stack) == before, "a decision was logged for a session that could not finish"

    # The same session with the reason asks for the offer, and that is logged.
    done = subprocess.run(_nbo("teller", "--api", stack.api_url, "--customer", unique_customer_id,
                               "--deposit", "5000", "--answer", "declined", "--reason", "too_expensive"),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "declined (too expensive)" in done.stdout
    assert _teller_decisions(stack) == before + 1


def test_teller_at_a_terminal_asks_again_after_a_mistyped_answer(stack, unique_customer_id):
    """The session runs on a pseudo-terminal, as at a counter: the teller types a wrong letter."""
    import os
    import select
    import subprocess

    master, slave = os.openpty()
    session = subprocess.Popen(_nbo("teller", "--api", stack.api_url, "--customer", unique_customer_id,
                                    "--deposit", "250000"),
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    screen = ""

    def read_until(text: str, count: int = 1, deadline_s: float = 30) -> None:
        nonlocal screen
        deadline = time.monotonic() + deadline_s
        while screen.count(text) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {text!r}; the terminal shows:\n{screen}"
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                try:
                    screen += os.read(master, 4096).decode("utf-8", "replace")
                except OSError:  # the session ended and closed the terminal
                    assert session.poll() is None, f"the session ended early:\n{screen}"

    try:
        read_until("Customer's answer:")
        assert "Offer: " in screen
        os.write(master, b"x\n")
        read_until("try again.")
        read_until("Customer's answer:", count=2)
        os.write(master, b"n\n")
        read_until("Recorded:")
        assert session.wait(timeout=30) == 0, screen
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
        os.close(master)
    assert "answer a (accepted), d (declined), n (not now) or s (skip); try again." in screen
    assert "declined (bad timing)" in screen


def test_api_serves_on_the_port_given_with_port(servers, tmp_path):
    from services.runtime import ManagedProcess, child_env
    from services.stack import wait_http_ok

    port, configured = free_port(), free_port()
    env = child_env(servers, NBO_API__ALLOW_DEV_KEYS="true", NBO_API__PORT=str(configured),
                    NBO_DATA_DIR=str(tmp_path / "data"))
    api = ManagedProcess("api", _nbo("api", "--port", str(port)), tmp_path / "api.log", env=env)
    api.start()
    try:
        wait_http_ok(api, f"http://127.0.0.1:{port}/healthz", 60)
        response = httpx.get(f"http://127.0.0.1:{port}/v1/mobile/customers/C000000001/slots",
                             headers={"X-API-Key": DEV_KEYS["mobile"]}, timeout=10)
        assert response.status_code == 200, response.text
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{configured}/healthz", timeout=2)
    finally:
        api.stop()
