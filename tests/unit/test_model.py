"""Known-answer tests of the ranking model on tiny worlds where the right product is obvious."""

from __future__ import annotations


import numpy as np
import pytest
from scipy import sparse

from domain.catalog import load_catalog
from recommender.model import DAY_S, ModelParams, NboModel, fit_als, popularity_model, train_model

PRODUCTS = ("demand_deposit", "consumer_loan", "wealth_r2", "wealth_r3", "credit_card_platinum")
TOKENS = ("hotline:loan_inquiry", "pos:hotel_5star", "tier:mass", "tier:affluent")
SINGLE = np.array([True, True, False, False, True])
COLUMNS = PRODUCTS + TOKENS


def _world(customers: int = 1200, seed: int = 0) -> tuple[sparse.csr_matrix, np.ndarray, list[str]]:
    """Everyone holds a demand deposit. A loan inquiry is followed by a consumer loan, five-star
    hotels by a platinum card, holding wealth_r2 by wealth_r3; a few random purchases as noise."""
    rng = np.random.default_rng(seed)
    x = np.zeros((customers, len(COLUMNS)))
    y = np.zeros((customers, len(PRODUCTS)))
    x[:, 0] = 1.0
    kind = rng.integers(0, 4, customers)
    segments = []
    for c in range(customers):
        affluent = kind[c] == 1
        x[c, COLUMNS.index("tier:affluent" if affluent else "tier:mass")] = 1.0
        segments.append("affluent" if affluent else "mass")
        if kind[c] == 0:
            x[c, COLUMNS.index("hotline:loan_inquiry")] = 2.0
            y[c, PRODUCTS.index("consumer_loan")] = rng.random() < 0.6
        elif kind[c] == 1:
            x[c, COLUMNS.index("pos:hotel_5star")] = 3.0
            y[c, PRODUCTS.index("credit_card_platinum")] = rng.random() < 0.6
        elif kind[c] == 2:
            x[c, PRODUCTS.index("wealth_r2")] = 1.0
            y[c, PRODUCTS.index("wealth_r3")] = rng.random() < 0.6
        if rng.random() < 0.05:
            y[c, rng.integers(1, len(PRODUCTS))] = 1
    return sparse.csr_matrix(x), y, segments


@pytest.fixture(scope="module")
def model() -> NboModel:
    x, y, segments = _world()
    params = ModelParams(factors=4, iterations=8, l2=0.3, half_life_days=10.0, similar_weight=0.5)
    return train_model(x, y, segments, PRODUCTS, TOKENS, SINGLE, params, version="t1")


def _top(model: NboModel, held: dict, tokens: dict, recent=(), now_s: float = 1e9) -> str:
    return model.score(held, tokens, list(recent), now_s, "mass").top(1)[0]


def test_behaviour_predicts_the_product_it_precedes(model: NboModel) -> None:
    base = {"demand_deposit": 1.0}
    assert _top(model, base, {"hotline:loan_inquiry": 2.0, "tier:mass": 1.0}) == "consumer_loan"
    assert _top(model, base, {"pos:hotel_5star": 3.0, "tier:affluent": 1.0}) == "credit_card_platinum"
    assert _top(model, {**base, "wealth_r2": 1.0}, {"tier:mass": 1.0}) == "wealth_r3"


def test_propensity_is_a_probability_near_the_planted_rate(model: NboModel) -> None:
    result = model.score({"demand_deposit": 1.0}, {"hotline:loan_inquiry": 2.0, "tier:mass": 1.0}, [], 1e9, "mass")
    p = result.as_dict()["consumer_loan"]["propensity"]
    assert 0.35 < p < 0.8  # planted: 60 %
    assert np.all((result.propensity >= 0) & (result.propensity <= 1))


def test_a_held_single_hold_product_scores_zero(model: NboModel) -> None:
    result = model.score({"demand_deposit": 1.0, "consumer_loan": 1.0}, {"hotline:loan_inquiry": 2.0}, [], 1e9, None)
    i = PRODUCTS.index("consumer_loan")
    assert result.propensity[i] == 0.0 and result.score[i] == 0.0
    assert result.top(1)[0] != "consumer_loan"


def test_cold_start_falls_back_to_segment_popularity(model: NboModel) -> None:
    mass = model.score({}, {}, [], 1e9, "mass")
    affluent = model.score({}, {}, [], 1e9, "affluent")
    np.testing.assert_allclose(mass.propensity, model.segment_popularity["mass"])
    # In the planted world affluent customers are the hotel guests who take the platinum card.
    assert affluent.top(1) == ["credit_card_platinum"]
    assert mass.top(1) != ["credit_card_platinum"]


