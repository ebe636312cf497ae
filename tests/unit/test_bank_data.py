"""A bank's own data: its customer ids (and no card numbers among them), its history's age, its
currencies converted into its base currency, and profiles with gaps (no risk assessment, no
birth year) that make the offers more careful and say so."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.fakes import FixedModels, MemoryDecisionCache, MemoryPolicySource, MemoryPublisher, MemoryStateStore
from adapters.ports import SourcedEvent
from bootstrap import ApiParts, SettingsError, contract_rules, feature_params, load_settings
from decisioning import Policy, rank
from decisioning.eligibility import eligible_products
from domain.catalog import load_catalog
from domain.features import FeatureParams, apply_all, tokens_at
from domain.money import ExchangeRates, RateTableError, UnknownRate, in_base_currency, load_rates
from domain.state import CustomerState
from domain.transactions import fold_counter_transaction
from recommender.model import PriorModel
from schemas.codec import InvalidEvent, decode
from schemas.events import CardPaymentMade, CustomerProfileUpdated, DepositPosted, TxnKind, TxnPurpose
from schemas.rules import DEFAULT_RULES, ContractRules, luhn_valid
from services.api.app import create_app
from services.api.views import profile_view
from streams.core import split_batch

CATALOG = load_catalog()
NOW = datetime(2026, 6, 1, 10, tzinfo=timezone.utc)
NOW_S = NOW.timestamp()


def deposit(customer_id: str = "CUST-000123", **changes: object) -> dict:
    return {"event_id": "ev-00000001", "schema_version": 1, "customer_id": customer_id,
            "occurred_at": "2026-05-01T08:00:00Z", "source": "core_banking", "type": "deposit", "kind": "deposit",
            "amount_minor": 10_000, "currency": "CNY", "channel": "counter", "purpose": "cash",
            "balance_after_minor": 10_000, **changes}


def refusal(data: dict, rules: ContractRules = DEFAULT_RULES) -> InvalidEvent | None:
    try:
        decode(orjson.dumps(data), rules)
    except InvalidEvent as exc:
        return exc
    return None


# ---- customer ids ---------------------------------------------------------------------------

def with_luhn_digit(body: str) -> str:
    """``body`` plus the check digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@settings(max_examples=300)
@given(st.integers(12, 18).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)),
       st.sampled_from(["", "C", "CUST-", "id:"]), st.sampled_from(["plain", "dashes", "spaces"]))
def test_an_id_holding_a_luhn_valid_13_to_19_digit_number_is_refused_as_a_card_number(body, prefix, layout):
    pan = with_luhn_digit(body)
    shown = pan if layout == "plain" else "-".join(pan[i:i + 4] for i in range(0, len(pan), 4))
    customer_id = prefix + shown
    if layout == "spaces":  # spaces are outside the base rule: refused either way, as a card number first
        customer_id = prefix + " ".join(pan[i:i + 4] for i in range(0, len(pan), 4))
    assert DEFAULT_RULES.customer_id_refusal(customer_id) is not None
    assert "tokenised" in DEFAULT_RULES.customer_id_refusal(customer_id)
    if layout != "spaces":
        error = refusal(deposit(customer_id))
        assert error is not None and error.field == "customer_id"
        assert "payment card number" in error.reason and "tokenised customer id" in error.reason
        assert pan not in error.reason  # the message does not repeat the number


@settings(max_examples=300)
@given(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:", min_size=1, max_size=64)
       .filter(lambda s: sum(c.isdigit() for c in s) < 13))
def test_any_permissive_id_with_fewer_than_13_digits_is_accepted(customer_id):
    assert refusal(deposit(customer_id)) is None


@settings(max_examples=200)
@given(st.integers(12, 18).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)))
def test_a_long_digit_run_that_fails_the_luhn_check_is_no_card_number(body):
    not_a_card = next(body + d for d in "0123456789" if not luhn_valid(body + d))
    assert refusal(deposit("C" + not_a_card)) is None


