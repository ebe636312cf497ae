"""The simulated customers' side of the loop: visits follow the day's events, answers follow the
truth, an acceptance is a sale the simulator remembers, and a planted drift moves the truth."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import orjson
import pytest

from domain.catalog import load_catalog
from schemas.codec import decode, encode
from simulator.bank import T_DEPOSIT, T_HOTLINE, Simulator, accept_probability
from simulator.visits import answer_offers, day_visits, drift_recovery_hours, multiplier_follow_hours, sale_event

CATALOG = load_catalog()


def simulator(customers: int = 2000) -> Simulator:
    return Simulator(CATALOG, customers, seed=3)


def day_one(sim: Simulator):
    for _ in sim.history():
        pass
    batch, _ = sim.step(emit=True)
    return batch


def test_tellers_see_the_days_counter_transactions_and_agents_its_hotline_calls():
    sim = simulator()
    batch = day_one(sim)
    visits = day_visits(sim, batch, 0, np.random.default_rng(1), mobile_rate=0.0)
    events = [orjson.loads(r) for r, t in zip(batch.records, batch.types) if t in (T_DEPOSIT, T_HOTLINE)]
    counter = [e for e in events if e["type"] == "deposit" and e["channel"] == "counter"]
    calls = [e for e in events if e["type"] == "hotline"]
    teller = [v for v in visits if v.channel == "teller"]
    assert len(teller) == len(counter) > 0
    assert len([v for v in visits if v.channel == "call_centre"]) == len(calls) > 0
    assert {(v.customer_id, v.transaction["amount_minor"]) for v in teller} == {
        (e["customer_id"], e["amount_minor"]) for e in counter}
    assert [v.at_s for v in visits] == sorted(v.at_s for v in visits)


def test_app_users_open_the_app_at_the_mobile_rate_during_the_day():
    sim = simulator()
    batch = day_one(sim)
    visits = [v for v in day_visits(sim, batch, 0, np.random.default_rng(2), mobile_rate=0.3) if v.channel == "mobile"]
    users = int(sim.held[:, CATALOG.index["mobile_banking"]].sum())
    assert abs(len(visits) - 0.3 * users) < 4 * np.sqrt(0.3 * 0.7 * users)
    assert all(sim.held[v.customer, CATALOG.index["mobile_banking"]] for v in visits)
    day_s = sim.start_s
    assert all(day_s + 7 * 3600 <= v.at_s < day_s + 23 * 3600 for v in visits)
    # seeded: the same generator gives the same visits
    again = [v for v in day_visits(sim, batch, 0, np.random.default_rng(2), mobile_rate=0.3) if v.channel == "mobile"]
    assert again == visits


def likeliest(sim: Simulator) -> tuple[np.ndarray, int, int]:
    """After day one: the true propensities, and the customer and product of the highest."""
    day_one(sim)
    truth = sim.propensity(np.arange(sim.n))
    c, j = np.unravel_index(np.argmax(truth), truth.shape)
    return truth, int(c), int(j)


def test_answers_follow_the_true_propensity():
    sim = simulator(500)
    truth, c, j = likeliest(sim)
    likely = CATALOG.ids[j]
    held = CATALOG.ids[int(np.nonzero(sim.held[c] & ~np.array([p.multi_hold for p in CATALOG.products]))[0][0])]
    rng = np.random.default_rng(5)
    accepted = {likely: 0, held: 0}
    for _ in range(400):
        for answer in answer_offers(sim, int(c), "teller", [likely, held], rng):
            accepted[answer.product_id] += answer.outcome == "accepted"
    expected = accept_probability(truth[c, j], "teller")
    assert abs(accepted[likely] / 400 - expected) < 4 * np.sqrt(expected * (1 - expected) / 400)
    assert accepted[held] == 0  # a single-hold product already held has propensity 0


def test_an_acceptance_is_a_sale_the_simulator_remembers():
    sim = simulator(500)
    day_one(sim)
    truth = sim.propensity(np.arange(sim.n))
    single = np.array([not p.multi_hold for p in CATALOG.products])
    c, j = np.unravel_index(np.argmax(np.where(single, truth, 0)), truth.shape)
    at = datetime(2026, 1, 2, 10, tzinfo=timezone.utc)
    event = sale_event(sim, int(c), CATALOG.ids[j], "d-abcdef123", "teller", at, np.random.default_rng(0))
    assert decode(encode(event)) == event
    assert event.decision_id == "d-abcdef123" and event.channel == "branch"
    assert sim.held[c, j]
    assert sim.propensity(np.array([c]))[0, j] == 0.0


def test_a_planted_drift_doubles_one_products_hazard_from_its_day_and_leaves_the_rest():
    sim = simulator(1000)
    for _ in sim.history():
        pass
    product = "fund_sip"
    j = CATALOG.index[product]
    before = sim.hazard(np.arange(sim.n))
    sim.scale_appeal(product, 2.0, from_day=1)
    assert np.array_equal(sim.hazard(np.arange(sim.n)), before)  # day 0: not yet
    sim.day = 1  # the state is unchanged; only the day moves
    after = sim.hazard(np.arange(sim.n))
    others = np.arange(len(CATALOG)) != j
    assert np.array_equal(after[:, others], before[:, others])
    unclipped = before[:, j] * 2 < 0.5
    assert np.allclose(after[unclipped, j], 2 * before[unclipped, j])
    with pytest.raises(ValueError, match="unknown product_id"):
        sim.scale_appeal("no_such_product", 2.0, 0)


def test_a_planted_drift_halves_the_acceptance_of_the_products_offers_from_its_day():
    sim = simulator(500)
    truth, c, j = likeliest(sim)
    product = CATALOG.ids[j]
    sim.scale_appeal(product, 0.5, from_day=3)
    expected = accept_probability(truth[c, j], "teller")

    def accepted(day: int, draws: int = 2000) -> float:
        rng = np.random.default_rng(day)
        return sum(answer_offers(sim, int(c), "teller", [product], rng, day=day)[0].outcome == "accepted"
                   for _ in range(draws)) / draws

    def close(rate: float, p: float) -> bool:
        return abs(rate - p) < 4 * np.sqrt(p * (1 - p) / 2000)

    assert close(accepted(2), expected)  # the day before: as before
    assert close(accepted(3), expected / 2)  # from its day on: half as often, whatever the propensity
    # each answer carries the chance it was drawn with: what a bench averages instead of outcomes
    rng = np.random.default_rng(0)
    assert answer_offers(sim, int(c), "teller", [product], rng, day=2)[0].chance == pytest.approx(expected)
    assert answer_offers(sim, int(c), "teller", [product], rng, day=3)[0].chance == pytest.approx(expected / 2)
    assert sim.propensity(np.array([c]), drift=False)[0, j] == truth[c, j]


def test_drift_recovery_is_the_hours_until_the_share_is_half_way_to_its_new_level():
    rng = np.random.default_rng(0)
    hours = np.arange(4000) * 0.1  # a decision every 6 simulated minutes
    drift_hour, switch_hour = 100.0, 150.0
    share = np.where(hours < switch_hour, 0.1, 0.5)
    target = rng.random(len(hours)) < share
    recovered = drift_recovery_hours(hours, target, drift_hour, window=200)
    # the rolling window of 200 decisions (20 h) is half way (0.3) about 10 h after the switch
    assert recovered == pytest.approx(switch_hour + 10 - drift_hour, abs=6)
    flat = rng.random(len(hours)) < 0.1
    assert drift_recovery_hours(hours, flat, drift_hour, window=200) is None


def test_drift_recovery_against_a_baseline_counts_only_what_the_baseline_did_not_do():
    rng = np.random.default_rng(1)
    hours = np.arange(4000) * 0.1
    drift_hour = 100.0
    # both rankings drift up alike from the drift on (other products used up); the learner also
    # switches at hour 150
    common = np.where(hours < drift_hour, 0.1, 0.3)
    baseline = rng.random(len(hours)) < common
    learner = rng.random(len(hours)) < np.where(hours < 150.0, common, common + 0.2)
    alone = drift_recovery_hours(hours, learner, drift_hour, window=200)
    against = drift_recovery_hours(hours, learner, drift_hour, window=200, baseline=(hours, baseline))
    assert alone is not None and alone <= 25  # alone, the common rise looks like following at once
    assert against == pytest.approx(150 + 10 - drift_hour, abs=6)
    # a ranking that only does what the baseline does did not follow
    same = rng.random(len(hours)) < common
    assert drift_recovery_hours(hours, same, drift_hour, window=200, baseline=(hours, baseline)) is None


def test_a_learned_multiplier_follows_when_it_is_half_way_to_its_new_level_on_the_log_scale():
    hours = [100, 110, 120, 130, 140, 150]
    drift_hour = 115.0
    # 0.8 at the drift; half way to 0.4 on the log scale is 0.8 / sqrt(2) = 0.566
    assert multiplier_follow_hours(hours, [0.9, 0.8, 0.7, 0.6, 0.55, 0.5], drift_hour, 0.5) == 140 - drift_hour
    assert multiplier_follow_hours(hours, [0.9, 0.8, 0.7, 0.6, 0.6, 0.6], drift_hour, 0.5) is None
    # doubled from 1.0: 1.414
    assert multiplier_follow_hours(hours, [1.0, 1.0, 1.2, 1.5, 1.9, 2.0], drift_hour, 2.0) == 130 - drift_hour
    assert multiplier_follow_hours(hours, [1.0, 1.0, 0.5, 0.5, 0.5, 0.5], drift_hour, 2.0) is None
    assert multiplier_follow_hours([120, 130], [1.0, 2.0], drift_hour, 2.0) is None  # nothing before the drift


def test_with_a_visit_key_the_same_offer_at_the_same_visit_gets_the_same_answer_whatever_else_is_shown():
    sim = simulator(500)
    truth, c, j = likeliest(sim)
    likely, other = CATALOG.ids[j], next(p for p in CATALOG.ids if p != CATALOG.ids[j])
    answers = {}
    for key in range(300):
        alone = answer_offers(sim, c, "call_centre", [likely], np.random.default_rng(key), visit_key=(9, c, key))
        beside = answer_offers(sim, c, "call_centre", [other, likely], np.random.default_rng(key + 1000),
                               visit_key=(9, c, key))
        assert alone[0] == beside[1]  # the other offer and the generator change nothing
        answers[key] = alone[0].outcome == "accepted"
    expected = accept_probability(truth[c, j], "call_centre")
    assert abs(sum(answers.values()) / 300 - expected) < 4 * np.sqrt(expected * (1 - expected) / 300)
