"""Known-answer tests of the after-purchase transitions: X then Y in a small log puts Y first
right after X and lets it fade; co-holding without an order gives no boost."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.after_purchase import fit_transitions
from recommender.matrix import Purchase
from recommender.model import DAY_S, ModelParams, NboModel, train_model

PRODUCTS = ("demand_deposit", "mortgage", "home_insurance", "wealth_r2", "fund_sip")
SINGLE = np.array([True, True, True, False, False])
X, Y, Z = PRODUCTS.index("mortgage"), PRODUCTS.index("home_insurance"), PRODUCTS.index("wealth_r2")
START_S = 100 * DAY_S  # the observed period: [START_S, END_S)
END_S = START_S + 90 * DAY_S


def _log(customers: int = 3000, seed: int = 0, half_life_days: float = 8.0, co_holding_only: bool = False
         ) -> list[Purchase]:
    """Everyone opened a demand deposit long before the period. A third buy a mortgage at any
    time (before or in the period, at a constant rate) and, in half the cases, home insurance an
    exponential lag later (``half_life_days``); wealth_r2 and fund_sip are bought at random, at a
    constant rate. ``co_holding_only``: mortgage holders buy the insurance at a constant rate in
    the period, never right after the mortgage."""
    rng = np.random.default_rng(seed)
    log: list[Purchase] = []
    tau_s = half_life_days / np.log(2) * DAY_S
    for c in range(customers):
        cid = f"C{c:05d}"
        log.append(Purchase(cid, "demand_deposit", float(rng.uniform(0, 50 * DAY_S))))
        if co_holding_only:
            if c % 3 == 0:
                log.append(Purchase(cid, "mortgage", float(rng.uniform(0, 50 * DAY_S))))
                if rng.random() < 0.5:
                    log.append(Purchase(cid, "home_insurance", float(rng.uniform(START_S, END_S))))
        elif c % 3 == 0:
            at = float(rng.uniform(50 * DAY_S, END_S))
            log.append(Purchase(cid, "mortgage", at))
            if rng.random() < 0.5:
                log.append(Purchase(cid, "home_insurance", at + float(rng.exponential(tau_s))))
        for product, rate_per_day in (("wealth_r2", 0.004), ("fund_sip", 0.002)):
            for _ in range(rng.poisson(rate_per_day * (END_S - 50 * DAY_S) / DAY_S)):
                log.append(Purchase(cid, product, float(rng.uniform(50 * DAY_S, END_S))))
    return [p for p in log if p.at_s < END_S]


def test_x_then_y_is_learned_and_unrelated_pairs_stay_near_zero() -> None:
    t = fit_transitions(_log(), PRODUCTS, SINGLE, START_S, END_S, window_days=60.0)
    assert t.excess[X, Y] > 3.0  # home insurance is far more likely right after a mortgage
    assert t.excess[X, Y] == t.excess.max()
    assert t.excess[Y, X] == 0.0 or t.excess[Y, X] < 0.5  # the order matters
    assert t.excess[X, Z] < 0.5 and t.excess[Z, Y] < 0.5  # random purchases carry no transition
    assert np.all(np.diag(t.excess) == 0.0)


def test_the_fade_is_learned_from_the_lags() -> None:
    fast = fit_transitions(_log(half_life_days=4.0), PRODUCTS, SINGLE, START_S, END_S)
    slow = fit_transitions(_log(half_life_days=20.0), PRODUCTS, SINGLE, START_S, END_S)
    assert fast.half_life_days is not None and slow.half_life_days is not None
    assert 2.0 <= fast.half_life_days <= 8.0
    assert 10.0 <= slow.half_life_days <= 40.0


def test_co_holding_without_an_order_gives_no_boost() -> None:
    """Holders of a mortgage buy home insurance more than others, but not right after the
    mortgage: the holder rate is the normaliser, so nothing is left for the boost."""
    t = fit_transitions(_log(co_holding_only=True), PRODUCTS, SINGLE, START_S, END_S)
    assert t.excess[X, Y] < 0.5


@pytest.fixture(scope="module")
def model() -> NboModel:
    """A next-purchase layer where wealth_r2 is the most popular product, plus the transitions."""
    rng = np.random.default_rng(1)
    customers = 2000
    x = np.zeros((customers, len(PRODUCTS)))
    x[:, 0] = 1.0
    y = np.zeros((customers, len(PRODUCTS)))
    y[:, Z] = rng.random(customers) < 0.10
    y[:, Y] = rng.random(customers) < 0.02
    y[:, PRODUCTS.index("fund_sip")] = rng.random(customers) < 0.05
    transitions = fit_transitions(_log(), PRODUCTS, SINGLE, START_S, END_S)
    params = ModelParams(factors=0, l2=1.0, similar_weight=1.0, half_life_days=30.0)
    return train_model(x, y, ["mass"] * customers, PRODUCTS, (), SINGLE, params, version="ap",
                       transitions=transitions)


def test_right_after_x_y_ranks_first_and_weeks_later_it_has_faded(model: NboModel) -> None:
    held = {"demand_deposit": 1.0, "mortgage": 1.0}
    now = END_S
    without = model.score(held, {}, [], now, "mass")
    assert without.product_ids[int(np.argmax(without.score))] == "wealth_r2"  # popularity alone

    soon = model.score(held, {}, [("mortgage", now - 1 * DAY_S)], now, "mass")
    assert soon.product_ids[int(np.argmax(soon.score))] == "home_insurance"
    assert soon.because_of[Y] == "mortgage"

    later = model.score(held, {}, [("mortgage", now - 70 * DAY_S)], now, "mass")
    assert later.product_ids[int(np.argmax(later.score))] == "wealth_r2"
    assert later.similar_boost[Y] < 0.1 * soon.similar_boost[Y]
    # The fade is the one learned from the log, not the configured 30 days.
    assert model.params.half_life_days < 20.0
    b_soon, _ = model.similar_boost([("mortgage", now - 1 * DAY_S)], now)
    b_hl, _ = model.similar_boost([("mortgage", now - (1 + model.params.half_life_days) * DAY_S)], now)
    assert b_hl[Y] == pytest.approx(0.5 * b_soon[Y], rel=1e-6)


def test_without_transitions_the_boost_is_the_co_holding_cosine(model: NboModel) -> None:
    """A model saved before transitions existed keeps boosting by ``similar``."""
    from dataclasses import replace

    old = replace(model, transitions=None)
    boost, _ = old.similar_boost([("mortgage", END_S - DAY_S)], END_S)
    np.testing.assert_allclose(boost, np.maximum(model.similar[X] * 0.5 ** (1 / model.params.half_life_days), 0))
