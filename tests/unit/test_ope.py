"""Known-answer tests of off-policy evaluation and the lift statistics: synthetic logs whose
logging probabilities and true acceptance rates are known, so the right estimate is known."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from decisioning import Policy
from domain.catalog import load_catalog
from recommender.model import ScoredProducts
from recommender.ope import (
    TargetSlate, Unit, doubly_robust, effective_sample_size, evaluate, first_decisions, ips, ips_difference,
    not_worse, observed,
    relative_lift, replay_slates, snips, units_from_logs,
)
from schemas.events import CustomerProfileUpdated, DepositPosted, ProductPurchased

K = 5  # actions
X = 40  # contexts


def world(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True acceptance r[x, a] and a greedy choice g[x] that is right most of the time."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.02, 0.4, size=(X, K))
    g = r.argmax(axis=1)
    g[: X // 5] = (g[: X // 5] + 1) % K  # a fifth of contexts: the greedy choice is not the best
    return r, g


def log(r: np.ndarray, probs: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n logged rounds: context, action drawn from probs[x], its probability, reward."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, X, size=n)
    u = rng.random(n)
    a = (probs[x].cumsum(axis=1) < u[:, None]).sum(axis=1)
    y = (rng.random(n) < r[x, a]).astype(float)
    return x, a, probs[x, a], y


def greedy_probs(g: np.ndarray) -> np.ndarray:
    probs = np.zeros((X, K))
    probs[np.arange(X), g] = 1.0
    return probs


def epsilon_greedy(g: np.ndarray, eps: float) -> np.ndarray:
    return (1 - eps) * greedy_probs(g) + eps / K


def true_value(r: np.ndarray, probs: np.ndarray) -> float:
    return float((r * probs).sum(axis=1).mean())  # contexts are uniform


def test_ips_of_the_logging_policy_matches_its_observed_rate_for_an_epsilon_greedy_and_a_uniform_logger():
    r, g = world()
    for logger in (epsilon_greedy(g, 0.2), np.full((X, K), 1 / K)):
        x, a, p, y = log(r, logger, 20_000, seed=1)
        target = logger[x, a]  # the logging policy's probabilities, from its definition
        estimate, seen = ips(y, p, target), observed(y)
        assert estimate.covers(seen.value)
        assert estimate.covers(true_value(r, logger))


def test_ips_snips_and_dr_recover_the_greedy_policy_from_exploratory_logs():
    r, g = world()
    target_probs = greedy_probs(g)
    truth = true_value(r, target_probs)
    for logger in (epsilon_greedy(g, 0.3), np.full((X, K), 1 / K)):
        x, a, p, y = log(r, logger, 40_000, seed=2)
        pi = target_probs[x, a]
        noisy_q = np.clip(r + np.random.default_rng(3).normal(0, 0.05, r.shape), 0, 1)
        for estimate in (ips(y, p, pi), snips(y, p, pi), doubly_robust(y, p, pi, noisy_q[x, a], noisy_q[x, g[x]])):
            assert estimate.covers(truth), (estimate, truth)
        # the greedy policy is not the logger: its value differs from the observed rate
        assert abs(observed(y).value - truth) > 0.01


def test_a_perfect_reward_model_makes_doubly_robust_tighter_than_ips():
    r, g = world()
    x, a, p, y = log(r, np.full((X, K), 1 / K), 20_000, seed=4)
    pi = greedy_probs(g)[x, a]
    assert doubly_robust(y, p, pi, r[x, a], r[x, g[x]]).se < 0.9 * ips(y, p, pi).se


def arms_log(r: np.ndarray, g: np.ndarray, control_share: float, n: int, seed: int):
    """A hashed control arm: treatment contexts get the greedy choice (p = 1), control ones a uniform one."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, X, size=n)
    control = rng.random(n) < control_share
    a = np.where(control, rng.integers(0, K, size=n), g[x])
    p = np.where(control, 1 / K, 1.0)
    y = (rng.random(n) < r[x, a]).astype(float)
    return x, a, p, y, control