@pytest.mark.parametrize("customer_id", ["CUST-000123", "C000000042", "8f14e45f-ceea-467f", "bank:sg.000042", "x"])
def test_the_banks_own_id_forms_are_valid_by_default(customer_id):
    assert decode(orjson.dumps(deposit(customer_id))).customer_id == customer_id


@pytest.mark.parametrize("customer_id", ["", "x" * 65, "C{42}", "CUST 000123", "张三"])
def test_ids_outside_the_base_rule_are_refused(customer_id):
    assert refusal(deposit(customer_id)).field == "customer_id"


def test_the_card_of_the_brief_is_refused_and_a_bank_may_allow_digit_tokens_explicitly():
    assert refusal(deposit("C4111111111111111")).field == "customer_id"
    assert refusal(deposit("C4111111111111112")) is None  # not Luhn-valid: not a card number
    digits_ok = ContractRules(refuse_card_numbers=False)
    assert decode(orjson.dumps(deposit("4111111111111111")), digits_ok).customer_id == "4111111111111111"


def test_a_banks_own_pattern_narrows_the_ids_and_the_stream_dead_letters_the_others():
    rules = ContractRules(customer_id_pattern=r"CUST-[0-9]{6}")
    assert decode(orjson.dumps(deposit("CUST-000123")), rules).customer_id == "CUST-000123"
    error = refusal(deposit("C000000042"), rules)
    assert error.field == "customer_id" and "CUST-[0-9]{6}" in error.reason
    raw = [("nbo.deposits", 0, 1, b"C000000042", orjson.dumps(deposit("C000000042"))),
           ("nbo.deposits", 0, 2, b"CUST-000123", orjson.dumps(deposit("CUST-000123")))]
    good, [letter] = split_batch(raw, rules=rules)
    assert [g.event.customer_id for g in good] == ["CUST-000123"]
    assert letter.field == "customer_id" and letter.offset == 1


