"""Pure feature functions: known answers per event type, decay, segments, and properties
(apply never changes its input; interleaving the topics differently gives the same state)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.features import (
    DAY_S,
    FeatureParams,
    VS_STRATEGIES,
    age_at,
    apply,
    apply_all,
    assets_minor,
    decayed,
    flows_in_window,
    flows_window_start_s,
    holdings_weights,
    tokens_at,
)
from domain.state import CustomerState
from schemas.events import (
    CardPaymentMade,
    CustomerProfileUpdated,
    DepositPosted,
    HotlineCallEnded,
    OfferOutcomeRecorded,
    ProductPurchased,
)

CUSTOMER = "C000000042"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
P = FeatureParams()
_seq = iter(range(10**9))


def _head(at: datetime) -> dict:
    return {"event_id": f"ev-{next(_seq):08d}", "customer_id": CUSTOMER, "occurred_at": at}


def deposit(at, amount, *, kind="deposit", purpose="other", balance=0):
    return DepositPosted(**_head(at), source="core_banking", kind=kind, amount_minor=amount, channel="counter",
                         purpose=purpose, balance_after_minor=balance)


def pos(at, amount, category, *, stars=0, luxury=False, country="CN"):
    return CardPaymentMade(**_head(at), source="card_switch", card_token="tok_abcdefgh12", mcc="7011",
                           merchant_category=category, hotel_stars=stars, luxury=luxury, amount_minor=amount,
                           country=country)


def call(at, intent, *, resolved=True, sentiment=0.0):
    return HotlineCallEnded(**_head(at), source="cti", intent=intent, duration_s=120, resolved=resolved,
                            sentiment=sentiment)


def purchase(at, product_id, amount=0):
    return ProductPurchased(**_head(at), source="core_banking", product_id=product_id, amount_minor=amount,
                            channel="branch")


def outcome(at, product_id, result, channel="teller", reason=None):
    return OfferOutcomeRecorded(**_head(at), source="nbo", decision_id="d-abcdef123", product_id=product_id,
                                channel=channel, outcome=result, decline_reason=reason)


def profile(at, birth_year=1980, risk=3, employment="salaried"):
    return CustomerProfileUpdated(**_head(at), source="core_banking", birth_year=birth_year, risk_tolerance=risk,
                                  employment=employment)


def fold(*events, state=None):
    return apply_all(state or CustomerState(CUSTOMER), events, P)


def test_decayed_halves_after_one_half_life():
    assert decayed(100.0, 0.0, 30 * DAY_S, 30.0) == pytest.approx(50.0)
    assert decayed(100.0, 10.0, 5.0, 30.0) == 100.0  # no growth into the past


def test_deposit_sets_balance_and_decayed_inflow_and_large_inflow_signal():
    s = fold(deposit(T0, 6_000_000, balance=9_000_000))
    assert s.balance_minor == 9_000_000
    assert s.inflow_minor == 6_000_000
    assert s.tokens == {"dep:large_inflow": 1.0}
    later = T0 + timedelta(days=30)
    s = fold(deposit(later, 100, kind="withdrawal", balance=8_999_900), state=s)
    assert s.inflow_minor == pytest.approx(3_000_000)  # one 30-day half-life later
    assert s.outflow_minor == 100
    assert s.balance_minor == 8_999_900


def test_salary_and_pension_credits_are_signals_not_large_inflows():
    s = fold(deposit(T0, 9_000_000, purpose="salary"), deposit(T0, 9_000_000, purpose="pension"))
    assert set(s.tokens) == {"dep:salary", "dep:pension"}
    assert s.last_salary_at_s == s.last_pension_at_s == T0.timestamp()


def test_an_older_deposit_does_not_overwrite_the_newer_balance():
    s = fold(deposit(T0, 100, balance=500), deposit(T0 - timedelta(hours=1), 100, balance=400))
    assert s.balance_minor == 500


def test_five_star_hotel_and_luxury_spend_become_tokens_and_spend_by_category():
    s = fold(pos(T0, 250_000, "hotel", stars=5, luxury=True, country="FR"), pos(T0, 3_000, "groceries"))
    assert s.pos_spend == {"hotel": 250_000, "groceries": 3_000}
    assert s.max_hotel_stars == 5
    assert {"pos:hotel", "pos:hotel_5star", "pos:luxury", "pos:abroad", "pos:groceries"} == set(s.tokens)


def test_card_payments_count_as_usage_of_the_card_held_whatever_the_arrival_order():
    first_card = fold(purchase(T0, "debit_card"), pos(T0 + timedelta(hours=1), 1_000, "dining"))
    first_pos = fold(pos(T0 + timedelta(hours=1), 1_000, "dining"), purchase(T0, "debit_card"))
    assert holdings_weights(first_card) == pytest.approx(holdings_weights(first_pos))
    assert holdings_weights(first_card)["debit_card"] == pytest.approx(1.0 + math.log1p(1.0))


def test_complaint_opens_and_a_later_resolved_complaint_call_closes_it():
    s = fold(call(T0, "complaint", resolved=False, sentiment=-0.8))
    assert s.open_complaint and s.complaints == 1
    assert s.satisfaction == pytest.approx(-0.24)
    s = fold(call(T0 + timedelta(days=2), "complaint", resolved=True, sentiment=0.5), state=s)
    assert not s.open_complaint and s.complaints == 2
    assert s.hotline_intents["complaint"] == pytest.approx(1 + 0.5 ** (2 / 30))


def test_a_late_open_complaint_does_not_reopen_a_resolved_one():
    s = fold(call(T0, "complaint", resolved=True), call(T0 - timedelta(days=1), "complaint", resolved=False))
    assert not s.open_complaint and s.complaints == 2


def test_purchase_adds_holding_assets_and_recent_purchases_newest_first():
    s = fold(purchase(T0, "time_deposit_1y", 10_000_000), purchase(T0 + timedelta(days=1), "credit_card_gold"),
             purchase(T0 + timedelta(days=2), "time_deposit_1y", 5_000_000))
    assert s.holdings["time_deposit_1y"].count == 2
    assert s.invested_minor == 15_000_000
    assert [r[0] for r in s.recent_purchases] == ["time_deposit_1y", "credit_card_gold"]
    assert s.purchases == 3


def test_offer_outcomes_build_contact_history_and_daily_counts():
    s = fold(outcome(T0, "credit_card_gold", "shown"),
             outcome(T0 + timedelta(minutes=1), "credit_card_gold", "declined", reason="too_expensive"),
             outcome(T0 + timedelta(minutes=2), "fund_sip", "shown", channel="mobile"))
    card = s.contacts["credit_card_gold"]
    assert (card.shown, card.declines, card.last_decline_reason) == (1, 1, "too_expensive")
    assert card.last_declined_at_s == (T0 + timedelta(minutes=1)).timestamp()
    assert s.daily_contacts == {"2026-03-01|teller": 1, "2026-03-01|mobile": 1}
    s = fold(outcome(T0 + timedelta(days=5), "fund_sip", "shown"), state=s)
    assert s.daily_contacts == {"2026-03-06|teller": 1}  # older days dropped


def test_profile_sets_master_data_and_age():
    s = fold(profile(T0, birth_year=1960, risk=2, employment="retired"))
    assert (s.birth_year, s.risk_tolerance, s.employment) == (1960, 2, "retired")
    assert age_at(s, T0.timestamp()) == 66
    assert age_at(CustomerState(CUSTOMER), T0.timestamp()) is None
    tokens = tokens_at(s, T0.timestamp())
    assert tokens["emp:retired"] == 1.0 and tokens["age:66+"] == 1.0


def test_tokens_at_decays_to_now():
    s = fold(pos(T0, 1_000, "travel"))
    later = (T0 + timedelta(days=90)).timestamp()
    assert tokens_at(s, later)["pos:travel"] == pytest.approx(0.5)
    assert "pos:travel" not in tokens_at(s, (T0 + timedelta(days=900)).timestamp())


def test_value_tier_follows_assets_and_segments_follow_satisfaction():
    rich = fold(deposit(T0, 100, balance=600_000_000), call(T0, "wealth_inquiry", sentiment=1.0))
    assert assets_minor(rich) == 600_000_000
    assert rich.value_tier != "mass"
    assert rich.vs_segment == "A"
    unhappy = fold(call(T0, "complaint", resolved=False, sentiment=-1.0), state=rich)
    assert unhappy.vs_segment == "C"
    mass = fold(deposit(T0, 100, balance=1_000))
    assert (mass.value_tier, mass.vs_segment) == ("mass", "E")


def test_heavy_buyer_who_complains_is_segment_g():
    buys = [purchase(T0 + timedelta(hours=i), f"product_{i}") for i in range(4)]
    s = fold(*buys, call(T0 + timedelta(days=1), "complaint", resolved=False, sentiment=-0.5))
    assert s.vs_segment == "G"
    assert set(VS_STRATEGIES) == set("ABCDEFG")


def test_apply_returns_a_new_state_and_leaves_its_input_alone():
    base = fold(purchase(T0, "debit_card"), outcome(T0, "fund_sip", "shown"), pos(T0, 100, "dining"))
    before = base.to_dict()
    after = apply(base, purchase(T0 + timedelta(days=1), "debit_card"), P)
    after = apply(after, outcome(T0 + timedelta(days=1), "fund_sip", "declined", reason="bad_timing"), P)
    assert base.to_dict() == before
    assert after.holdings["debit_card"].count == 2 and after.contacts["fund_sip"].declines == 1


def test_state_round_trips_through_its_dict_form():
    s = fold(purchase(T0, "debit_card"), outcome(T0, "fund_sip", "shown"), profile(T0))
    assert CustomerState.from_dict(s.to_dict()) == s


def test_money_in_and_out_over_the_last_30_days_are_exact_sums_of_the_amounts():
    now = T0 + timedelta(days=40)
    s = fold(deposit(T0, 1_000_000),  # 40 days before now: outside the window
             deposit(now - timedelta(days=29, hours=1), 300_000),  # on the window's first day
             deposit(now - timedelta(days=10), 250_000, kind="withdrawal"),
             deposit(now - timedelta(days=3), 304_900, kind="withdrawal"),
             deposit(now - timedelta(hours=1), 20_000))
    assert flows_in_window(s, now.timestamp()) == (320_000, 554_900)
    assert flows_window_start_s(now.timestamp()) == (now - timedelta(days=29)).replace(hour=0).timestamp()
    # Read later, the window moves on: the first day's credit has left it.
    assert flows_in_window(s, (now + timedelta(days=1)).timestamp()) == (20_000, 554_900)
    assert flows_in_window(s, (now + timedelta(days=40)).timestamp()) == (0, 0)
    assert flows_in_window(s, now.timestamp(), days=7) == (20_000, 304_900)


def test_a_late_deposit_counts_in_its_own_day_and_one_older_than_the_kept_days_is_dropped():
    now = T0 + timedelta(days=60)
    s = fold(deposit(now, 100), deposit(now - timedelta(days=5), 7_000, kind="withdrawal"),
             deposit(now - timedelta(days=45), 9_999))
    assert flows_in_window(s, now.timestamp()) == (100, 7_000)
    assert len(s.daily_flows) == 2  # nothing older than the kept days is stored


def test_only_the_kept_days_stay_in_the_state_as_time_moves_on():
    s = fold(*[deposit(T0 + timedelta(days=d), 100) for d in range(0, 90, 2)])
    assert len(s.daily_flows) == 15  # every other day of the last 30
    assert min(s.daily_flows) == (T0 + timedelta(days=60)).strftime("%Y-%m-%d")
    s = fold(pos(T0 + timedelta(days=200), 100, "dining"), state=s)  # any newer event moves the window
    assert s.daily_flows == {}


def test_a_state_written_before_daily_flows_existed_still_decodes_and_says_since_when():
    old = fold(deposit(T0, 500_000, balance=500_000)).to_dict()
    del old["daily_flows"], old["daily_flows_from_s"]
    decoded = CustomerState.from_dict(old)
    assert decoded.balance_minor == 500_000 and decoded.daily_flows == {}
    assert decoded.daily_flows_from_s == T0.timestamp()  # its earlier movements were never bucketed
    assert CustomerState.from_dict({"customer_id": CUSTOMER}).daily_flows_from_s == 0.0


# --- properties -----------------------------------------------------------------------------

_kinds = st.sampled_from(["dep", "pos", "call", "buy", "offer"])


@st.composite
def topic_logs(draw):
    """Events of one customer as per-topic logs (each in time order, as Kafka keeps them)."""
    n = draw(st.integers(1, 25))
    events = []
    for i in range(n):
        at = T0 + timedelta(hours=draw(st.integers(0, 24 * 120)))
        kind = draw(_kinds)
        if kind == "dep":
            events.append(("dep", deposit(at, draw(st.integers(1, 10**8)), balance=draw(st.integers(0, 10**9)),
                                          kind=draw(st.sampled_from(["deposit", "withdrawal"])))))
        elif kind == "pos":
            events.append(("pos", pos(at, draw(st.integers(1, 10**7)), draw(st.sampled_from(["hotel", "dining"])),
                                      stars=draw(st.integers(0, 5)))))
        elif kind == "call":
            events.append(("call", call(at, draw(st.sampled_from(["complaint", "loan_inquiry"])),
                                        resolved=draw(st.booleans()), sentiment=draw(st.floats(-1, 1)))))
        elif kind == "buy":
            events.append(("buy", purchase(at, draw(st.sampled_from(["debit_card", "fund_sip"])), 100)))
        else:
            events.append(("offer", outcome(at, "fund_sip", "shown")))
    logs: dict[str, list] = {}
    for topic, event in sorted(events, key=lambda te: te[1].occurred_at):
        logs.setdefault(topic, []).append(event)
    return logs


def _interleave(logs: dict[str, list], choices: list[int]) -> list:
    queues = [list(v) for v in logs.values()]
    out = []
    for c in choices:
        live = [q for q in queues if q]
        if not live:
            break
        out.append(live[c % len(live)].pop(0))
    for q in queues:
        out.extend(q)
    return out


def _assert_same_state(a: CustomerState, b: CustomerState) -> None:
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() == db.keys()
    for key in da:
        x, y = da[key], db[key]
        if isinstance(x, float):
            assert x == pytest.approx(y, rel=1e-9, abs=1e-9), key
        elif isinstance(x, dict) and all(isinstance(v, float) for v in x.values()):
            assert x.keys() == y.keys(), key
            for k in x:
                assert x[k] == pytest.approx(y[k], rel=1e-9, abs=1e-9), (key, k)
        else:
            assert x == y, key


@settings(max_examples=150, deadline=None)
@given(topic_logs(), st.lists(st.integers(0, 10), max_size=60), st.lists(st.integers(0, 10), max_size=60))
def test_any_interleaving_of_the_topics_gives_the_same_state(logs, order_a, order_b):
    a = fold(*_interleave(logs, order_a))
    b = fold(*_interleave(logs, order_b))
    _assert_same_state(a, b)


@settings(max_examples=150, deadline=None)
@given(topic_logs(), st.lists(st.integers(0, 10), max_size=60), st.integers(0, 24 * 40))
def test_windowed_money_totals_are_the_sums_over_the_window_in_any_arrival_order(logs, order, hours_later):
    events = _interleave(logs, order)
    state = fold(*events)
    now_s = state.as_of_s + hours_later * 3600
    first_s = flows_window_start_s(now_s)
    deposits = [e for e in events if isinstance(e, DepositPosted) and first_s <= e.occurred_at.timestamp() <= now_s]
    assert flows_in_window(state, now_s) == (
        sum(e.amount_minor for e in deposits if e.kind == "deposit"),
        sum(e.amount_minor for e in deposits if e.kind == "withdrawal"))


@settings(max_examples=100, deadline=None)
@given(topic_logs(), st.randoms(use_true_random=False))
def test_daily_money_movements_do_not_depend_on_arrival_order_even_within_a_topic(logs, random):
    events = _interleave(logs, [])
    shuffled = random.sample(events, len(events))
    assert fold(*shuffled).daily_flows == fold(*events).daily_flows


@settings(max_examples=50, deadline=None)
@given(topic_logs())
def test_apply_one_by_one_equals_apply_all(logs):
    events = _interleave(logs, [])
    state = CustomerState(CUSTOMER)
    for event in events:
        state = apply(state, event, P)
    _assert_same_state(state, fold(*events))
