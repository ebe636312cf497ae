"""The agent's profile view says only what the customer's state supports: no segment without
history, exact money in and out over the last 30 days, the customer's risk tolerance on its own
C1..C5 scale, and a strategy that matches whether a complaint is open."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain.catalog import load_catalog
from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.events import (
    CustomerProfileUpdated,
    DepositPosted,
    HotlineCallEnded,
    OfferOutcomeRecorded,
    ProductPurchased,
)
from services.api.views import profile_view

CUSTOMER = "C000000077"
NOW = datetime(2026, 5, 20, 15, 30, tzinfo=timezone.utc)
CATALOG = load_catalog()
_seq = iter(range(10**9))


def _head(at: datetime) -> dict:
    return {"event_id": f"ev-profile-{next(_seq):06d}", "customer_id": CUSTOMER, "occurred_at": at}


def deposit(days_ago: float, amount: int, kind: str = "deposit", balance: int = 1_000_000) -> DepositPosted:
    return DepositPosted(**_head(NOW - timedelta(days=days_ago)), source="core_banking", kind=kind,
                         amount_minor=amount, channel="counter", purpose="other", balance_after_minor=balance)


def call(days_ago: float, intent: str = "complaint", resolved: bool = True, sentiment: float = 0.0) -> HotlineCallEnded:
    return HotlineCallEnded(**_head(NOW - timedelta(days=days_ago)), source="cti", intent=intent, duration_s=60,
                            resolved=resolved, sentiment=sentiment)


def purchase(days_ago: float, product_id: str) -> ProductPurchased:
    return ProductPurchased(**_head(NOW - timedelta(days=days_ago)), source="core_banking", product_id=product_id,
                            channel="branch")


def view(*events, state: CustomerState | None = None):
    folded = apply_all(state or CustomerState(CUSTOMER), events, FeatureParams())
    return profile_view(folded, CATALOG, FeatureParams(), CUSTOMER, NOW.timestamp())


def test_a_customer_without_history_gets_no_segment_tier_or_satisfaction_in_either_language():
    profile = view()
    assert profile.known is False
    assert (profile.vs_segment, profile.value_tier, profile.strategy) == (None, None, None)
    assert profile.segment_label.en.startswith("Not enough history")
    assert profile.segment_label.zh.startswith("历史数据不足")
    assert profile.behaviour.satisfaction is None
    assert (profile.behaviour.inflow_30d_minor, profile.behaviour.outflow_30d_minor) == (0, 0)
    assert profile.risk_tolerance_label is None


def test_offer_outcomes_alone_do_not_make_a_customer_known():
    answered = OfferOutcomeRecorded(**_head(NOW - timedelta(hours=1)), source="offer_api",
                                    decision_id="d-0123456789abcdef", product_id="fund_sip", channel="call_centre",
                                    outcome="declined", decline_reason="bad_timing")
    profile = view(answered)
    assert profile.known is False and profile.vs_segment is None
    assert [c.product_id for c in profile.contact_history] == ["fund_sip"]


def test_money_in_and_out_are_the_exact_sums_of_the_last_30_days():
    profile = view(deposit(45, 9_000_000), deposit(29.5, 120_000), deposit(20, 300_000, kind="withdrawal"),
                   deposit(3, 254_900, kind="withdrawal"), deposit(0.1, 35_050))
    assert (profile.behaviour.inflow_30d_minor, profile.behaviour.outflow_30d_minor) == (155_050, 554_900)
    assert profile.behaviour.flows_complete is True
    assert profile.behaviour.flows_counted_from == "2026-04-21T00:00:00+00:00"  # today and the 29 days before


def test_a_state_from_before_the_daily_record_says_since_when_its_totals_count():
    old = apply_all(CustomerState(CUSTOMER), [deposit(10, 500_000)], FeatureParams()).to_dict()
    del old["daily_flows"], old["daily_flows_from_s"]
    profile = view(deposit(2, 70_000), state=CustomerState.from_dict(old))
    assert profile.behaviour.inflow_30d_minor == 70_000
    assert profile.behaviour.flows_complete is False
    assert profile.behaviour.flows_counted_from == (NOW - timedelta(days=10)).isoformat()


def test_the_customers_risk_tolerance_is_on_the_c_scale_with_its_name():
    profile = view(CustomerProfileUpdated(**_head(NOW - timedelta(days=400)), source="core_banking",
                                          birth_year=1980, risk_tolerance=3, employment="salaried"))
    assert profile.known is True and profile.risk_tolerance == 3
    assert (profile.risk_tolerance_label.en, profile.risk_tolerance_label.zh) == ("C3 balanced", "C3 稳健型")


def test_a_known_customer_gets_the_segment_with_its_meaning():
    profile = view(deposit(5, 100_000, balance=100_000), call(2, "balance_query", sentiment=0.9))
    assert (profile.vs_segment, profile.value_tier) == ("D", "mass")
    assert profile.segment_label.en == "Mass, satisfied" and profile.strategy is not None
    assert profile.behaviour.satisfaction == 0.27


def test_segment_g_without_an_open_complaint_is_not_told_to_fix_a_complaint():
    buys = [purchase(20 - i, pid) for i, pid in enumerate(["debit_card", "fund_sip", "bond_fund", "gold_savings"])]
    settled = view(*buys, call(5, resolved=True, sentiment=-0.5), call(4, resolved=True, sentiment=-0.2))
    assert settled.vs_segment == "G" and settled.behaviour.open_complaint is False
    assert "fix the complaint" not in settled.strategy.en
    still_open = view(*buys, call(5, resolved=True), call(4, resolved=False, sentiment=-0.6))
    assert still_open.vs_segment == "G" and still_open.behaviour.open_complaint is True
    assert "fix the complaint" in still_open.strategy.en