def test_the_settings_build_the_rules_and_a_bad_pattern_fails_at_start_naming_the_variable():
    rules = contract_rules(load_settings(contract={"customer_id_pattern": "CUST-[0-9]+",
                                                   "earliest_occurred_at": "1990-01-01T00:00:00Z"}))
    assert rules.customer_id_refusal("CUST-1") is None and rules.customer_id_refusal("C1") is not None
    assert rules.earliest_occurred_at == datetime(1990, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(SettingsError, match="NBO_CONTRACT__CUSTOMER_ID_PATTERN"):
        load_settings(contract={"customer_id_pattern": "CUST-[0-9"})


def test_history_before_2000_is_refused_by_default_and_imported_with_an_earlier_bound():
    old = deposit(occurred_at="1997-03-01T08:00:00Z")
    error = refusal(old)
    assert error.field == "occurred_at" and "2000-01-01" in error.reason
    rules = ContractRules(earliest_occurred_at=datetime(1990, 1, 1, tzinfo=timezone.utc))
    assert decode(orjson.dumps(old), rules).occurred_at.year == 1997
    assert refusal(deposit(occurred_at="1989-12-31T23:59:59Z"), rules).field == "occurred_at"


# ---- currencies -----------------------------------------------------------------------------

EUR = ExchangeRates.of("EUR", {"USD": "0.92", "CNY": "0.13", "JPY": "0.0062", "BHD": "2.44"})


@pytest.mark.parametrize(("amount_minor", "currency", "expected_eur_cents"), [
    (10_000, "USD", 9_200),        # 100.00 USD x 0.92 = 92.00 EUR
    (100_000, "CNY", 13_000),      # 1,000.00 CNY x 0.13 = 130.00 EUR
    (10_000, "JPY", 6_200),        # 10,000 JPY (no minor unit) x 0.0062 = 62.00 EUR
    (1_500, "BHD", 366),           # 1.500 BHD (fils, 3 decimals) x 2.44 = 3.66 EUR
    (1, "BHD", 0),                 # 0.001 BHD = 0.00244 EUR: rounds to 0 cents
    (12_345, "EUR", 12_345),       # the base itself: unchanged
    (5, "USD", 5),                 # 0.05 USD x 0.92 = 0.046 EUR: 4.6 cents round to 5
])
def test_amounts_convert_between_the_currencies_minor_units(amount_minor, currency, expected_eur_cents):
    assert EUR.to_base_minor(amount_minor, currency) == expected_eur_cents


def test_into_a_base_with_no_minor_unit_and_half_to_even():
    jpy = ExchangeRates.of("JPY", {"USD": "150"})
    assert jpy.to_base_minor(1_234, "USD") == 1_851  # 12.34 USD x 150 = 1,851 JPY
    halves = ExchangeRates.of("JPY", {"CNY": "0.5"})
    # 1.00 CNY = 0.5 JPY -> 0, 3.00 CNY = 1.5 JPY -> 2, 5.00 CNY = 2.5 JPY -> 2: halves go to the even yen.
    assert [halves.to_base_minor(fen, "CNY") for fen in (100, 300, 500)] == [0, 2, 2]


def test_a_currency_without_a_rate_is_named():
    with pytest.raises(UnknownRate, match="'GBP'") as info:
        EUR.to_base_minor(100, "GBP")
    assert info.value.currency == "GBP"


def test_an_event_is_converted_with_its_balance_and_other_events_are_left_alone():
    event = decode(orjson.dumps(deposit(currency="USD", amount_minor=10_000, balance_after_minor=-2_500)))
    converted = in_base_currency(event, EUR)
    assert (converted.amount_minor, converted.balance_after_minor, converted.currency) == (9_200, -2_300, "EUR")
    assert event.amount_minor == 10_000  # the decoded event is not changed
    payment = CardPaymentMade(event_id="ev-00000002", customer_id="C1", occurred_at=NOW, source="card_switch",
                              card_token="tok_abcdefgh", mcc="5411", amount_minor=1_000, currency="JPY")
    assert in_base_currency(payment, EUR).amount_minor == 620
    profile = CustomerProfileUpdated(event_id="ev-00000003", customer_id="C1", occurred_at=NOW, source="kyc")
    assert in_base_currency(profile, EUR) is profile


@pytest.mark.parametrize("currency", ["BHD", "KWD", "VND", "IDR", "CHF", "INR"])
def test_any_iso_currency_is_accepted_by_the_contract(currency):
    assert decode(orjson.dumps(deposit(currency=currency))).currency == currency


@pytest.mark.parametrize("currency", ["RMB", "XAU", "XXX", "usd", "EURO"])
def test_codes_that_are_not_a_currency_with_minor_units_are_refused(currency):
    assert refusal(deposit(currency=currency)).field == "currency"


def test_the_stream_converts_before_folding_and_dead_letters_a_currency_without_a_rate():
    params = FeatureParams(rates=EUR, large_inflow_minor=100_000)
    raw = [("nbo.deposits", 0, 1, b"CUST-000123", orjson.dumps(deposit(currency="USD", amount_minor=200_000))),
           ("nbo.deposits", 0, 2, b"CUST-000123", orjson.dumps(deposit(event_id="ev-00000002", currency="GBP"))),
           ("nbo.deposits", 0, 3, b"CUST-000123", orjson.dumps(deposit(event_id="ev-00000003", currency="CNY",
                                                                       amount_minor=100_000)))]
    good, [letter] = split_batch(raw, rates=params.rates)
    assert letter.field == "currency" and "'GBP'" in letter.reason and "EUR" in letter.reason
    state = apply_all(CustomerState("CUST-000123"), [g.event for g in good], params)
    assert state.daily_flows["2026-05-01"] == [184_000 + 13_000, 0]  # 2,000 USD and 1,000 CNY in EUR cents
    assert state.last_large_inflow_at_s > 0  # 1,840 EUR >= the 1,000 EUR threshold


def test_the_teller_fold_converts_the_amount_in_hand():
    params = FeatureParams(rates=EUR)
    state = CustomerState("CUST-000123", balance_minor=50_000)
    folded = fold_counter_transaction(state, TxnKind.DEPOSIT, 10_000, "USD", TxnPurpose.CASH, NOW, "teller-abcdef",
                                      params)
    assert folded.balance_minor == 59_200 and folded.recent_transactions[0][2] == 9_200
    with pytest.raises(UnknownRate):
        fold_counter_transaction(state, TxnKind.DEPOSIT, 10_000, "GBP", TxnPurpose.CASH, NOW, "teller-abcdef", params)


def test_the_packaged_table_covers_the_six_and_a_table_for_another_base_is_refused(tmp_path: Path):
    packaged = load_rates(None, "CNY")
    assert {code for code, _ in packaged.rates} >= {"CNY", "USD", "EUR", "HKD", "JPY", "GBP"}
    with pytest.raises(RateTableError, match="EUR"):
        load_rates(None, "EUR")
    table = tmp_path / "rates.json"
    table.write_text('{"EUR": 1, "USD": "0.92", "CNY": 0.13}')
    assert load_rates(table, "EUR").rate("CNY") == Decimal("0.13")
    table.write_text('{"EUR": 1, "USD": "-1"}')
    with pytest.raises(RateTableError, match="USD"):
        load_rates(table, "EUR")
    with pytest.raises(SettingsError, match="NBO_MONEY__RATES_FILE"):
        feature_params(load_settings(money={"base_currency": "EUR"}))  # the packaged table is into CNY
    with pytest.raises(SettingsError, match="NBO_MONEY__BASE_CURRENCY"):
        load_settings(money={"base_currency": "RMB"})


# ---- profiles with gaps ---------------------------------------------------------------------

class OneProduct:
    """A model that ranks ``favourite`` far above everything else."""

    version = "one"
    similar_weight = 0.0

    def __init__(self, favourite: str) -> None:
        self.favourite = favourite

    def score(self, held, tokens, recent, now_s, segment):
        import numpy as np

        from decisioning.scores import ScoredProducts

        p = np.full(len(CATALOG.ids), 0.01)
        p[CATALOG.index[self.favourite]] = 0.9
        zeros = np.zeros(len(CATALOG.ids))
        return ScoredProducts(CATALOG.ids, p, zeros, (None,) * len(CATALOG.ids), p)


def known(**changes) -> CustomerState:
    state = CustomerState("CUST-000123", as_of_s=NOW_S - 86_400, events_applied=3, birth_year=1985,
                          risk_tolerance=3, employment="salaried", balance_minor=5_000_000,
                          last_balance_at_s=NOW_S - 86_400)
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def test_without_a_risk_assessment_only_r1_products_are_offered_and_the_reason_says_so():
    state = known(risk_tolerance=None)
    excluded, eligible = eligible_products(state, CATALOG, "call_centre", NOW_S)
    assert eligible and all(p.risk_level == 1 for p in eligible)
    assert excluded["wealth_r2"] == excluded["bond_fund"] == "risk_unknown_conservative"
    decision = rank(state, OneProduct("wealth_r1"), CATALOG, Policy(), "call_centre", NOW_S, 3)
    first = decision.offers[0]
    assert first.product.product_id == "wealth_r1"
    assert first.reason_codes == ["risk_unknown_conservative"]
    assert "not been assessed" in first.reason_en and "R1" in first.reason_en and "风险测评" in first.reason_zh
    assert first.reason_facts == {"risk_tolerance_assessed": False, "product_risk_level": 1}
    assert "risk_unknown_conservative" in decision.rules_applied
    assert decision.excluded["wealth_r2"] == "risk_unknown_conservative"
    # The same customer assessed C3 gets the R2 wealth product the model likes.
    assessed = rank(known(), OneProduct("wealth_r2"), CATALOG, Policy(), "call_centre", NOW_S, 3)
    assert assessed.offers[0].product.product_id == "wealth_r2"
    assert "risk_unknown_conservative" not in assessed.rules_applied


def test_without_a_birth_year_age_restricted_products_are_left_out_saying_so():
    state = known(birth_year=None)
    low, high = 16, 120  # the packaged catalog's widest age band
    excluded, eligible = eligible_products(state, CATALOG, "call_centre", NOW_S)
    for product in CATALOG:
        if product.min_age > low or product.max_age < high:
            assert excluded[product.product_id] in ("birth_year_unknown", "channel_not_allowed"), product.product_id
    assert excluded["consumer_loan"] == "birth_year_unknown"  # 18-60
    assert {p.product_id for p in eligible} <= {p.product_id for p in CATALOG if (p.min_age, p.max_age) == (16, 120)}
    decision = rank(state, OneProduct("consumer_loan"), CATALOG, Policy(), "call_centre", NOW_S, 3)
    assert "consumer_loan" not in [o.product.product_id for o in decision.offers]
    assert "birth_year_unknown" in decision.rules_applied
    # Known and 41: the loan is offered.
    assert rank(known(), OneProduct("consumer_loan"), CATALOG, Policy(), "call_centre", NOW_S, 3
                ).offers[0].product.product_id == "consumer_loan"


def test_a_profile_event_without_risk_or_birth_year_or_income_is_valid_and_clears_them():
    head = {"customer_id": "CUST-000123", "source": "kyc"}
    full = CustomerProfileUpdated(event_id="ev-profile-1", occurred_at=NOW - timedelta(days=2), birth_year=1980,
                                  risk_tolerance=4, income_band="high", **head)
    gaps = decode(orjson.dumps({"event_id": "ev-profile-2", "schema_version": 1, "occurred_at": "2026-05-31T10:00:00Z",
                                "type": "profile", **head}))
    state = apply_all(CustomerState("CUST-000123"), [full], FeatureParams())
    assert (state.birth_year, state.risk_tolerance, state.income_band) == (1980, 4, "high")
    assert tokens_at(state, NOW_S)["inc:high"] == 1.0
    state = apply_all(state, [gaps], FeatureParams())
    assert (state.birth_year, state.risk_tolerance, state.income_band) == (None, None, None)
    assert not any(t.startswith(("inc:", "age:")) for t in tokens_at(state, NOW_S))


def test_a_state_written_before_the_income_band_decodes():
    old = known().to_dict()
    del old["income_band"]
    assert CustomerState.from_dict(old).income_band is None


def test_the_profile_view_shows_the_gaps_the_income_band_and_the_base_currency():
    view = profile_view(known(risk_tolerance=None, birth_year=None, income_band="lower_middle"), CATALOG,
                        FeatureParams(rates=EUR, large_inflow_minor=500_000), "CUST-000123", NOW_S)
    assert [n.code for n in view.profile_notes] == ["risk_unknown_conservative", "birth_year_unknown"]
    assert "R1" in view.profile_notes[0].en and "风险测评" in view.profile_notes[0].zh
    assert view.income_band == "lower_middle" and view.risk_tolerance_label is None
    assert (view.currency.code, view.currency.minor_unit_exponent) == ("EUR", 2)
    assert view.behaviour.large_inflow_min_minor == 500_000
    complete = profile_view(known(), CATALOG, FeatureParams(), "CUST-000123", NOW_S)
    assert complete.profile_notes == [] and complete.currency.code == "CNY"


def test_talking_points_and_facts_name_the_base_currency():
    from decisioning import talking_points

    cd = CATALOG.get("large_cd")  # minimum 20,000,000 minor units
    assert talking_points(cd)[-1] == ("Minimum 200,000 CNY: check the customer's funds before the sale.",
                                      "起购金额200,000元：办理前请确认客户资金。")
    assert talking_points(cd, currency="EUR")[-1][0] == "Minimum 200,000 EUR: check the customer's funds before the sale."
    assert talking_points(cd, currency="JPY")[-1][1] == "起购金额20,000,000 JPY：办理前请确认客户资金。"
    params = FeatureParams(rates=EUR, large_inflow_minor=400_000)
    state = known(last_large_inflow_at_s=NOW_S - 3 * 86_400)
    decision = rank(state, OneProduct("time_deposit_1y"), CATALOG, Policy(), "teller", NOW_S, 1, params)
    facts = decision.offers[0].reason_facts
    assert decision.offers[0].reason_codes == ["large_inflow"]
    assert (facts["large_inflow_min_minor"], facts["currency"]) == (400_000, "EUR")


# ---- the API --------------------------------------------------------------------------------

def api(contract: ContractRules = DEFAULT_RULES, params: FeatureParams = FeatureParams()) -> TestClient:
    store = MemoryStateStore()
    event = DepositPosted(event_id="ev-history-1", customer_id="CUST-000123", occurred_at=datetime.now(timezone.utc)
                          - timedelta(days=3), source="core_banking", kind="deposit", amount_minor=100_000,
                          channel="counter", balance_after_minor=100_000)
    store.apply_batch([SourcedEvent(event, "nbo.deposits", 0, 0)], params, time.time())
    settings = load_settings(api={"allow_dev_keys": True})
    parts = ApiParts(settings=settings, catalog=CATALOG, store=store.reader(), models=FixedModels(PriorModel(CATALOG)),
                     publisher=MemoryPublisher(), policies=MemoryPolicySource({}), params=params,
                     decisions=MemoryDecisionCache(), contract=contract)
    return TestClient(create_app(settings, parts))


AGENT = {"X-API-Key": "dev-agent"}
TELLER = {"X-API-Key": "dev-teller"}


def test_the_api_serves_a_banks_own_id_and_asks_for_a_token_instead_of_a_card_number():
    with api() as client:
        profile = client.get("/v1/call-centre/customers/CUST-000123/profile", headers=AGENT)
        assert profile.status_code == 200 and profile.json()["behaviour"]["balance_minor"] == 100_000
        offers = client.get("/v1/customers/CUST-000123/offers", params={"channel": "call_centre"}, headers=AGENT)
        assert offers.status_code == 200 and offers.json()["customer_id"] == "CUST-000123"
        for path in ("/v1/call-centre/customers/C4111111111111111/offers",
                     "/v1/call-centre/customers/C4111111111111111/profile",
                     "/v1/customers/4111-1111-1111-1111/offers?channel=call_centre"):
            refused = client.get(path, headers=AGENT)
            assert refused.status_code == 422, path
            assert "tokenised customer id" in refused.json()["detail"] and "4111111111111111" not in refused.text
        body = {"customer_id": "C4111111111111111", "transaction": {"kind": "deposit", "amount_minor": 100}}
        refused = client.post("/v1/teller/offers", json=body, headers=TELLER)
        assert refused.status_code == 422 and "tokenised" in refused.json()["detail"]
        outcome = {"decision_id": "d-0123456789abcdef", "customer_id": "C4111111111111111",
                   "product_id": "mobile_banking", "channel": "call_centre", "outcome": "accepted"}
        refused = client.post("/v1/outcomes", json=outcome, headers=AGENT)
        assert refused.status_code == 422 and "tokenised" in refused.json()["detail"]


def test_the_api_applies_the_banks_pattern():
    with api(ContractRules(customer_id_pattern=r"CUST-[0-9]{6}")) as client:
        assert client.get("/v1/call-centre/customers/CUST-000123/offers", headers=AGENT).status_code == 200
        refused = client.get("/v1/call-centre/customers/C000000042/offers", headers=AGENT)
        assert refused.status_code == 422 and "CUST-[0-9]{6}" in refused.json()["detail"]


def test_the_teller_converts_the_amount_in_hand_and_names_a_currency_without_a_rate():
    params = FeatureParams(rates=EUR)
    with api(params=params) as client:
        body = {"customer_id": "CUST-000123", "transaction": {"kind": "deposit", "amount_minor": 10_000,
                                                               "currency": "USD"}}
        assert client.post("/v1/teller/offers", json=body, headers=TELLER).status_code == 200
        body["transaction"]["currency"] = "GBP"
        refused = client.post("/v1/teller/offers", json=body, headers=TELLER)
        assert refused.status_code == 422
        assert "transaction.currency" in refused.json()["detail"] and "'GBP'" in refused.json()["detail"]
        body["transaction"]["currency"] = "RMB"
        refused = client.post("/v1/teller/offers", json=body, headers=TELLER)
        assert refused.status_code == 422 and "ISO 4217" in refused.json()["detail"]
