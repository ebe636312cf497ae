"""The calibration step: online answers move a product's rank; with nothing learned the ranking
is exactly the model's; on an explore channel a Thompson sample ranks, and the probability it
logs for each offer is the policy's own (checked against running the policy many times)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from decisioning import LoopParams, Policy, rank
from decisioning.calibration import PROPENSITY_DRAWS
from decisioning.policy import DEFAULT_CHAIN
from domain.catalog import load_catalog
from domain.learning import Evidence
from domain.state import CustomerState, Holding
from recommender.model import PriorModel, ScoredProducts

CATALOG = load_catalog()
PRIOR = PriorModel(CATALOG)
NOW_S = datetime(2026, 6, 10, 9, tzinfo=timezone.utc).timestamp()
DAY_S = 86_400.0
EXPLOIT = LoopParams()
EXPLORE = LoopParams(explore_channels=frozenset({"mobile"}))
WITHOUT_CALIBRATION = Policy(chain=tuple(s for s in DEFAULT_CHAIN if s != "calibration"))


class BoostedModel:
    """Distinct propensities for every product, and a similar-after-purchase boost on two."""

    version = "boosted"
    similar_weight = 1.5

    def __init__(self) -> None:
        self.product_ids = CATALOG.ids
        rng = np.random.default_rng(4)
        self.propensity = rng.uniform(0.01, 0.4, len(self.product_ids))
        self.boost = np.zeros(len(self.product_ids))
        self.boost[CATALOG.index["fund_sip"]] = 0.8
        self.boost[CATALOG.index["money_market_fund"]] = 0.5

    def score(self, held, tokens, recent, now_s, segment) -> ScoredProducts:
        because = tuple("bond_fund" if b > 0 else None for b in self.boost)
        return ScoredProducts(self.product_ids, self.propensity, self.boost, because,
                              self.propensity * (1 + self.similar_weight * self.boost))


MODELS = {"prior": PRIOR, "boosted": BoostedModel()}


def customer(**changes) -> CustomerState:
    state = CustomerState("C000000007", as_of_s=NOW_S - DAY_S, events_applied=5, birth_year=1980, risk_tolerance=4,
                          employment="salaried", balance_minor=50_000_000, last_balance_at_s=NOW_S - DAY_S,
                          vs_segment="B", value_tier="affluent")
    state.holdings = {"demand_deposit": Holding(1, NOW_S - 400 * DAY_S, NOW_S - 400 * DAY_S, 0.0)}
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def ranked(decision) -> list[tuple[str, float]]:
    return [(o.product.product_id, o.score) for o in decision.offers]


def ids(decision) -> list[str]:
    return [o.product.product_id for o in decision.offers]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(sorted(MODELS)), channel=st.sampled_from(["teller", "call_centre", "mobile"]),
       risk=st.integers(1, 5), balance=st.integers(0, 300_000_000), segment=st.sampled_from(list("ABCDEF")),
       limit=st.integers(1, 8))
def test_with_nothing_learned_the_ranking_is_exactly_the_models(model, channel, risk, balance, segment, limit):
    state = customer(risk_tolerance=risk, balance_minor=balance, vs_segment=segment)
    with_step = rank(state, MODELS[model], CATALOG, Policy(), channel, NOW_S, limit, loop=EXPLOIT, evidence={})
    without = rank(state, MODELS[model], CATALOG, WITHOUT_CALIBRATION, channel, NOW_S, limit)
    assert ranked(with_step) == ranked(without)  # same products, same order, same scores to the bit
    assert all(o.probability == 1.0 and o.calibrated is None for o in with_step.offers)


def test_evidence_of_the_older_form_changes_nothing():
    state = customer()
    before = ranked(rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 6))
    first = before[0][0]
    legacy = {first: Evidence(0.0, 500.0, NOW_S, None), "*": Evidence(3.0, 900.0, NOW_S, None)}
    assert ranked(rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 6, evidence=legacy)) == before


class TierModel:
    """Propensities that differ by customer (value tier): mixed_fund first for both tiers, then
    index_fund before car_loan for the affluent and car_loan before index_fund for the mass tier."""

    version = "tiers"
    similar_weight = 0.0
    SCORES = {"affluent": {"mixed_fund": 0.30, "index_fund": 0.20, "car_loan": 0.08},
              "mass": {"mixed_fund": 0.30, "car_loan": 0.22, "index_fund": 0.10}}

    def __init__(self) -> None:
        self.product_ids = CATALOG.ids

    def score(self, held, tokens, recent, now_s, segment) -> ScoredProducts:
        wanted = self.SCORES[segment]
        p = np.array([wanted.get(pid, 0.001) for pid in self.product_ids])
        zeros = np.zeros(len(p))
        return ScoredProducts(self.product_ids, p, zeros, tuple(None for _ in p), p)


def test_a_product_accepted_less_than_expected_moves_down_for_everyone_and_each_customers_order_stays():
    """Known answer: on the mobile slots mixed_fund was accepted 2 times where the model expected
    200, index_fund and car_loan as often as expected (40 and 30). mixed_fund leaves the top for
    both customers, and each keeps their own order of the other two."""
    model = TierModel()
    rich, mass = customer(value_tier="affluent"), customer(value_tier="mass")
    counts = {"mixed_fund": (2.0, 1998.0, 200.0), "index_fund": (40.0, 360.0, 40.0), "car_loan": (30.0, 270.0, 30.0),
              "*": (72.0, 2628.0, 270.0)}
    evidence = {name + suffix: Evidence(a, o, NOW_S, x) for name, (a, o, x) in counts.items() for suffix in ("", "@mobile")}
    order = {}
    for name, state in (("rich", rich), ("mass", mass)):
        before = ids(rank(state, model, CATALOG, Policy(), "mobile", NOW_S, 3))
        after = rank(state, model, CATALOG, Policy(), "mobile", NOW_S, 3, evidence=evidence)
        assert before[0] == "mixed_fund", before
        assert ids(after)[2] == "mixed_fund", (name, before, ids(after))
        assert ids(after)[:2] == [p for p in before if p != "mixed_fund"][:2], (name, before, ids(after))
        order[name] = ids(after)[:2]
        # the calibrated value: propensity x R_mobile x phi, phi = (k + accepts) / (k / theta +
        # R_mobile x expected) on mobile, theta the same over every channel with prior mean 1; k = 5
        k = EXPLOIT.starting_evidence
        assert k == 5
        overall = (k + 72) / (k + 270)
        mobile = (k + 72) / (k / overall + 270)
        theta = (k + 2) / (k + mobile * 200)
        fund = next(o for o in after.offers if o.product.product_id == "mixed_fund")
        assert fund.calibrated == pytest.approx(0.30 * mobile * (k + 2) / (k / theta + mobile * 200))
        assert fund.propensity == 0.30  # the model's own stays in the record
    assert order["rich"] == ["index_fund", "car_loan"] and order["mass"] == ["car_loan", "index_fund"]


def test_a_product_answered_where_offers_sell_well_does_not_rise_on_a_channel_where_they_sell_less():
    """index_fund was offered by agents, who sell 9 x what the model expects of any product;
    mixed_fund in mobile slots, which sell as expected. Each sold as its channel does, so on
    mobile the customer's own order (mixed_fund first) stays; pooled over the channels,
    index_fund would have looked 9 x better."""
    model = TierModel()
    state = customer(value_tier="affluent")
    counts = {"index_fund@call_centre": (900.0, 9100.0, 100.0), "*@call_centre": (900.0, 9100.0, 100.0),
              "mixed_fund@mobile": (300.0, 9700.0, 300.0), "*@mobile": (300.0, 9700.0, 300.0),
              "index_fund": (900.0, 9100.0, 100.0), "mixed_fund": (300.0, 9700.0, 300.0), "*": (1200.0, 18800.0, 400.0)}
    evidence = {name: Evidence(a, o, NOW_S, x) for name, (a, o, x) in counts.items()}
    after = rank(state, model, CATALOG, Policy(), "mobile", NOW_S, 3, evidence=evidence)
    assert ids(after)[:2] == ["mixed_fund", "index_fund"]
    by_id = {o.product.product_id: o for o in after.offers}
    # both near the mobile channel's own ratio (~1): theta ~1 each once the channel is taken out
    assert by_id["index_fund"].calibrated / 0.20 == pytest.approx(by_id["mixed_fund"].calibrated / 0.30, rel=0.15)


def test_a_product_customers_keep_declining_moves_down_and_one_they_accept_moves_up():
    state = customer()
    before = ids(rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 6))  # mobile: exploits by default here
    first, fifth = before[0], before[4]
    evidence = {f"{first}@mobile": Evidence(0.0, 500.0, NOW_S, 100.0), f"{fifth}@mobile": Evidence(300.0, 20.0, NOW_S, 30.0)}
    after = ids(rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 6, evidence=evidence))
    assert first not in after[:3], (before, after)
    assert after[0] == fifth, (before, after)


def test_the_segments_evidence_counts_once_it_has_enough_answers():
    state = customer(vs_segment="B")
    first = ids(rank(state, PRIOR, CATALOG, Policy(), "call_centre", NOW_S, 3))[0]
    # Overall the product does as the model expects; in segment B it is declined.
    overall = {first: Evidence(100.0, 700.0, NOW_S, 100.0), f"{first}@call_centre": Evidence(100.0, 700.0, NOW_S, 100.0)}
    few = {**overall, f"{first}|B": Evidence(0.0, 40.0, NOW_S, 40.0)}  # under segment_min_evidence (50)
    enough = {**overall, f"{first}|B": Evidence(0.0, 400.0, NOW_S, 400.0)}
    other_segment = {**overall, f"{first}|D": Evidence(0.0, 400.0, NOW_S, 400.0)}
    loop = LoopParams(segment_min_evidence=50)
    assert ids(rank(state, PRIOR, CATALOG, Policy(), "call_centre", NOW_S, 3, loop=loop, evidence=few))[0] == first
    assert ids(rank(state, PRIOR, CATALOG, Policy(), "call_centre", NOW_S, 3, loop=loop,
                    evidence=other_segment))[0] == first
    assert first not in ids(rank(state, PRIOR, CATALOG, Policy(), "call_centre", NOW_S, 3, loop=loop,
                                 evidence=enough))


def test_old_answers_fade_with_the_half_life():
    state = customer()
    before = ids(rank(state, PRIOR, CATALOG, Policy(), "call_centre", NOW_S, 3))
    year_old = {f"{before[0]}@call_centre": Evidence(0.0, 100.0, NOW_S - 365 * DAY_S, 100.0)}  # 12 half-lives
    assert ids(rank(state, PRIOR, CATALOG, Policy(), "call_centre", NOW_S, 3, evidence=year_old)) == before
    fresh = {f"{before[0]}@call_centre": Evidence(0.0, 100.0, NOW_S, 100.0)}
    assert ids(rank(state, PRIOR, CATALOG, Policy(), "call_centre", NOW_S, 3, evidence=fresh))[0] != before[0]


def test_the_boost_and_levers_act_on_the_calibrated_propensity():
    model = MODELS["boosted"]
    state = customer()
    evidence = {"fund_sip@mobile": Evidence(30.0, 30.0, NOW_S, 10.0)}
    pushed = Policy(levers={"fund_sip": 100.0})  # first either way, so both lists show it
    decision = rank(state, model, CATALOG, pushed, "mobile", NOW_S, 3, evidence=evidence)
    sip = next(o for o in decision.offers if o.product.product_id == "fund_sip")
    p = sip.propensity
    theta = (5 + 30) / (5 + 10)  # k = 5, the mobile slots the only channel with answers (R = 1)
    ratio = (5 + 30) / (5 / theta + 10)  # phi: on mobile, prior mean theta
    plain = rank(state, model, CATALOG, replace(pushed, chain=WITHOUT_CALIBRATION.chain), "mobile", NOW_S, 3)
    sip_plain = next(o for o in plain.offers if o.product.product_id == "fund_sip")
    assert sip.calibrated == pytest.approx(p * ratio)
    assert sip.score == pytest.approx(sip_plain.score * ratio)  # same boost, value, fit and lever factor


# --- exploration ----------------------------------------------------------------------------------

def test_an_explore_channel_ranks_by_a_seeded_thompson_sample():
    state = customer()
    draws = [tuple(ids(rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 3, loop=EXPLORE, seed=s)))
             for s in range(40)]
    assert len(set(draws)) > 5, "different seeds explore different rankings"
    assert draws[7] == tuple(ids(rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 3, loop=EXPLORE, seed=7)))
    exploit = ids(rank(state, PRIOR, CATALOG, Policy(), "teller", NOW_S, 2, loop=EXPLORE, seed=1))
    assert all(ids(rank(state, PRIOR, CATALOG, Policy(), "teller", NOW_S, 2, loop=EXPLORE, seed=s)) == exploit
               for s in range(10)), "a channel outside explore_channels stays deterministic"


def _binomial_error(truth: float) -> tuple[float, float]:
    """The expected absolute and signed error of an estimate from PROPENSITY_DRAWS draws (the
    share of draws, at least 0.5 / draws) when the probability is ``truth``: exact, binomial."""
    n = PROPENSITY_DRAWS
    pmf = [math.comb(n, c) * truth ** c * (1 - truth) ** (n - c) for c in range(n + 1)]
    errors = [max(c, 0.5) / n - truth for c in range(n + 1)]
    return sum(w * abs(e) for w, e in zip(pmf, errors)), sum(w * e for w, e in zip(pmf, errors))


def test_the_logged_thompson_probability_is_the_policys_own():
    """Run the policy itself 6,000 times (different seeds) for one customer: how often each
    product lands at each rank is the probability the policy shows it there. Over 200 decisions,
    every logged estimate (PROPENSITY_DRAWS draws) is within 4 of its standard errors of that,
    plus the brute force's own error; the estimates are unbiased (their mean error is the
    floor's, within 3 standard errors) and as accurate as PROPENSITY_DRAWS draws can be (mean
    absolute error within 10 % of the exact binomial figure)."""
    state = customer()
    runs = 6000
    at_rank: Counter[tuple[str, int]] = Counter()
    for seed in range(10_000, 10_000 + runs):
        for r, pid in enumerate(ids(rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 3, loop=EXPLORE,
                                         seed=seed))):
            at_rank[pid, r] += 1
    errors, expected_abs, expected_bias, truth_se = [], [], [], []
    for seed in range(200):
        decision = rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 3, loop=EXPLORE, seed=seed)
        for r, offer in enumerate(decision.offers):
            truth = at_rank[offer.product.product_id, r] / runs
            tolerance = 4 * np.sqrt(max(truth * (1 - truth), 0.01) / PROPENSITY_DRAWS) + 4 * np.sqrt(0.25 / runs)
            assert abs(offer.probability - truth) <= tolerance, (offer.product.product_id, r, offer.probability, truth)
            errors.append(offer.probability - truth)
            absolute, bias = _binomial_error(truth)
            expected_abs.append(absolute)
            expected_bias.append(bias)
            truth_se.append(np.sqrt(truth * (1 - truth) / runs))
    standard_error = np.std(errors) / np.sqrt(len(errors))
    assert abs(np.mean(errors) - np.mean(expected_bias)) <= 3 * standard_error + np.mean(truth_se)
    assert np.mean(np.abs(errors)) <= 1.1 * np.mean(expected_abs) + np.mean(truth_se)


def test_with_one_slot_the_probabilities_of_all_products_sum_to_one():
    state = customer()
    estimates: dict[str, list[float]] = {}
    for seed in range(400):
        offer = rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 1, loop=EXPLORE, seed=seed).offers[0]
        estimates.setdefault(offer.product.product_id, []).append(offer.probability)
    # every product that was ever shown first, with its mean estimate: together about all the mass
    assert 0.9 <= sum(np.mean(e) for e in estimates.values()) <= 1.1


def test_exploration_follows_the_evidence():
    state = customer()
    favourite = ids(rank(state, PRIOR, CATALOG, Policy(), "call_centre", NOW_S, 1))[0]
    declined = {f"{favourite}@mobile": Evidence(0.0, 2000.0, NOW_S, 1000.0)}
    firsts = Counter(ids(rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 1, loop=EXPLORE, seed=s,
                              evidence=declined))[0] for s in range(300))
    assert firsts[favourite] == 0
    loop = replace(EXPLORE, starting_evidence=20)
    assert rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 1, loop=loop, seed=3).offers[0].posterior is not None


EVIDENCE = st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(-5, 400), st.floats(0, 300))
FIELDS = ["gold_account", "gold_account|B", "gold_account@mobile", "gold_account@teller", "fund_sip|B", "*", "*@mobile",
          "*@teller"]


def _evidence(counts):  # type: ignore[no-untyped-def]
    return {name: Evidence(a, o, NOW_S - age_days * DAY_S, x) for name, (a, o, age_days, x) in counts.items()}


@settings(max_examples=200, deadline=None)
@given(counts=st.dictionaries(st.sampled_from(FIELDS), EVIDENCE), segment=st.sampled_from(["B", "D", None]),
       channel=st.sampled_from(["mobile", "teller", "call_centre"]), minimum=st.sampled_from([0.0, 50.0]))
def test_the_steps_fast_path_is_the_reference_posterior(counts, segment, channel, minimum):
    from decisioning.calibration import _Informed, posterior_for

    evidence = _evidence(counts)
    loop = LoopParams(segment_min_evidence=minimum)
    fast = _Informed(evidence, segment, channel, NOW_S, loop)
    for pid in ("gold_account", "fund_sip"):
        assert fast(pid) == pytest.approx(posterior_for(evidence, pid, segment, channel, NOW_S, loop))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=st.dictionaries(st.sampled_from(["gold_account", "fund_sip", "bond_fund", "money_market_fund",
                                               "gold_account|B", "fund_sip|B", "bond_fund|D", "*", "fund_sip@mobile",
                                               "bond_fund@mobile", "bond_fund@teller", "*@mobile", "*@teller"]),
                              st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(0, 90), st.floats(0, 300)),
                              max_size=8))
def test_every_candidates_calibrated_value_is_its_propensity_times_the_posterior_ratio(counts):
    from decisioning.calibration import posterior_for

    evidence = _evidence(counts)
    state = customer(vs_segment="B")
    decision = rank(state, PRIOR, CATALOG, Policy(), "mobile", NOW_S, 6, evidence=evidence)
    for offer in decision.offers:
        if not evidence:
            assert offer.calibrated is None
        shape, rate = posterior_for(evidence, offer.product.product_id, "B", "mobile", NOW_S, EXPLOIT)
        value = offer.propensity if offer.calibrated is None else offer.calibrated  # None: left as the model's
        assert value == pytest.approx(offer.propensity * shape / rate)


def test_a_control_arm_offer_carries_the_models_own_propensity_for_the_evidence():
    """The stream's expected is the propensity the decision logged: in the control arm (a random
    eligible offer) it is still the model's score for that customer and product, untouched by
    the evidence."""
    from decisioning.experiment import CONTROL, arm_of

    loop = LoopParams(control_share=0.5)
    customer_id = next(c for c in (f"C{i:09d}" for i in range(1, 200)) if arm_of(c, "mobile", NOW_S, loop) == CONTROL)
    model = TierModel()
    state = customer(customer_id=customer_id, value_tier="mass")
    evidence = {"car_loan@mobile": Evidence(0.0, 900.0, NOW_S, 300.0), "car_loan": Evidence(0.0, 900.0, NOW_S, 300.0)}
    for seed in range(20):
        decision = rank(state, model, CATALOG, Policy(), "mobile", NOW_S, 3, loop=loop, evidence=evidence, seed=seed)
        assert decision.arm == CONTROL and decision.offers
        for offer in decision.offers:
            assert offer.propensity == TierModel.SCORES["mass"].get(offer.product.product_id, 0.001)
