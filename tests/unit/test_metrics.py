"""Ranking metrics against hand-computed values, and the evaluation's fairness rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from domain.catalog import load_catalog
from recommender.evaluation import compare, eligibility_mask, plan_starts, ranking_metrics
from domain.state import CustomerState, Holding

DAY_S = 86_400.0


def test_metrics_match_hand_computed_values() -> None:
    # Customer 0 bought products 1 and 3; ranking 1, 0, 3, 2 -> hits at ranks 1 and 3.
    # Customer 1 bought product 2 only; ranking 0, 1, 3, 2 -> no hit in the top 3.
    scores = np.array([[0.3, 0.9, 0.0, 0.2], [0.9, 0.8, 0.1, 0.5]])
    labels = np.array([[False, True, False, True], [False, False, True, False]])
    allowed = np.ones_like(labels)
    m = ranking_metrics(scores, labels, allowed, k=3)
    dcg0 = 1 + 1 / math.log2(4)
    idcg0 = 1 + 1 / math.log2(3)
    assert m["ndcg"] == pytest.approx((dcg0 / idcg0 + 0.0) / 2)
    assert m["map"] == pytest.approx(((1 / 1 + 2 / 3) / 2 + 0.0) / 2)
    assert m["recall"] == pytest.approx((2 / 2 + 0) / 2)
    assert m["hit_rate"] == pytest.approx(0.5)
    assert m["coverage"] == pytest.approx(3 / 4)  # top-3s are {1, 0, 3} and {0, 1, 3}
    assert m["customers"] == 2


def test_coverage_counts_distinct_products_in_any_top_k() -> None:
    scores = np.tile(np.array([0.9, 0.8, 0.1, 0.0, 0.0]), (3, 1))
    labels = np.zeros((3, 5), dtype=bool)
    labels[:, 0] = True
    m = ranking_metrics(scores, labels, np.ones_like(labels), k=2)
    assert m["coverage"] == pytest.approx(2 / 5)
    assert m["ndcg"] == 1.0 and m["hit_rate"] == 1.0


def test_customers_without_purchases_are_not_counted_and_disallowed_products_never_rank() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.9, 0.1, 0.5]])
    labels = np.array([[False, True, False], [False, False, False]])
    allowed = np.array([[False, True, True], [True, True, True]])
    # Product 0 is not allowed for customer 0 (e.g. held single-hold): product 2 then 1.
    m = ranking_metrics(scores, labels, allowed, k=2)
    assert m["customers"] == 1
    assert m["ndcg"] == pytest.approx((1 / math.log2(3)) / 1.0)
    # A purchase of a disallowed product is not a label either.
    m2 = ranking_metrics(scores, np.array([[True, False, False], [False] * 3]), allowed, k=2)
    assert m2["customers"] == 0


def test_perfect_ranker_scores_one_and_compare_reports_segments() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random((50, 6)) < 0.2
    labels[:, 0] |= ~labels.any(1)
    report = compare({"perfect": labels.astype(float), "reverse": -labels.astype(float)}, labels,
                     np.ones_like(labels), 3, np.arange(50) % 2, ["even", "odd"])
    assert report.rows["perfect"]["recall"] == pytest.approx(
        float(np.mean([min(n, 3) / n for n in labels.sum(1)])))
    assert report.rows["perfect"]["ndcg"] == pytest.approx(1.0)
    assert report.rows["reverse"]["ndcg"] < 0.5
    assert set(report.segments) == {"even", "odd"}
    assert "perfect" in report.table()


def test_eligibility_follows_age_assets_risk_tier_channel_and_single_hold() -> None:
    catalog = load_catalog()
    now = 1_780_000_000.0  # 2026
    young = CustomerState("C1", birth_year=2010, risk_tolerance=1, balance_minor=100_00)
    rich = CustomerState("C2", birth_year=1970, risk_tolerance=5, balance_minor=700_000_000_00, value_tier="private")
    rich.holdings = {"credit_card_platinum": Holding()}
    mask = eligibility_mask([young, rich, None], catalog, "teller", now)
    i = catalog.index
    assert not mask[0, i["consumer_loan"]]  # 16 years old, loans from 18
    assert mask[0, i["demand_deposit"]]
    assert not mask[0, i["equity_fund"]]  # risk 4 > tolerance 1
    assert not mask[0, i["large_cd"]]  # assets below 200,000 CNY
    assert mask[1, i["wealth_r5"]] and mask[1, i["large_cd"]]
    assert not mask[1, i["credit_card_platinum"]]  # held, single-hold
    assert not mask[1, i["credit_card_standard"]]  # a basic card is not for a private-banking customer
    assert not mask[0, i["credit_card_platinum"]]  # nor a premium one for a mass-market one
    assert mask[2, i["demand_deposit"]] and not mask[2, i["large_cd"]]  # no state: judged as a new customer
    by_phone = eligibility_mask([rich], catalog, "call_centre", now)
    assert not by_phone[0, i["wealth_r5"]]  # not sold by the call centre
    assert by_phone[0, i["large_cd"]]


def test_evaluation_masks_exactly_what_the_chains_eligibility_step_lets_through() -> None:
    from decisioning import Context, Policy
    from decisioning.eligibility import eligibility
    from recommender.model import popularity_model

    catalog = load_catalog()
    now = 1_780_000_000.0
    states = [CustomerState("C1", birth_year=1990, risk_tolerance=3, balance_minor=80_000_000, value_tier="affluent"),
              CustomerState("C2", birth_year=1950, risk_tolerance=2, balance_minor=5_000_00),
              CustomerState("C3", birth_year=1980, risk_tolerance=5, balance_minor=3_000_000_000,
                            value_tier="high_net_worth")]
    states[0].holdings = {"demand_deposit": Holding(), "fund_sip": Holding()}
    model = popularity_model(catalog)
    for channel in ("teller", "call_centre", "mobile"):
        mask = eligibility_mask(states, catalog, channel, now)
        for r, state in enumerate(states):
            ctx = Context(state, model, catalog, Policy(), channel, now)
            eligibility(ctx)
            assert {catalog.ids[j] for j in np.flatnonzero(mask[r])} == set(ctx.candidates), (channel, r)
            assert set(ctx.candidates).isdisjoint(ctx.decision.excluded)
            assert set(ctx.candidates) | set(ctx.decision.excluded) == set(catalog.ids)


def test_training_windows_end_before_the_cutoff() -> None:
    cut = 100 * DAY_S
    assert plan_starts(cut, 14, 2) == [cut - 14 * DAY_S, cut - 28 * DAY_S]
    assert plan_starts(cut, 14, 3, data_start_s=cut - 30 * DAY_S) == [cut - 14 * DAY_S, cut - 28 * DAY_S]
    assert plan_starts(cut, 14, 2, data_start_s=cut - 5 * DAY_S) == [cut - 14 * DAY_S]


def test_leave_one_out_ranks_the_hidden_product_back() -> None:
    from scipy import sparse

    from recommender.evaluation import leave_one_out
    from recommender.matrix import InteractionMatrix
    from recommender.model import ModelParams

    catalog = load_catalog()
    i = catalog.index
    rng = np.random.default_rng(0)
    rows = []
    for c in range(600):
        row = np.zeros(len(catalog))
        # Two kinds of customer, each holding a fixed pair: hide one, the other gives it away.
        pair = ("mortgage", "home_insurance") if c % 2 else ("fund_sip", "mixed_fund")
        row[[i[pair[0]], i[pair[1]]]] = 1.0
        row[i["demand_deposit"]] = rng.random() < 0.5
        rows.append(row)
    x = InteractionMatrix(tuple(f"C{c:09d}" for c in range(600)), catalog.ids, (), sparse.csr_matrix(np.array(rows)),
                          ("mass",) * 600, [[] for _ in range(600)], 0.0)
    report = leave_one_out(x, catalog, ModelParams(factors=2, iterations=4, l2=0.3), k=1, seed=1)
    assert report.info["mode"] == "leave_one_out"
    assert report.rows["model"]["hit_rate"] > 0.6
    assert report.rows["model"]["hit_rate"] > report.rows["popularity"]["hit_rate"] + 0.2


def test_paired_gain_is_the_mean_per_customer_ndcg_difference() -> None:
    from recommender.evaluation import ndcg_per_customer, paired_gain, ranking_metrics

    labels = np.array([[True, False, False], [False, True, False], [False, False, False]])
    allowed = np.ones_like(labels)
    better = np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])  # both buyers' product first
    worse = np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])  # the first buyer's product last
    per = ndcg_per_customer(better, labels, allowed, 1)
    assert per.tolist() == [1.0, 1.0]  # the customer who bought nothing is not counted
    assert per.mean() == ranking_metrics(better, labels, allowed, 1)["ndcg"]
    gain = paired_gain(better, worse, labels, allowed, 1)
    assert gain["gain"] == 0.5 and gain["changed"] == 0.5 and gain["customers"] == 2
    assert gain["se"] == 0.5  # differences (1, 0): std 0.707 / sqrt(2)
