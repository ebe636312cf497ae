"""Known answers for what keeps a model trained on little data from losing to popularity: label
windows chosen from the data, shrinkage toward popularity by label count, arbitration that lets
value weigh only as much as the propensity it multiplies is informed, and the backtest's
metrics over offer lists."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from decisioning import Policy, rank
from domain.catalog import load_catalog
from domain.state import CustomerState
from recommender.backtest import list_metrics
from recommender.evaluation import DAY_S, choose_windows
from recommender.matrix import FoldedLog
from recommender.model import ModelParams, NboModel, logit
from services.commands.backtest import parse_as_of, parse_horizon

CUTOFF = 1_000 * DAY_S


def _purchases(per_day: float, days: int) -> np.ndarray:
    """``per_day`` purchases on each of the ``days`` days before the cutoff (sorted epoch s)."""
    n = int(per_day * days)
    return np.sort(CUTOFF - (np.arange(n) + 0.5) / per_day * DAY_S)


# ---- label windows ---------------------------------------------------------------------------


def test_enough_purchases_in_the_configured_windows_keeps_them() -> None:
    choice = choose_windows(_purchases(50, 365), CUTOFF, CUTOFF - 365 * DAY_S, 14, 2, min_purchases=1000)
    assert (choice.window_days, choice.windows, choice.purchases, choice.enough) == (14, 2, 1400, True)


def test_few_purchases_add_windows_then_lengthen_them_as_far_as_the_history_goes() -> None:
    # 10 a day: 2 x 14 days hold 280; 8 windows of 14 days are the first to hold >= 1,000 (1,120)
    choice = choose_windows(_purchases(10, 365), CUTOFF, CUTOFF - 365 * DAY_S, 14, 2, min_purchases=1000)
    assert (choice.window_days, choice.windows, choice.purchases, choice.enough) == (14, 8, 1120, True)
    # 2 a day: 12 x 14 days hold 336, so 28-day windows: 12 of them hold 672, 56-day ones: 9 hold 1,008
    choice = choose_windows(_purchases(2, 730), CUTOFF, CUTOFF - 730 * DAY_S, 14, 2, min_purchases=1000)
    assert (choice.window_days, choice.windows, choice.purchases) == (56, 9, 1008)
    assert "2 x 14 days held 56 purchases" in choice.reason


def test_a_short_history_gives_all_it_has_and_says_it_is_not_enough() -> None:
    # 45 days of history, 20 purchases a day: 3 x 14 days (840) is the most that fits
    choice = choose_windows(_purchases(20, 45), CUTOFF, CUTOFF - 45 * DAY_S, 14, 2, min_purchases=1000)
    assert (choice.window_days, choice.windows, choice.purchases, choice.enough) == (14, 3, 840, False)
    assert "fewer than the 1,000 wanted" in choice.reason
    # 16 days: a second 14-day window would start before the history, so one window
    choice = choose_windows(_purchases(20, 16), CUTOFF, CUTOFF - 16 * DAY_S, 14, 2, min_purchases=1000)
    assert (choice.window_days, choice.windows, choice.purchases) == (14, 1, 280)


def test_explicit_windows_win() -> None:
    times = _purchases(10, 365)
    both = choose_windows(times, CUTOFF, CUTOFF - 365 * DAY_S, 7, 2, 1000, fixed_window_days=True, fixed_windows=True)
    assert (both.window_days, both.windows, both.purchases, both.enough) == (7, 2, 140, False)
    days = choose_windows(times, CUTOFF, CUTOFF - 365 * DAY_S, 7, 2, 1000, fixed_window_days=True)
    assert (days.window_days, days.windows) == (7, 12)  # the length stays; 12 windows hold the most (840)
    count = choose_windows(times, CUTOFF, CUTOFF - 365 * DAY_S, 14, 2, 1000, fixed_windows=True)
    assert (count.window_days, count.windows, count.purchases) == (56, 2, 1120)


# ---- shrinkage toward popularity ---------------------------------------------------------------

PRODUCTS = ("demand_deposit", "consumer_loan", "wealth_r2")
TOKENS = ("hotline:loan_inquiry",)


def _model(label_counts: np.ndarray | None, shrink_labels: float = 10.0) -> NboModel:
    """A hand-made model: a loan inquiry adds 3 to the consumer loan's logit; the mass segment's
    base rates are 0.2, 0.02, 0.05."""
    p, n = len(PRODUCTS), len(PRODUCTS) + len(TOKENS)
    coef = np.zeros((n, p))
    coef[3, 1] = 3.0 / math.log1p(1.0)
    return NboModel(version="t", product_ids=PRODUCTS, token_ids=TOKENS,
                    params=ModelParams(factors=0, similar_weight=0.0, shrink_labels=shrink_labels),
                    item_factors=np.zeros((n, 0)), coef=coef, factor_coef=np.zeros((0, p)),
                    bias=logit(np.array([0.2, 0.02, 0.05])), similar=np.zeros((p, p)),
                    single_hold=np.array([True, True, False]),
                    segment_popularity={"mass": np.array([0.2, 0.02, 0.05])}, label_counts=label_counts)


def test_the_propensity_moves_from_popularity_to_the_model_as_labels_accumulate() -> None:
    tokens = {"hotline:loan_inquiry": 1.0}
    prior = logit(np.array([0.02]))[0]
    unshrunk = 1 / (1 + math.exp(-(prior + 3.0)))
    for n, weight in ((0, 0.0), (10, 0.5), (90, 0.9)):
        model = _model(np.array([500.0, n, 500.0]))
        got = model.score({}, tokens, [], 0.0, "mass").propensity[1]
        assert got == pytest.approx(1 / (1 + math.exp(-(prior + weight * 3.0))))
        assert model.informed["consumer_loan"] == pytest.approx(weight)
    assert _model(None).score({}, tokens, [], 0.0, "mass").propensity[1] == pytest.approx(unshrunk)
    assert _model(None).informed is None  # an artifact saved before label counts: not shrunk


def test_a_model_with_no_labels_ranks_like_its_segments_popularity() -> None:
    model = _model(np.zeros(3))
    scored = model.score({}, {"hotline:loan_inquiry": 1.0}, [], 0.0, "mass")
    assert scored.propensity == pytest.approx([0.2, 0.02, 0.05])
    assert scored.top(3) == ["demand_deposit", "wealth_r2", "consumer_loan"]
    # the batch path (evaluation, backtest) shrinks the same way
    from scipy import sparse

    row = sparse.csr_matrix(np.array([[0, 0, 0, 1.0]]))
    assert model.score_batch(row, segments=["mass"])[0] == pytest.approx(scored.propensity)


def test_label_counts_survive_the_registry(tmp_path) -> None:
    from adapters.model_registry import ModelRegistry

    registry = ModelRegistry(tmp_path)
    model = _model(np.array([500.0, 10.0, 0.0]))
    version = registry.save(model, {"catalog_hash": "x"})
    loaded = registry.load(version)
    assert loaded.informed == pytest.approx({"demand_deposit": 500 / 510, "consumer_loan": 0.5, "wealth_r2": 0.0})


# ---- arbitration ---------------------------------------------------------------------------------

CATALOG = load_catalog()


class _FlatModel:
    """The same propensity for every product; ``informed`` as given (None: does not say)."""

    version = "flat"
    similar_weight = 0.0

    def __init__(self, informed: float | None) -> None:
        self.product_ids = CATALOG.ids
        self.informed = None if informed is None else {p: informed for p in CATALOG.ids}

    def score(self, held, tokens, recent, now_s, segment):
        from decisioning.scores import ScoredProducts

        p = len(self.product_ids)
        flat = np.full(p, 0.05)
        return ScoredProducts(self.product_ids, flat, np.zeros(p), (None,) * p, flat.copy())


def _offers(model, policy: Policy, limit: int = 3) -> list[tuple[str, float]]:
    state = CustomerState("C1", as_of_s=1e9 - 10, events_applied=1, balance_minor=80_000_00, birth_year=1985,
                          risk_tolerance=5)
    return [(o.product.product_id, o.score) for o in rank(state, model, CATALOG, policy, "mobile", 1e9, limit).offers]


def test_value_does_not_decide_among_uninformed_propensities() -> None:
    policy = Policy(channel_fit={}, levers={}, value_exponent=1.0)
    informed, uninformed = _offers(_FlatModel(1.0), policy), _offers(_FlatModel(0.0), policy)
    assert _offers(_FlatModel(None), policy) == informed  # a model that does not say counts as informed
    # informed: flat propensities, so the most valuable of the eligible products win
    values = {p.product_id: p.annual_value_minor for p in CATALOG.products}
    eligible = [p for p, _ in _offers(_FlatModel(0.0), policy, limit=100)]
    assert len(eligible) > 3
    assert [p for p, _ in informed] == sorted(eligible, key=lambda p: (-values[p], p))[:3]
    # uninformed: value is neutral, every candidate has the same priority and ties break on product id
    assert {round(s, 12) for _, s in uninformed} == {0.05}
    assert [p for p, _ in uninformed] == sorted(p for p, _ in uninformed)


def test_half_informed_damps_the_value_exponent_by_half() -> None:
    full = dict(_offers(_FlatModel(1.0), Policy(channel_fit={}, levers={}, value_exponent=0.5)))
    half = dict(_offers(_FlatModel(0.5), Policy(channel_fit={}, levers={}, value_exponent=1.0)))
    assert full == pytest.approx(half)


# ---- the backtest's metrics and options -----------------------------------------------------------


def test_list_metrics_count_hits_in_the_offer_slots() -> None:
    labels = np.array([[1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    lists = np.array([[0, 1, -1], [1, 2, 3], [0, 1, 2], [-1, -1, -1]])
    got = list_metrics(lists, labels, labels.any(1), catalog_size=8)
    assert got["customers"] == 3
    assert got["hit_rate_at_1"] == pytest.approx(1 / 3)
    assert got["hit_rate_at_3"] == pytest.approx(2 / 3)
    ideal2 = 1 + 1 / math.log2(3)
    assert got["ndcg_at_3"] == pytest.approx((1.0 + (1 / math.log2(3) + 0.5) / ideal2 + 0.0) / 3)
    assert (got["products_offered"], got["coverage"]) == (4, 0.5)


def test_as_of_and_horizon_parse_and_refuse_with_what_to_fix() -> None:
    assert parse_as_of("2024-06-30") == 1_719_705_600.0
    assert parse_as_of("2024-06-30T08:00:00+08:00") == 1_719_705_600.0
    assert (parse_horizon("30d"), parse_horizon("2w"), parse_horizon("36h"), parse_horizon("7")) == \
        (30 * DAY_S, 14 * DAY_S, 1.5 * DAY_S, 7 * DAY_S)
    with pytest.raises(ValueError, match="30d, 4w or 72h"):
        parse_horizon("a month")
    with pytest.raises(ValueError, match="expected a date"):
        parse_as_of("30/06/2024")


def test_shrinkage_parameter_round_trips_in_the_params() -> None:
    params = replace(ModelParams(), shrink_labels=25.0)
    assert ModelParams.from_dict(params.to_dict()).shrink_labels == 25.0


# ---- the promotion gate's rule -------------------------------------------------------------------


def test_the_gate_refuses_a_model_that_ranks_worse_than_popularity(monkeypatch) -> None:
    import recommender.evaluation as evaluation

    def validation(ndcg_model: float):
        def fake(*args, **kwargs):
            rows = {name: {"ndcg": v, "hit_rate": v, "customers": 300}
                    for name, v in (("model", ndcg_model), ("popularity", 0.30), ("segment_popularity", 0.31))}
            return evaluation.EvalReport(3, rows, info={"cutoff": "2026-01-17T00:00:00Z", "train_purchases": 900})
        return fake

    folded = FoldedLog((CUTOFF,), [{}], [], 0, 0.0)
    split = evaluation.LogSplit(folded=folded, cutoff_s=CUTOFF, starts_s=[], data_start_s=None)
    monkeypatch.setattr(evaluation, "validation_split", validation(0.25))
    gate = evaluation.promotion_gate(split, CATALOG, ModelParams(), 14, purchases=5000)
    assert not gate.passed
    assert gate.reasons == ["it ranks worse than popularity on the validation window (2026-01-17, 300 customers): "
                            "ndcg@3 0.2500 vs 0.3000"]
    monkeypatch.setattr(evaluation, "validation_split", validation(0.30))  # a tie: ranks like popularity
    assert evaluation.promotion_gate(split, CATALOG, ModelParams(), 14, purchases=5000).passed
    gate = evaluation.promotion_gate(split, CATALOG, ModelParams(), 14, purchases=50)
    assert gate.reasons == ["only 50 labelled purchases (at least 200 are needed to tell a model from popularity)"]


def test_a_large_bank_is_validated_on_a_fixed_sample_of_its_customers(monkeypatch) -> None:
    """Above ``max_customers`` the gate validates on that many customers, the same ones every
    time (a rerun of the gate gives the same verdict), and says how many it sampled from."""
    import recommender.evaluation as evaluation

    seen: list[list[str] | None] = []

    def fake(*args, customer_ids=None, **kwargs):
        seen.append(customer_ids)
        rows = {name: {"ndcg": v, "hit_rate": v, "customers": len(customer_ids or ())}
                for name, v in (("model", 0.4), ("popularity", 0.3), ("segment_popularity", 0.3))}
        return evaluation.EvalReport(3, rows, info={"cutoff": "2026-01-17T00:00:00Z", "train_purchases": 900})

    everyone = {f"C{i:09d}": None for i in range(1000)}
    split = evaluation.LogSplit(FoldedLog((CUTOFF,), [everyone], [], 0, 0.0), CUTOFF, [], None)  # type: ignore[list-item]
    monkeypatch.setattr(evaluation, "validation_split", fake)
    gate = evaluation.promotion_gate(split, CATALOG, ModelParams(), 14, purchases=5000, max_customers=300)
    again = evaluation.promotion_gate(split, CATALOG, ModelParams(), 14, purchases=5000, max_customers=300)
    assert gate.passed and again.passed
    assert seen[0] == seen[1] and seen[0] is not None and len(seen[0]) == 300
    assert set(seen[0]) <= set(everyone) and seen[0] == sorted(seen[0])
    assert gate.info["sampled_from"] == 1000
    evaluation.promotion_gate(split, CATALOG, ModelParams(), 14, purchases=5000, max_customers=1000)
    assert seen[-1] is None  # not more than the limit: every customer
