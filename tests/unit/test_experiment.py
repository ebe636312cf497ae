"""The control arm: who is in it, and that what a control customer is offered is a uniform draw
from what the bank's rules allow, never a product the rules leave out."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from decisioning import CONTROL, TREATMENT, LoopParams, Policy, arm_of, rank, rank_without_state, seed_from
from decisioning.contact import day_of
from decisioning.experiment import arm_draw, month_of, uniform_choice
from domain.catalog import load_catalog
from domain.state import ContactRecord, CustomerState, Holding
from recommender.model import PriorModel

CATALOG = load_catalog()
MODEL = PriorModel(CATALOG)
JUNE_S = datetime(2026, 6, 10, 9, tzinfo=timezone.utc).timestamp()
LATE_JUNE_S = datetime(2026, 6, 30, 23, 59, tzinfo=timezone.utc).timestamp()
JULY_S = datetime(2026, 7, 1, 0, 1, tzinfo=timezone.utc).timestamp()
DAY_S = 86_400.0
IDS = [f"C{i:09d}" for i in range(100_000)]
ALWAYS_CONTROL = LoopParams(control_share=0.5, control_salt="s")


def control_customer(params: LoopParams, now_s: float, channel: str = "call_centre", start: int = 0) -> str:
    """The first customer id from ``start`` in control on ``channel`` at ``now_s``."""
    return next(c for c in (f"C{i:09d}" for i in range(start, start + 10_000))
                if arm_of(c, channel, now_s, params) == CONTROL)


def customer(customer_id: str, **changes) -> CustomerState:
    state = CustomerState(customer_id, as_of_s=JUNE_S - DAY_S, events_applied=5, birth_year=1985, risk_tolerance=3,
                          employment="salaried", balance_minor=5_000_000, last_balance_at_s=JUNE_S - DAY_S)
    state.holdings = {"demand_deposit": Holding(1, JUNE_S - 400 * DAY_S, JUNE_S - 400 * DAY_S, 0.0)}
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def test_the_control_share_over_100k_customers_is_the_setting():
    params = LoopParams(control_share=0.03, control_salt="bank-secret")
    control = sum(arm_of(c, "mobile", JUNE_S, params) == CONTROL for c in IDS)
    # binomial sd at n = 100k, p = 0.03 is 0.054 %: 4 sd either side
    assert abs(control / len(IDS) - 0.03) < 0.0022


def test_a_channel_share_overrides_the_default_and_the_arms_nest_across_channels():
    params = LoopParams(control_share=0.03, control_share_by_channel={"teller": 0.01}, control_salt="k")
    teller = {c for c in IDS if arm_of(c, "teller", JUNE_S, params) == CONTROL}
    mobile = {c for c in IDS if arm_of(c, "mobile", JUNE_S, params) == CONTROL}
    assert abs(len(teller) / len(IDS) - 0.01) < 0.0013
    assert teller < mobile  # in control at 1 % means in control at 3 % too


def test_the_arm_is_stable_within_a_month_and_redrawn_the_next():
    params = LoopParams(control_share=0.03, control_salt="k")
    june = {c for c in IDS if arm_of(c, "mobile", JUNE_S, params) == CONTROL}
    late_june = {c for c in IDS if arm_of(c, "mobile", LATE_JUNE_S, params) == CONTROL}
    july = {c for c in IDS if arm_of(c, "mobile", JULY_S, params) == CONTROL}
    assert june == late_june
    assert abs(len(july) / len(IDS) - 0.03) < 0.0022
    # independent draws: about 3 % of June's control group is in July's too, never most of it
    assert len(june & july) < 0.1 * len(june)
    assert month_of(LATE_JUNE_S) == "2026-06" and month_of(JULY_S) == "2026-07"


def test_the_salt_keys_the_draw():
    assert arm_draw("C000000042", JUNE_S, "a") != arm_draw("C000000042", JUNE_S, "b")
    assert arm_draw("C000000042", JUNE_S, "a") == arm_draw("C000000042", JUNE_S, "a")


def test_a_share_of_zero_puts_nobody_in_control_and_a_bad_share_is_refused():
    assert all(arm_of(c, "teller", JUNE_S, LoopParams()) == TREATMENT for c in IDS[:1000])
    with pytest.raises(ValueError, match="control_share_by_channel.mobile"):
        LoopParams(control_share_by_channel={"mobile": 0.9})


def test_a_uniform_draw_logs_one_over_n_and_every_product_is_equally_likely_at_every_rank():
    pool = list("abcde")
    first, second = Counter(), Counter()
    for seed in range(20_000):
        chosen, probability = uniform_choice(pool, 2, seed)
        assert probability == 1 / 5 and len(set(chosen)) == 2
        first[chosen[0]] += 1
        second[chosen[1]] += 1
    for counts in (first, second):  # 4,000 expected each; binomial sd ~57
        assert set(counts) == set(pool) and all(abs(n - 4000) < 300 for n in counts.values())
    assert uniform_choice(pool, 2, 7) == uniform_choice(pool, 2, 7)
    assert uniform_choice([], 3, 1) == ([], 0.0)


def test_a_control_customer_gets_a_random_eligible_offer_with_its_probability():
    customer_id = control_customer(ALWAYS_CONTROL, JUNE_S)
    state = customer(customer_id)
    treatment = rank(state, MODEL, CATALOG, Policy(), "call_centre", JUNE_S, 3)
    allowed = [p.product_id for p in CATALOG.products if p.product_id not in treatment.excluded]
    seen: Counter[str] = Counter()
    for seed in range(300):
        decision = rank(state, MODEL, CATALOG, Policy(), "call_centre", JUNE_S, 3, loop=ALWAYS_CONTROL, seed=seed)
        assert decision.arm == CONTROL and decision.rules_applied[-1] == "control_random_eligible"
        assert len(decision.offers) == 3
        assert {o.product.product_id for o in decision.offers} <= set(allowed)
        assert all(o.probability == pytest.approx(1 / len(allowed)) for o in decision.offers)
        assert all(o.reason_en for o in decision.offers), "a control offer still has a true sentence to say"
        seen.update(o.product.product_id for o in decision.offers)
    assert set(seen) == set(allowed), "every allowed product is drawn sometimes"
    # treatment is the ranking: the same customer in treatment gets the model's best three
    assert treatment.arm == TREATMENT and all(o.probability == 1.0 for o in treatment.offers)


def test_the_same_seed_gives_the_same_control_decision_and_another_seed_another():
    state = customer(control_customer(ALWAYS_CONTROL, JUNE_S))
    draws = [tuple(o.product.product_id for o in rank(state, MODEL, CATALOG, Policy(), "mobile", JUNE_S, 3,
                                                       loop=ALWAYS_CONTROL, seed=seed_from(f"d-{i}")).offers)
             for i in (1, 1, 2, 3, 4)]
    assert draws[0] == draws[1] and len(set(draws)) > 2


def test_a_control_customer_gets_no_offer_on_a_no_offer_channel_but_still_the_service_action():
    params = replace(ALWAYS_CONTROL, control_no_offer_channels=frozenset({"mobile"}))
    customer_id = control_customer(params, JUNE_S, "mobile")
    quiet = rank(customer(customer_id), MODEL, CATALOG, Policy(), "mobile", JUNE_S, 3, loop=params, seed=1)
    assert quiet.arm == CONTROL and quiet.offers == [] and quiet.rules_applied[-1] == "control_no_offer"
    complaining = rank(customer(customer_id, open_complaint=True), MODEL, CATALOG, Policy(), "mobile", JUNE_S, 3,
                       loop=params, seed=1)
    assert complaining.offers == [] and complaining.service_action == "resolve_complaint"
    teller = control_customer(params, JUNE_S, "teller")
    assert rank(customer(teller), MODEL, CATALOG, Policy(), "teller", JUNE_S, 1, loop=params, seed=1).offers


def test_a_product_marketing_stopped_is_never_drawn_for_control():
    state = customer(control_customer(ALWAYS_CONTROL, JUNE_S))
    policy = Policy(levers={"fund": 0.0})
    excluded = rank(state, MODEL, CATALOG, Policy(), "mobile", JUNE_S, 6).excluded
    allowed_funds = [p.product_id for p in CATALOG.products if p.family == "fund" and p.product_id not in excluded]
    assert allowed_funds, "the customer may be offered funds when marketing does not stop them"
    for seed in range(200):
        decision = rank(state, MODEL, CATALOG, policy, "mobile", JUNE_S, 6, loop=ALWAYS_CONTROL, seed=seed)
        assert len(decision.offers) == 6 and all(o.product.family != "fund" for o in decision.offers)
        assert all(decision.excluded[pid] == "stopped_by_lever" for pid in allowed_funds)


def test_control_without_a_readable_state_draws_from_the_safe_fallback_or_nothing():
    customer_id = control_customer(ALWAYS_CONTROL, JUNE_S, "teller")
    decision = rank_without_state(customer_id, CATALOG, Policy(), "teller", JUNE_S, 1, loop=ALWAYS_CONTROL, seed=3)
    assert decision.arm == CONTROL and decision.degraded and len(decision.offers) == 1
    assert decision.offers[0].probability == pytest.approx(1 / len([p for p in CATALOG.products
                                                                    if p.product_id in
                                                                    {"mobile_banking", "time_deposit_1y",
                                                                     "money_market_fund", "utility_autopay",
                                                                     "debit_card"} and "teller" in p.channels]))
    none = rank_without_state(customer_id, CATALOG, Policy(), "teller", JUNE_S, 1, seed=3,
                              loop=replace(ALWAYS_CONTROL, control_no_offer_channels=frozenset({"teller"})))
    assert none.offers == [] and none.arm == CONTROL


def test_a_new_customer_in_control_draws_from_the_cold_start_offers():
    customer_id = control_customer(ALWAYS_CONTROL, JUNE_S, "mobile")
    cold = rank(CustomerState(customer_id), MODEL, CATALOG, Policy(), "mobile", JUNE_S, 3)
    pool = {o.product.product_id for o in rank(CustomerState(customer_id), MODEL, CATALOG, Policy(), "mobile",
                                               JUNE_S, 50).offers}
    drawn = rank(CustomerState(customer_id), MODEL, CATALOG, Policy(), "mobile", JUNE_S, 3, loop=ALWAYS_CONTROL,
                 seed=5)
    assert cold.arm == TREATMENT and drawn.arm == CONTROL
    assert {o.product.product_id for o in drawn.offers} <= pool and len(drawn.offers) == min(3, len(pool))
    assert all(o.probability == pytest.approx(1 / len(pool)) for o in drawn.offers)


# --- property: whatever the customer, control never offers what the rules leave out ------------

PRODUCT_IDS = [p.product_id for p in CATALOG.products]
REASONS = ["not_interested", "has_it_elsewhere", "too_expensive", "bad_timing", "needs_advice", "complaint", "other"]


@st.composite
def states(draw: st.DrawFn) -> tuple[CustomerState, str, int]:
    customer_id = control_customer(ALWAYS_CONTROL, JUNE_S, start=draw(st.integers(0, 500)))
    held = draw(st.lists(st.sampled_from(PRODUCT_IDS), max_size=6, unique=True))
    declined = draw(st.lists(st.tuples(st.sampled_from(PRODUCT_IDS), st.sampled_from(REASONS),
                                       st.floats(0, 400)), max_size=6))
    accepted = draw(st.lists(st.sampled_from(PRODUCT_IDS), max_size=2, unique=True))
    channel = draw(st.sampled_from(["teller", "call_centre", "mobile"]))
    state = customer(
        customer_id,
        birth_year=draw(st.one_of(st.none(), st.integers(1930, 2008))),
        risk_tolerance=draw(st.one_of(st.none(), st.integers(1, 5))),
        balance_minor=draw(st.integers(0, 500_000_000)),
        value_tier=draw(st.sampled_from(["mass", "affluent", "high_net_worth", "private"])),
        vs_segment=draw(st.sampled_from(list("ABCDEFG"))),
        open_complaint=draw(st.booleans()),
        holdings={pid: Holding(1, JUNE_S - 100 * DAY_S, JUNE_S - 100 * DAY_S, 0.0) for pid in held},
        daily_contacts={f"{day_of(JUNE_S)}|{channel}": draw(st.integers(0, 7))},
    )
    for pid, reason, days_ago in declined:
        state.contacts[pid] = ContactRecord(last_declined_at_s=JUNE_S - days_ago * DAY_S, last_decline_reason=reason,
                                            declines=1, last_outcome="declined",
                                            last_outcome_at_s=JUNE_S - days_ago * DAY_S)
    for pid in accepted:
        state.contacts[pid] = ContactRecord(last_accepted_at_s=JUNE_S - 2 * DAY_S, accepts=1, last_outcome="accepted",
                                            last_outcome_at_s=JUNE_S - 2 * DAY_S)
    return state, channel, draw(st.integers(0, 2 ** 63))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states(), st.integers(1, 6))
def test_control_offers_are_always_ones_the_rules_allow(case, limit):
    state, channel, seed = case
    treatment = rank(state, MODEL, CATALOG, Policy(), channel, JUNE_S, limit)
    control = rank(state, MODEL, CATALOG, Policy(), channel, JUNE_S, limit, loop=ALWAYS_CONTROL, seed=seed)
    allowed = {p.product_id for p in CATALOG.products} - set(treatment.excluded)
    offered = [o.product.product_id for o in control.offers]
    assert control.arm == CONTROL
    assert set(offered) <= allowed and len(set(offered)) == len(offered)
    # the same number of offers as the ranking: the daily caps and the limit bind control too
    assert len(offered) == len(treatment.offers)
    assert control.service_action == treatment.service_action
    assert all(o.probability == pytest.approx(1 / len(allowed)) for o in control.offers)


def test_the_requests_generator_gives_a_seeds_draws_on_any_thread_and_other_seeds_other_draws():
    import threading

    from decisioning.experiment import generator

    first = generator(5).random(4).tolist()
    assert generator(6).random(4).tolist() != first
    assert generator(5).random(4).tolist() == first
    on_another: list[list[float]] = []
    thread = threading.Thread(target=lambda: on_another.append(generator(5).random(4).tolist()))
    thread.start()
    thread.join(timeout=10)
    assert on_another == [first]
    # neighbouring seeds (tests use 0, 1, 2, ...) start far apart: their first draws do not repeat
    starts = {round(generator(s).random(), 12) for s in range(1000)}
    assert len(starts) == 1000