def test_similar_boost_fades_with_half_life_and_names_the_purchase(model: NboModel) -> None:
    now = 1_000 * DAY_S
    fresh, because = model.similar_boost([("wealth_r2", now)], now)
    old, _ = model.similar_boost([("wealth_r2", now - 10 * DAY_S)], now)
    j = PRODUCTS.index("wealth_r3")
    assert fresh[j] > 0.05
    assert old[j] == pytest.approx(fresh[j] / 2)  # half-life 10 days
    assert because[j] == "wealth_r2"
    assert model.similar_boost([], now)[1] == (None,) * len(PRODUCTS)


def test_fold_in_matches_implicit_recalculate_and_refit_ranking() -> None:
    rng = np.random.default_rng(3)
    x = sparse.random(300, len(COLUMNS), density=0.35, random_state=rng, format="csr") * 5
    params = ModelParams(factors=4, iterations=25, regularization=0.1)
    from implicit.cpu.als import AlternatingLeastSquares

    conf = x.astype(np.float32).tocsr()
    conf.data = np.log1p(conf.data)
    als = AlternatingLeastSquares(factors=4, regularization=0.1, alpha=params.alpha, iterations=25,
                                  random_state=0, num_threads=1, use_cg=False)
    als.fit(conf, show_progress=False)
    model = train_model(x, np.zeros((300, len(PRODUCTS))), ["mass"] * 300, PRODUCTS, TOKENS, SINGLE, params)
    model.item_factors = np.asarray(als.item_factors, np.float64)
    model.__post_init__()
    for user in range(10):
        row = x[user]
        held = {COLUMNS[j]: float(v) for j, v in zip(row.indices, row.data)}
        ours = model.fold_in(*model.features(held, {}))
        np.testing.assert_allclose(ours, als.recalculate_user(user, conf[user]), rtol=2e-3, atol=2e-4)
        # The refit's own user factors (trained jointly) rank the items the same way.
        refit = als.item_factors @ als.user_factors[user]
        folded = model.item_factors @ ours
        np.testing.assert_allclose(folded, refit, atol=0.03)
        assert np.argmax(folded) == np.argmax(refit)
        assert np.corrcoef(folded, refit)[0, 1] > 0.99


def test_fit_als_learns_the_checkerboard() -> None:
    # implicit's own known-answer: two blocks of users, each liking its own half of the items.
    n = 50
    dense = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if (i < n // 2) == (j < n // 2):
                dense[i, j] = 1.0
    factors = fit_als(sparse.csr_matrix(dense), ModelParams(factors=3, iterations=20, regularization=0.01))
    sims = factors @ factors.T
    assert sims[0, 1] > sims[0, n - 1]
    assert sims[n - 1, n - 2] > sims[n - 1, 0]


def test_popularity_model_needs_no_training() -> None:
    catalog = load_catalog()
    model = popularity_model(catalog)
    assert model.version == "popularity"
    assert model.product_ids == catalog.ids
    result = model.score({"demand_deposit": 1.0}, {"pos:groceries": 1.0}, [], 0.0, None)
    assert result.propensity[catalog.index["demand_deposit"]] == 0.0  # held, single-hold
    assert result.score.max() > 0
    # A product with a high entry bar ranks below an easy one of the same family.
    assert result.propensity[catalog.index["wealth_r1"]] > result.propensity[catalog.index["wealth_r5"]]


def test_the_chain_ranks_with_the_weight_the_model_was_tuned_with(model: NboModel) -> None:
    """What ``nbo tune`` chose (saved in the params) is what the decisioning chain serves: its
    scoring and similar-boost steps give every candidate the model's own blended score."""
    from decisioning import Context, Offer, Policy
    from decisioning.scoring import scoring, similar_boost
    from domain.features import holdings_weights
    from domain.state import CustomerState, Holding

    catalog = load_catalog()
    now = 1_000 * DAY_S
    state = CustomerState("C000000001", as_of_s=now)
    state.holdings = {"demand_deposit": Holding(1, now - 400 * DAY_S, now - 400 * DAY_S, 0.0),
                      "wealth_r2": Holding(1, now - 2 * DAY_S, now - 2 * DAY_S, 0.0)}
    state.recent_purchases = [["wealth_r2", now - 2 * DAY_S]]
    assert model.similar_weight == model.params.similar_weight == 0.5
    ctx = Context(state, model, catalog, Policy(), "mobile", now)
    ctx.candidates = {pid: Offer(catalog.get(pid), 0.0, 0.0, 0.0, None, []) for pid in PRODUCTS}
    scoring(ctx)
    similar_boost(ctx)
    expected = model.score(holdings_weights(state), ctx.tokens, [("wealth_r2", now - 2 * DAY_S)], now,
                           state.value_tier)
    assert expected.similar_boost[PRODUCTS.index("wealth_r3")] > 0.05  # the boost is in play
    for i, pid in enumerate(PRODUCTS):
        assert ctx.candidates[pid].score == pytest.approx(expected.score[i], rel=1e-12), pid