def test_the_serving_ranking_replayed_on_pooled_arm_logs_matches_the_treatment_arms_observed_rate():
    r, g = world()
    x, a, p, y, control = arms_log(r, g, 0.1, 30_000, seed=5)
    pi = (a == g[x]).astype(float)
    assert ips(y, p, pi).covers(observed(y[~control]).value)


def test_wrongly_logged_probabilities_fail_the_check():
    """A logger that writes 1.0 for its random control choices: the same check now fails."""
    r, g = world()
    x, a, _, y, control = arms_log(r, g, 0.3, 30_000, seed=6)
    pi = (a == g[x]).astype(float)
    wrong = np.ones(len(y))
    assert not ips(y, wrong, pi).covers(observed(y[~control]).value)


def two_visit_log(customers: int, control_share: float, seed: int, wrong_control_p: bool = False):
    """Customers visit twice; the treatment arm shows its best product (p = 1), the control arm a
    uniform one (p = 1/K). A customer who accepted a product holds it, one who declined it is held
    back from it: at the second visit the ranking (and its replay) shows the next best. Returns the
    units and the ranking's slates."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.05, 0.9, size=(customers, K))
    order = np.argsort(-r, axis=1)
    control = rng.random(customers) < control_share
    units, slates = [], {}
    held = np.zeros((customers, K), dtype=bool)
    for visit in range(2):
        for c in range(customers):
            best = next(int(a) for a in order[c] if not held[c, a])
            a = int(rng.integers(0, K)) if control[c] else best
            y = bool(rng.random() < (0.0 if held[c, a] else r[c, a]))
            held[c, a] = True  # bought, or declined and held back
            decision = f"d-{visit}-{c}"
            p = 1.0 if not control[c] or wrong_control_p else 1 / K
            units.append(Unit(decision, f"C{c}", "mobile", "control" if control[c] else "treatment", 1,
                              str(a), p, y, float(visit)))
            slates[decision] = TargetSlate((str(best),), {})
    return units, slates


def test_the_ranking_replayed_on_later_control_decisions_oversells_but_first_decisions_match():
    """The treated customers were sold their best product at the first visit, control customers
    were not: on the whole log the serving ranking's IPS is above the treatment arm's rate with
    nothing wrong in the log; on each customer's first decision it covers it."""
    units, slates = two_visit_log(20_000, 0.3, seed=7)
    whole = evaluate(units, slates)
    assert whole.ips.value > whole.by_arm["treatment"].value and not whole.ips.covers(whole.by_arm["treatment"].value)
    first = evaluate(first_decisions(units), slates)
    assert len(first_decisions(units)) == 20_000 and all(u.at_s == 0.0 for u in first_decisions(units))
    assert first.ips.covers(first.by_arm["treatment"].value)


def test_the_mean_importance_weight_covers_1_only_when_the_logged_probabilities_are_right():
    units, slates = two_visit_log(5_000, 0.3, seed=8)
    control = [u for u in units if u.arm == "control"]
    assert evaluate(control, slates).mean_weight.covers(1.0)
    wrong, slates = two_visit_log(5_000, 0.3, seed=8, wrong_control_p=True)
    assert evaluate([u for u in wrong if u.arm == "control"], slates).mean_weight.high < 0.5


def test_effective_sample_size_counts_the_units_the_target_agrees_with():
    assert effective_sample_size([0.5] * 4, [1.0, 1.0, 0.0, 0.0]) == pytest.approx(2.0)
    assert effective_sample_size([1.0] * 3, [1.0] * 3) == pytest.approx(3.0)


