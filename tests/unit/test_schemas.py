"""The event contract: every event round-trips; invalid input is always refused naming the field,
valid input always accepted; the exported JSON Schema files are current and agree with decode."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import MAX_EVENT_BYTES, InvalidEvent, decode, encode, encode_columns
from schemas.events import (
    EVENT_TYPES,
    MAX_AMOUNT_MINOR,
    CardPaymentMade,
    DeclineReason,
    HotlineIntent,
    MerchantCategory,
    OfferChannel,
    PurchaseChannel,
    TxnChannel,
    TxnKind,
    TxnPurpose,
    merchant_category_for_mcc,
)
from schemas.export import JSON_DIR, render, stale
from schemas.topics import ALL_TOPICS, INPUT_TOPICS, TOPIC_FOR_TYPE, partition_key

NOW = datetime.now(timezone.utc)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- valid events ---------------------------------------------------------------------------

alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
event_ids = st.text(alphabet=alnum, min_size=1, max_size=1).flatmap(
    lambda first: st.text(alphabet=alnum + "_.:-", min_size=7, max_size=63).map(lambda rest: first + rest))
customer_ids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=9, max_size=31).map(lambda s: "C" + s)
times = st.datetimes(min_value=datetime(2000, 1, 2), max_value=NOW.replace(tzinfo=None),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=8))]))
amounts = st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR)
product_ids = st.from_regex(r"\A[a-z][a-z0-9_]{1,47}\Z")
decision_ids = st.from_regex(r"\Ad-[A-Za-z0-9_-]{6,60}\Z")
unit = st.floats(min_value=-1, max_value=1, allow_nan=False)


def envelope(type_name: str) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({
        "event_id": event_ids, "customer_id": customer_ids,
        "occurred_at": times.map(lambda t: t.isoformat()), "source": st.from_regex(r"\A[a-z][a-z0-9_.-]{1,31}\Z"),
        "type": st.just(type_name),
    })


def merge(type_name: str, body: dict) -> st.SearchStrategy[dict]:
    return st.tuples(envelope(type_name), st.fixed_dictionaries(body)).map(lambda pair: {**pair[0], **pair[1]})


def enum(cls) -> st.SearchStrategy[str]:  # type: ignore[no-untyped-def]
    return st.sampled_from([m.value for m in cls])


VALID = {
    "deposit": merge("deposit", {
        "kind": enum(TxnKind), "amount_minor": amounts, "channel": enum(TxnChannel), "purpose": enum(TxnPurpose),
        "branch_id": st.none() | st.from_regex(r"\A[A-Z0-9]{2,16}\Z"),
        "balance_after_minor": st.integers(min_value=-MAX_AMOUNT_MINOR, max_value=10 * MAX_AMOUNT_MINOR)}),
    "hotline": merge("hotline", {
        "intent": enum(HotlineIntent), "duration_s": st.integers(0, 36_000), "resolved": st.booleans(),
        "sentiment": unit}),
    "pos": merge("pos", {
        "card_token": st.from_regex(r"\Atok_[A-Za-z0-9]{8,40}\Z"), "mcc": st.from_regex(r"\A[0-9]{4}\Z"),
        "hotel_stars": st.integers(0, 5), "luxury": st.booleans(), "amount_minor": amounts,
        "online": st.booleans(), "country": st.from_regex(r"\A[A-Z]{2}\Z")}),
    "purchase": merge("purchase", {
        "product_id": product_ids, "amount_minor": st.integers(0, MAX_AMOUNT_MINOR),
        "channel": enum(PurchaseChannel), "decision_id": st.none() | decision_ids}),
    "offer_outcome": merge("offer_outcome", {
        "decision_id": decision_ids, "product_id": product_ids, "channel": enum(OfferChannel),
        "outcome": st.sampled_from(["shown", "accepted", "ignored"]), "decline_reason": st.none()}),
    "offer_decision": merge("offer_decision", {
        "decision_id": decision_ids, "channel": enum(OfferChannel),
        "offers": st.lists(st.fixed_dictionaries({
            "product_id": product_ids, "rank": st.integers(1, 50),
            "score": st.floats(-1e6, 1e6, allow_nan=False), "propensity": st.floats(0, 1),
            "reason_codes": st.lists(st.from_regex(r"\A[a-z_]{1,20}\Z"), max_size=3)}), max_size=5),
        "rules_applied": st.lists(st.from_regex(r"\A[a-z_]{1,20}\Z"), max_size=5),
        "model_version": st.from_regex(r"\Av[0-9]{1,6}\Z"), "degraded": st.booleans(),
        "latency_ms": st.floats(0, 1e4)}),
    "profile": merge("profile", {
        "birth_year": st.integers(1900, 2100), "risk_tolerance": st.integers(1, 5),
        "employment": st.sampled_from(["salaried", "self_employed", "business_owner", "retired", "farmer",
                                       "student", "other"]),
        "city_tier": st.integers(1, 4)}),
}
declined = merge("offer_outcome", {
    "decision_id": decision_ids, "product_id": product_ids, "channel": enum(OfferChannel),
    "outcome": st.just("declined"), "decline_reason": enum(DeclineReason)})
any_valid = st.one_of(*VALID.values(), declined)


@SETTINGS
@given(any_valid)
def test_valid_events_are_accepted_and_round_trip(data: dict) -> None:
    event = decode(orjson.dumps(data))
    assert event.type == data["type"]
    raw = encode(event)
    again = decode(raw)
    assert again == event and encode(again) == raw
    assert event.occurred_at.utcoffset() is not None


FLAT_TYPES = [t for t in VALID if t != "offer_decision"]


def _in_whole_utc_seconds(event):  # type: ignore[no-untyped-def]
    """The event at its time in UTC, whole seconds: what the column encoder takes (epoch s)."""
    at = event.occurred_at.astimezone(timezone.utc).replace(microsecond=0)
    return event.model_copy(update={"occurred_at": at})


@SETTINGS
@given(st.sampled_from(FLAT_TYPES).flatmap(lambda t: st.lists(VALID[t], min_size=1, max_size=6)))
def test_the_column_encoder_writes_the_bytes_encode_writes(batch: list[dict]) -> None:
    events = [_in_whole_utc_seconds(decode(orjson.dumps(data))) for data in batch]
    wire = [orjson.loads(encode(e)) for e in events]
    columns = {name: [w[name] for w in wire] for name in wire[0]}
    columns["occurred_at"] = [int(e.occurred_at.timestamp()) for e in events]
    records = encode_columns(type(events[0]), columns)
    assert records == [encode(e) for e in events]
    assert [decode(r) for r in records] == events


def test_the_column_encoder_fills_defaults_shares_single_values_and_refuses_what_it_cannot_write() -> None:
    from schemas.events import OfferDecisionMade, ProductPurchased

    columns = {"event_id": ["ev-00000001", "ev-00000002"], "customer_id": "C000000042",
               "occurred_at": [1_767_254_400, 1_767_254_401], "source": "core_banking",
               "product_id": ["fund_sip", "large_cd"], "channel": "branch"}
    records = encode_columns(ProductPurchased, columns)
    first = decode(records[0])
    assert isinstance(first, ProductPurchased) and first.occurred_at == datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    assert (first.amount_minor, first.currency, first.decision_id, first.customer_id) == (0, "CNY", None, "C000000042")
    assert decode(records[1]).product_id == "large_cd"
    assert records == [encode(decode(r)) for r in records]
    with pytest.raises(ValueError, match="unknown field.*colour"):
        encode_columns(ProductPurchased, {**columns, "colour": "red"})
    with pytest.raises(ValueError, match="product_id is required"):
        encode_columns(ProductPurchased, {k: v for k, v in columns.items() if k != "product_id"})
    with pytest.raises(ValueError, match="product_id has 1 values, expected 2"):
        encode_columns(ProductPurchased, {**columns, "product_id": ["fund_sip"]})
    with pytest.raises(ValueError, match="nested models"):
        encode_columns(OfferDecisionMade, {})


def test_every_event_type_has_a_strategy_and_a_topic() -> None:
    assert set(VALID) == set(EVENT_TYPES) == set(TOPIC_FOR_TYPE)
    assert set(TOPIC_FOR_TYPE.values()) <= set(ALL_TOPICS)
    assert {TOPIC_FOR_TYPE[t] for t in ("deposit", "hotline", "pos", "purchase", "offer_outcome", "profile",
                                        "offer_decision")} == set(INPUT_TOPICS)
    assert partition_key("C000000042") == b"C000000042"


# ---- invalid events ------------------------------------------------------------------------

#: field -> values a bank would refuse there, per event type (the field must exist in the type).
BAD_VALUES: dict[str, list] = {
    "event_id": ["", "short", "-starts-with-dash", "x" * 65, "has space in it", 12345678],
    "customer_id": ["", "C000000042 ", "Zhang San", "x" * 65, "C{000000042}", "C4111111111111111",
                    "4111-1111-1111-1111", None, 42],
    "occurred_at": ["2026-01-01T08:00:00", "1999-12-31T23:59:59Z", "yesterday", 1767254400,
                    (NOW + timedelta(days=3)).isoformat(), None],
    "source": ["", "CoreBanking", "x", None],
    "schema_version": [2, 0, "1", None],
    "amount_minor": [0, -100, MAX_AMOUNT_MINOR + 1, 12.5, "100", None, True],
    "balance_after_minor": [10.5, "1", 10 * MAX_AMOUNT_MINOR + 1, None],
    "kind": ["DEPOSIT", "refund", None],
    "channel": ["branch_robot", "", None, 3],
    "purpose": ["laundering", 1],
    "branch_id": ["br-1", "B", 7],
    "intent": ["LOAN", "chat", None],
    "duration_s": [-1, 36_001, 1.5, "60"],
    "resolved": ["yes", 1, None],
    "sentiment": [1.5, -1.01, "0.5", True, None],
    "card_token": ["4111111111111111", "tok_short", "", None],
    "mcc": ["123", "12345", "abcd", 5411],
    "merchant_category": ["casino", 3],
    "hotel_stars": [6, -1, 4.5, "5"],
    "luxury": ["no", 0],
    "online": ["true", 2],
    "country": ["CHN", "cn", ""],
    "currency": ["RMB", "cny", "", "XAU", "ZZZ"],
    "product_id": ["", "Mortgage", "9lives", "a" * 49, "home-loan", None],
    "decision_id": ["d-1", "abc", "d-" + "x" * 61, 5],
    "outcome": ["maybe", None],
    "decline_reason": ["rude", 4],
    "offers": ["not a list", [{"product_id": "mortgage"}]],
    "model_version": ["v" * 65, None],
    "latency_ms": [-1.0, "fast"],
    "degraded": ["sometimes"],
    "birth_year": [1899, 2101, "1980", 1980.5],
    "risk_tolerance": [0, 6, "3", 2.0],
    "employment": ["astronaut", None],
    "city_tier": [0, 5, "1"],
    "rules_applied": ["eligibility", [1]],
}
#: Values in BAD_VALUES that are fine for one event type (a card or service purchase has amount 0).
FINE_FOR_TYPE = {("purchase", "amount_minor"): [0]}


def bad_values(type_name: str, field_name: str) -> list:
    fine = FINE_FOR_TYPE.get((type_name, field_name), [])
    return [v for v in BAD_VALUES[field_name] if not any(v is f or (type(v) is type(f) and v == f) for f in fine)]


def _bad_case(type_name: str) -> st.SearchStrategy[tuple[dict, str]]:
    model = EVENT_TYPES[type_name]
    fields = [f for f in BAD_VALUES if f in model.model_fields]
    return st.tuples(VALID[type_name], st.sampled_from(fields)).flatmap(
        lambda pair: st.sampled_from(bad_values(type_name, pair[1])).map(
            lambda bad: ({**pair[0], pair[1]: bad}, pair[1])))


@SETTINGS
@given(st.one_of(*(_bad_case(t) for t in VALID)))
def test_an_invalid_field_is_refused_and_named(case: tuple[dict, str]) -> None:
    data, field_name = case
    with pytest.raises(InvalidEvent) as info:
        decode(orjson.dumps(data))
    assert info.value.field is not None
    assert info.value.field.split(".")[0] == field_name, (info.value.field, field_name, data[field_name])


@SETTINGS
@given(st.one_of(*VALID.values()), st.data())
def test_a_missing_required_field_is_named(data: dict, draw: st.DataObject) -> None:
    model = EVENT_TYPES[data["type"]]
    required = [name for name, f in model.model_fields.items() if f.is_required() and name != "merchant_category"]
    missing = draw.draw(st.sampled_from(required))
    with pytest.raises(InvalidEvent) as info:
        decode(orjson.dumps({k: v for k, v in data.items() if k != missing}))
    assert info.value.field == missing


@SETTINGS
@given(st.one_of(*VALID.values()), st.from_regex(r"\A[a-z]{3,12}\Z"))
def test_unknown_fields_are_refused_and_named(data: dict, extra: str) -> None:
    if extra in data:
        return
    with pytest.raises(InvalidEvent) as info:
        decode(orjson.dumps({**data, extra: "x"}))
    assert info.value.field == extra


def test_records_that_are_not_events_are_refused() -> None:
    for raw, field_name in [(b"not json", "record"), (b"[1, 2]", "record"), (b'{"type": "teleport"}', "type"),
                            (b"{}", "type"), (b"x" * (MAX_EVENT_BYTES + 1), "record")]:
        with pytest.raises(InvalidEvent) as info:
            decode(raw)
        assert info.value.field == field_name


def test_oversized_payload_is_refused_before_parsing() -> None:
    data = {"event_id": "evt-00000001", "customer_id": "C000000042", "occurred_at": "2026-01-01T08:00:00Z",
            "source": "offer_api", "type": "offer_decision", "decision_id": "d-abcdef", "channel": "mobile",
            "offers": [], "model_version": "v1", "rules_applied": ["r" * 60] * 300}
    with pytest.raises(InvalidEvent) as info:
        decode(orjson.dumps(data))
    assert info.value.field == "record" and "limit" in info.value.reason


def test_decline_reason_goes_with_declines_only() -> None:
    base = {"event_id": "evt-00000001", "customer_id": "C000000042", "occurred_at": "2026-01-01T08:00:00Z",
            "source": "teller", "type": "offer_outcome", "decision_id": "d-abcdef", "product_id": "mortgage",
            "channel": "teller"}
    assert decode(orjson.dumps({**base, "outcome": "declined", "decline_reason": "bad_timing"})).decline_reason
    for bad in ({"outcome": "declined"}, {"outcome": "accepted", "decline_reason": "other"}):
        with pytest.raises(InvalidEvent, match="decline_reason"):
            decode(orjson.dumps({**base, **bad}))


def test_merchant_category_is_derived_from_the_mcc() -> None:
    event = CardPaymentMade(event_id="evt-00000001", customer_id="C000000042", occurred_at=NOW, source="card_switch",
                            card_token="tok_abcdef12", mcc="7011", hotel_stars=5, amount_minor=120_000)
    assert event.merchant_category is MerchantCategory.HOTEL
    assert merchant_category_for_mcc("5411") is MerchantCategory.GROCERIES
    assert merchant_category_for_mcc("0001") is MerchantCategory.OTHER


def test_every_mcc_gets_the_category_of_the_first_range_that_holds_it() -> None:
    from schemas.events import _MCC_RANGES

    for code in range(10_000):
        first = next((c for low, high, c in _MCC_RANGES if low <= code <= high), MerchantCategory.OTHER)
        assert merchant_category_for_mcc(f"{code:04d}") is first, code


# ---- JSON Schema files ---------------------------------------------------------------------


def test_json_schema_files_are_current() -> None:
    assert stale() == [], "run: python -m schemas.export"
    files = render()
    assert set(files) == {f"{t}.json" for t in EVENT_TYPES} | {"event.json"}
    deposit = json.loads((JSON_DIR / "deposit.json").read_text(encoding="utf-8"))
    assert deposit["properties"]["amount_minor"]["minimum"] == 1
    assert deposit["additionalProperties"] is False


def test_json_schema_accepts_what_decode_accepts_and_refuses_bad_fields() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for(json.loads((JSON_DIR / "event.json").read_text(encoding="utf-8")))
    from domain.catalog import load_catalog
    from simulator.bank import simulate

    lines = simulate(load_catalog(), customers=50, days=2, seed=2).lines
    for line in lines:
        assert validator.is_valid(orjson.loads(line)), line
    sample = orjson.loads(lines[0])
    for field_name, bad in [("customer_id", "C{000000042}"), ("risk_tolerance", 9), ("type", "teleport")]:
        assert not validator.is_valid({**sample, field_name: bad})


# ---- every bad value, deterministically, against one example of each type -------------------

ENVELOPE = {"event_id": "s1-1767225600-0000000042", "schema_version": 1, "customer_id": "C000000042",
            "occurred_at": "2026-01-03T10:15:00Z"}
EXAMPLES: dict[str, dict] = {
    "deposit": {**ENVELOPE, "source": "core_banking", "type": "deposit", "kind": "withdrawal",
                "amount_minor": 200_000, "currency": "CNY", "channel": "atm", "purpose": "cash",
                "branch_id": "BR0042", "balance_after_minor": 5_230_000},
    "hotline": {**ENVELOPE, "source": "cti", "type": "hotline", "intent": "loan_inquiry", "duration_s": 412,
                "resolved": True, "sentiment": 0.35},
    "pos": {**ENVELOPE, "source": "card_switch", "type": "pos", "card_token": "tok_c3f9a1b2c4d5",
            "mcc": "7011", "merchant_category": "hotel", "hotel_stars": 5, "luxury": True, "amount_minor": 268_000,
            "currency": "CNY", "online": False, "country": "JP"},
    "purchase": {**ENVELOPE, "source": "mobile_banking", "type": "purchase", "product_id": "consumer_loan",
                 "amount_minor": 5_000_000, "currency": "CNY", "channel": "mobile", "decision_id": "d-7f3k2m9q"},
    "offer_outcome": {**ENVELOPE, "source": "teller", "type": "offer_outcome", "decision_id": "d-7f3k2m9q",
                      "product_id": "large_cd", "channel": "teller", "outcome": "declined",
                      "decline_reason": "bad_timing"},
    "offer_decision": {**ENVELOPE, "source": "offer_api", "type": "offer_decision", "decision_id": "d-7f3k2m9q",
                       "channel": "teller", "offers": [{"product_id": "large_cd", "rank": 1, "score": 0.82,
                                                        "propensity": 0.12, "reason_codes": ["large_inflow"],
                                                        "reason_facts": {"large_inflow_recent": True,
                                                                         "large_inflow_days_ago": 3},
                                                        "probability": 1.0}],
                       "rules_applied": ["eligibility", "contact_policy"], "model_version": "v3",
                       "arm": "treatment", "policy_version": "p-3f9a1c", "degraded": False, "latency_ms": 2.4},
    "profile": {**ENVELOPE, "source": "kyc", "type": "profile", "birth_year": 1985, "risk_tolerance": 3,
                "employment": "salaried", "city_tier": 1, "income_band": "upper_middle"},
}
BAD_CASES = [(t, f, v) for t in EXAMPLES for f in BAD_VALUES
             if f in EVENT_TYPES[t].model_fields for v in bad_values(t, f)]


def test_examples_are_valid_and_canonical() -> None:
    for type_name, example in EXAMPLES.items():
        raw = orjson.dumps(example)
        assert encode(decode(raw)) == raw, type_name


@pytest.mark.parametrize(("type_name", "field_name", "bad"), BAD_CASES,
                         ids=[f"{t}.{f}={v!r}"[:60] for t, f, v in BAD_CASES])
def test_each_bad_value_is_refused_naming_its_field(type_name: str, field_name: str, bad: object) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode(orjson.dumps({**EXAMPLES[type_name], field_name: bad}))
    assert (info.value.field or "").split(".")[0] == field_name


def test_every_example_in_the_events_doc_is_valid_and_every_type_has_one() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md").read_text(encoding="utf-8")
    blocks = doc.split("```json\n")[1:]
    examples = [block.split("\n```")[0] for block in blocks]
    types = []
    for text in examples:
        event = decode(text.encode())
        assert encode(event).decode() == text
        types.append(event.type)
    assert sorted(types) == sorted(EVENT_TYPES)
