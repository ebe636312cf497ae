"""A small client of the offer API, shared by the terminal clients ``nbo teller`` and ``nbo mobile``.

It speaks the public HTTP contract (docs/API.md) and nothing else, so it is also a worked example
for a bank's own terminal or app integration. Every failure becomes a ``ClientError`` whose
message says what to do; the commands print it and exit non-zero, never with a traceback.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from bootstrap.settings import load_client_settings, load_settings
from services.stack import DEV_KEYS


class ClientError(Exception):
    """A request the offer API did not answer with success; ``str()`` says what to do."""


def default_api_url() -> str:
    """``NBO_API_URL`` if set, else the local API on ``NBO_API__PORT`` (what ``nbo demo`` serves)."""
    url = load_client_settings().api_url
    if url:
        return url.rstrip("/")
    return f"http://127.0.0.1:{load_settings().api.port}"


def key_for(channel: str, explicit: str | None) -> str:
    """The key given on the command line, else the channel's variable, else the demo's dev key."""
    return explicit or load_client_settings().key(channel) or DEV_KEYS[channel]


def yuan_to_minor(text: str) -> int:
    """``"5000"`` or ``"5,000.50"`` (yuan) -> minor units (fen); refuses zero, negatives and sub-fen."""
    try:
        amount = Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        raise ValueError(f"amount {text!r} is not a number of yuan, e.g. 5000 or 5000.50") from None
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"amount {text!r} must be positive with at most two decimals (fen)")
    return int(amount * 100)


class OfferApi:
    """The offer API at ``base_url``, called with one channel's API key."""

    def __init__(self, base_url: str, key: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers={"X-API-Key": key})

    def __enter__(self) -> "OfferApi":
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def teller_offer(self, customer_id: str, kind: str, amount_minor: int, terminal_id: str | None = None) -> dict:
        """The offer for a customer at the counter, with the transaction in hand (in the bank's base
        currency) folded in."""
        body: dict[str, Any] = {"customer_id": customer_id,
                                "transaction": {"kind": kind, "amount_minor": amount_minor}}
        if terminal_id:
            body["terminal_id"] = terminal_id
        return self._call("POST", "/v1/teller/offers", json=body)

    def mobile_slots(self, customer_id: str, slots: int) -> dict:
        return self._call("GET", f"/v1/mobile/customers/{customer_id}/slots", params={"n": slots})

    def record_outcome(self, offer_response: dict, product_id: str, outcome: str,
                       decline_reason: str | None = None) -> dict:
        """Records the customer's answer to one offer of ``offer_response`` (202 once the broker acked)."""
        body = {"decision_id": offer_response["decision_id"], "customer_id": offer_response["customer_id"],
                "product_id": product_id, "channel": offer_response["channel"], "outcome": outcome}
        if decline_reason is not None:
            body["decline_reason"] = decline_reason
        return self._call("POST", "/v1/outcomes", json=body)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the offer API at {self.base_url} ({type(exc).__name__}): is it "
                              "running? Start it with `nbo demo`, or pass --api URL") from None
        if response.is_success:
            return response.json()
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        retry = f" (retry after {response.headers['Retry-After']} s)" if "Retry-After" in response.headers else ""
        raise ClientError(f"the offer API answered {response.status_code}: {detail}{retry}")