def test_probabilities_out_of_range_are_refused():
    with pytest.raises(ValueError, match="logged probabilities"):
        ips([1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="one length"):
        ips([1.0, 0.0], [0.5], [1.0])


def test_relative_lift_known_answer():
    lift = relative_lift(120, 1000, 100, 1000)
    assert lift.treatment_rate == pytest.approx(0.12) and lift.control_rate == pytest.approx(0.10)
    assert lift.lift == pytest.approx(0.2)
    # var_t / pc^2 + pt^2 var_c / pc^4
    assert lift.se == pytest.approx(np.sqrt(0.12 * 0.88 / 1000 / 0.01 + 0.0144 * 0.09 / 1000 / 1e-4))
    se_log = np.sqrt(0.88 / 120 + 0.9 / 100)
    assert lift.low == pytest.approx(1.2 * np.exp(-1.959964 * se_log) - 1)
    assert lift.high == pytest.approx(1.2 * np.exp(1.959964 * se_log) - 1)


def test_the_lift_interval_never_reaches_below_minus_100_percent_with_few_control_successes():
    lift = relative_lift(12, 1000, 3, 500)
    assert -1.0 < lift.low < 0 < lift.lift < lift.high
    assert lift.lift - 1.96 * lift.se < -1.0  # the linear interval would


def test_relative_lift_interval_covers_the_true_lift_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    pt, pc, nt, nc = 0.15, 0.10, 4000, 1500
    covered = 0
    for _ in range(400):
        lift = relative_lift(int(rng.binomial(nt, pt)), nt, int(rng.binomial(nc, pc)), nc)
        covered += lift.low <= pt / pc - 1 <= lift.high
    assert 0.90 <= covered / 400 <= 0.99


def test_relative_lift_without_control_successes_is_not_a_number():
    assert np.isnan(relative_lift(10, 100, 0, 100).lift)
    assert np.isnan(relative_lift(10, 100, 0, 0).lift)


def decision_record(decision_id, customer_id, offers, arm="treatment", degraded=False, at="2026-03-01T10:00:00Z",
                    channel="mobile"):
    return {"type": "offer_decision", "decision_id": decision_id, "customer_id": customer_id, "channel": channel,
            "occurred_at": at, "arm": arm, "degraded": degraded,
            "offers": [{"product_id": pid, "rank": k + 1, "score": 0.1, "propensity": 0.1, "probability": prob}
                       for k, (pid, prob) in enumerate(offers)]}


def test_units_join_decisions_and_outcomes_per_shown_offer():
    decisions = [
        decision_record("d-000001", "C000000001", [("fund_sip", 1.0), ("gold_accumulation", 1.0)]),
        decision_record("d-000002", "C000000002", [("gold_accumulation", 0.25)], arm="control"),
        decision_record("d-000003", "C000000003", [("fund_sip", 1.0)], degraded=True),
        decision_record("d-000004", "C000000004", [("fund_sip", None)]),
    ]
    outcomes = [
        {"decision_id": "d-000001", "product_id": "gold_accumulation", "outcome": "accepted"},
        {"decision_id": "d-000002", "product_id": "gold_accumulation", "outcome": "declined"},
        {"decision_id": "d-000003", "product_id": "fund_sip", "outcome": "accepted"},
    ]
    units = units_from_logs(decisions, outcomes)
    assert [(u.decision_id, u.rank, u.product_id, u.accepted, u.arm) for u in units] == [
        ("d-000001", 1, "fund_sip", False, "treatment"), ("d-000001", 2, "gold_accumulation", True, "treatment"),
        ("d-000002", 1, "gold_accumulation", False, "control")]


def test_evaluate_weighs_each_unit_by_the_targets_agreement():
    units = [Unit("d-1", "C1", "mobile", "treatment", 1, "a", 1.0, True, 0.0),
             Unit("d-2", "C2", "mobile", "control", 1, "b", 0.5, True, 0.0),
             Unit("d-3", "C3", "mobile", "control", 1, "a", 0.5, False, 0.0)]
    slates = {"d-1": TargetSlate(("a",), {"a": 0.3}), "d-2": TargetSlate(("b",), {"b": 0.2}),
              "d-3": TargetSlate(("b",), {"a": 0.1, "b": 0.2})}
    report = evaluate(units, slates)
    assert report.matched == 2
    assert report.ips.value == pytest.approx((1 + 2 + 0) / 3)
    assert report.snips.value == pytest.approx((1 + 2) / (1 + 2))
    # DR: q_target + w (y - q_logged)
    assert report.dr.value == pytest.approx(((0.3 + 0.7) + (0.2 + 2 * 0.8) + (0.2 + 0)) / 3)
    assert report.by_arm["control"].value == pytest.approx(0.5)


def test_not_worse_compares_the_candidate_with_the_serving_ranking_on_the_same_log():
    """Paired on the same log: the serving ranking against itself passes with no margin (its IPS
    on the two-visit log is above the treatment arm's observed rate, which a comparison with
    that rate would have credited to any candidate), one that shows another product to a fifth
    of the customers fails, and a margin as wide as the loss lets it through."""
    units, serving = two_visit_log(20_000, 0.3, seed=9)
    same = ips_difference(units, serving, serving)
    assert same.value == 0.0 and not_worse(same, margin=0.0)
    worse = dict(serving)
    for k, (decision, slate) in enumerate(sorted(serving.items())):
        if k % 5 == 0:
            worse[decision] = TargetSlate((str((int(slate.products[0]) + 1) % K),), {})
    difference = ips_difference(units, worse, serving)
    assert difference.high < 0 and not not_worse(difference, margin=0.01)
    assert not_worse(difference, margin=-difference.low)


CATALOG = load_catalog()


class FavouriteModel:
    """Ranks ``credit_card_standard`` first, ``gold_accumulation`` second."""

    version = "fav"
    similar_weight = 0.0

    def __init__(self) -> None:
        self.product_ids = CATALOG.ids

    def score(self, held, tokens, recent, now_s, segment) -> ScoredProducts:
        propensity = np.full(len(self.product_ids), 0.01)
        propensity[CATALOG.index["credit_card_standard"]] = 0.9
        propensity[CATALOG.index["gold_accumulation"]] = 0.5
        zeros = np.zeros(len(self.product_ids))
        return ScoredProducts(self.product_ids, propensity, zeros, (None,) * len(self.product_ids), propensity)


def test_replay_ranks_each_decision_on_the_state_at_its_time():
    t0 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    cid = "C000000042"
    events = [
        CustomerProfileUpdated(event_id="ev-profile-1", customer_id=cid, occurred_at=t0 - timedelta(days=400),
                               source="kyc", birth_year=1985, risk_tolerance=3),
        DepositPosted(event_id="ev-deposit-1", customer_id=cid, occurred_at=t0 - timedelta(days=300),
                      source="core_banking", kind="deposit", amount_minor=5_000_000, channel="counter",
                      balance_after_minor=5_000_000),
        # bought between the two decisions: the second must not offer it again
        ProductPurchased(event_id="ev-purchase-1", customer_id=cid, occurred_at=t0 + timedelta(hours=2),
                         source="core_banking", product_id="credit_card_standard", channel="branch"),
    ]
    decisions = [decision_record("d-000010", cid, [("x", 1.0)], at=(t0 + timedelta(hours=1)).isoformat(),
                                 channel="call_centre"),
                 decision_record("d-000011", cid, [("x", 1.0)], at=(t0 + timedelta(hours=3)).isoformat(),
                                 channel="call_centre")]
    slates = replay_slates(events, decisions, FavouriteModel(), CATALOG, Policy())
    assert slates["d-000010"].products == ("credit_card_standard",)
    assert slates["d-000011"].products == ("gold_accumulation",)
    assert slates["d-000010"].q["gold_accumulation"] == pytest.approx(0.5)
