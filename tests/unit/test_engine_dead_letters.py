"""What the engine core refuses beyond the codec (products the catalog does not know) and what a
dead letter, and its log line, may show: no card-number-like digits, no free text."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from adapters.fakes import MemoryStateStore
from domain.catalog import load_catalog
from domain.features import FeatureParams
from schemas.codec import encode
from schemas.events import OfferOutcomeRecorded, ProductPurchased
from schemas.topics import DEPOSITS, HOTLINE, OFFER_OUTCOMES, PURCHASES
from streams.core import BatchHandler, KnownProducts, dead_letter, split_batch
from streams.masking import mask_card_numbers

P = FeatureParams()
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
CATALOG = load_catalog()
PRODUCTS = KnownProducts.of(CATALOG)
KNOWN = next(iter(CATALOG)).product_id
PAN = "4111111111111111"
FREE_TEXT = "caller Zhang Wei read out card 4111-1111-1111-1111, lives at 8 Jianguo Road"


def purchase(customer_id: str, product_id: str, i: int = 0) -> ProductPurchased:
    return ProductPurchased(event_id=f"ev-{customer_id}-p{i}", customer_id=customer_id,
                            occurred_at=T0 + timedelta(minutes=i), source="core_banking",
                            product_id=product_id, channel="branch")


def outcome(customer_id: str, product_id: str) -> OfferOutcomeRecorded:
    return OfferOutcomeRecorded(event_id=f"ev-{customer_id}-o", customer_id=customer_id, occurred_at=T0,
                                source="teller", decision_id="d-abcdef12", product_id=product_id,
                                channel="teller", outcome="accepted")


def hotline(customer_id: str, **extra: object) -> bytes:
    return orjson.dumps({"event_id": f"ev-{customer_id}-h", "schema_version": 1, "customer_id": customer_id,
                         "occurred_at": "2026-05-01T08:00:00Z", "source": "cti", "type": "hotline",
                         "intent": "lost_card", "duration_s": 60, "resolved": True, "sentiment": 0.1, **extra})


def digits_only(text: str | bytes) -> str:
    """The text with every separator a card number may carry removed, so a PAN written with
    spaces or dashes is still found."""
    return re.sub(r"[ \-]", "", text.decode("utf-8", "replace") if isinstance(text, bytes) else text)


def test_a_purchase_of_a_product_the_catalog_does_not_know_is_dead_lettered_and_a_known_one_applied():
    raw = [(PURCHASES, 0, 1, b"C000000001", encode(purchase("C000000001", "moon_bond", 1))),
           (PURCHASES, 0, 2, b"C000000001", encode(purchase("C000000001", KNOWN, 2))),
           (OFFER_OUTCOMES, 1, 3, b"C000000002", encode(outcome("C000000002", "moon_bond")))]

    good, bad = split_batch(raw, PRODUCTS)

    assert [(s.offset, s.event.product_id) for s in good] == [(2, KNOWN)]
    assert [(d.topic, d.offset, d.field) for d in bad] == [(PURCHASES, 1, "product_id"), (OFFER_OUTCOMES, 3, "product_id")]
    for letter in bad:
        assert "'moon_bond' is not in the catalog" in letter.reason
        assert CATALOG.content_hash()[:12] in letter.reason


def test_without_a_catalog_the_core_checks_only_the_contract():
    good, bad = split_batch([(PURCHASES, 0, 1, b"C000000001", encode(purchase("C000000001", "moon_bond")))])
    assert len(good) == 1 and bad == []


def test_the_handler_sends_unknown_products_to_the_dead_letter_topic_and_applies_nothing_of_them():
    store, sent = MemoryStateStore(), []

    async def send(letters):
        sent.extend(letters)

    handler = BatchHandler(store, P, send, retries=0, products=PRODUCTS, clock_s=lambda: 1_800_000_000.0)
    asyncio.run(handler.handle([(PURCHASES, 0, 1, b"C000000003", encode(purchase("C000000003", "moon_bond")))]))

    assert [d.field for d in sent] == ["product_id"]
    assert store.get("C000000003") is None  # no holding named by a raw id
    assert store.counters()["dead_letters"] == 1


@pytest.mark.parametrize("written", [PAN, "4111 1111 1111 1111", "4111-1111-1111-1111", "1234567890123",
                                     "6212345678901234567"])
def test_card_number_like_runs_are_masked_to_the_last_four_digits_luhn_valid_or_not(written):
    masked = mask_card_numbers(f"id {written}.")
    assert masked == f"id ****{written[-4:]}."


@pytest.mark.parametrize("kept", ["C000000042", "s1-1767225600-0000000042", "2026-05-01T08:00:00Z",
                                  "balance 523000000000", "12345678901234567890"])
def test_ids_times_amounts_and_longer_runs_are_not_card_numbers(kept):
    assert mask_card_numbers(kept) == kept


@pytest.mark.parametrize("name, raw", [
    ("PAN as customer id, refused for a free-text field",
     (HOTLINE, 0, 7, f"C{PAN}".encode(), hotline(f"C{PAN}", notes=FREE_TEXT))),
    ("PAN as the key, spaced", (HOTLINE, 0, 8, b"4111 1111 1111 1111", hotline("C000000042"))),
    ("PAN as the event type", (HOTLINE, 0, 9, b"C000000042", orjson.dumps({"type": PAN, "customer_id": "C000000042"}))),
    ("free text as the event type", (HOTLINE, 0, 10, b"C000000042", orjson.dumps({"type": FREE_TEXT}))),
    ("short free text as the event type", (HOTLINE, 0, 10, b"C000000042", orjson.dumps({"type": "Zhang Wei"}))),
    ("free text as the key", (HOTLINE, 0, 10, b"Zhang Wei", hotline("C000000042"))),
    ("PAN as a number", (DEPOSITS, 0, 11, b"C000000042", orjson.dumps({"type": "deposit", "amount_minor": int(PAN)}))),
    ("PAN in a field name", (DEPOSITS, 0, 12, b"C000000042", orjson.dumps({"type": "deposit", PAN: 1}))),
    ("not JSON", (DEPOSITS, 0, 13, f"C{PAN}".encode(), f"card={PAN};note={FREE_TEXT}".encode())),
])
def test_a_dead_letter_shows_no_card_number_and_no_free_text_in_its_key_reason_or_body(name, raw):
    good, [letter] = split_batch([raw], PRODUCTS)
    body = letter.to_json()

    for shown in (letter.key or b"", letter.reason, letter.field or "", body):
        assert PAN not in digits_only(shown), name
        assert "Zhang Wei" not in (shown.decode() if isinstance(shown, bytes) else shown), name
    data = orjson.loads(body)
    assert data["value_sha256"] == hashlib.sha256(raw[4]).hexdigest()  # support can match the source record
    assert data["value_size"] == len(raw[4]) and data["original"] is False
    assert "value_b64" not in data and "key_b64" not in data
    assert data["source"] == {"topic": raw[0], "partition": 0, "offset": raw[2]}


def test_the_masked_body_keeps_what_support_needs_to_see():
    raw = (HOTLINE, 0, 7, f"C{PAN}".encode(), hotline(f"C{PAN}", notes=FREE_TEXT))
    [letter] = split_batch([raw])[1]
    data = orjson.loads(letter.to_json())
    assert data["key"] == "C****1111" and letter.key == b"C****1111"
    assert data["value"]["customer_id"] == "C****1111"
    assert data["value"]["notes"] == f"<text, {len(FREE_TEXT)} chars>"
    assert (data["value"]["intent"], data["value"]["event_id"]) == ("lost_card", "ev-C****1111-h")
    # The id is a card number: refused first, and the reason says what to send instead.
    assert data["field"] == "customer_id" and "tokenised customer id" in data["reason"]


def test_keeping_the_originals_is_a_choice_and_the_reason_stays_masked():
    value = orjson.dumps({"type": PAN})
    letter = dead_letter(f"Input tag '{PAN}' does not match", "type", HOTLINE, 0, 1, PAN.encode(), value,
                         keep_original=True)
    data = orjson.loads(letter.to_json())
    assert data["original"] is True and letter.key == PAN.encode()
    assert base64.b64decode(data["value_b64"]) == value and base64.b64decode(data["key_b64"]) == PAN.encode()
    assert PAN not in data["reason"] and PAN not in str(data["value"])


def test_the_dead_letter_log_line_shows_no_card_number_or_free_text(caplog):
    store = MemoryStateStore()

    async def send(letters):
        pass

    handler = BatchHandler(store, P, send, retries=0, products=PRODUCTS)
    raw = [(HOTLINE, 0, 1, PAN.encode(), orjson.dumps({"type": f"{FREE_TEXT} {PAN}"})),
           (HOTLINE, 0, 2, f"C{PAN}".encode(), hotline(f"C{PAN}", transcript=FREE_TEXT))]
    with caplog.at_level(logging.DEBUG, logger="nbo"):
        asyncio.run(handler.handle(raw))

    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if line.startswith("dead-lettered")]) == 2
    for line in lines:
        assert PAN not in digits_only(line) and "Zhang Wei" not in line
