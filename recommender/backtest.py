"""Backtest at an as-of date: what the engine would have offered then, against what was bought.

``backtest(split, catalog, policy, params, window_days, horizon_s) -> (BacktestReport, model)``:

1. Train on what was known before the as-of date (``split.cutoff_s``): customer states from the
   events strictly before it, labels from the label windows that end by it (``training_set``,
   ``fit``: the model ``nbo train`` would have made then, shrinkage and all).
2. Rank every customer in the log as of that date with the decisioning chain itself
   (``decisioning.chain.rank`` with the given policy and catalog, ``now_s`` = the as-of date, a
   list of ``limit`` offers): eligibility, scoring, the after-purchase boost, the contact policy,
   arbitration by value, channel fit and levers. These are the offers, not raw scores.
3. Score them against the purchases in ``[as_of, as_of + horizon)``. A customer counts when they
   bought a product the channel could have offered them at the as-of date (decisioning's
   ``eligible_products``); the baselines rank within that same mask and fill the same slots (as
   many offers as the chain made that customer: a daily cap of the contact policy, such as the
   teller's 2, or a service action instead of offers, leaves fewer than ``limit``):
   ``popularity`` (purchase rate in the training windows), ``segment_popularity`` (the
   same per value tier) and ``model_scores`` (the model's own score, before contact policy and
   arbitration: what arbitration changes).

Metrics (mean over counted customers): ``hit_rate_at_1``, ``hit_rate_at_3`` (a bought product
among the first 1 / 3), ``ndcg_at_3`` (binary gain, ideal = all bought products first), and
``coverage``: distinct products offered to anybody (``products_offered``; ``coverage`` is their
share of the catalog). Nothing here reads a clock: the time is the as-of date throughout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from decisioning.chain import rank
from decisioning.policy import Policy
from domain.catalog import Catalog
from recommender.evaluation import (
    EVAL_CHANNEL, LogSplit, _iso, baseline_scores, eligibility_mask, fit, top_k, training_set,
)
from recommender.matrix import build_matrix, label_matrix
from recommender.model import ModelParams, NboModel

DAY_S = 86_400.0
#: The rankers of a backtest, in the table's order.
RANKERS: tuple[str, ...] = ("offers", "model_scores", "popularity", "segment_popularity")
METRICS: tuple[str, ...] = ("hit_rate_at_1", "hit_rate_at_3", "ndcg_at_3", "coverage")


@dataclass
class BacktestReport:
    """``rows``: ranker -> metrics (``METRICS`` plus ``customers`` counted and ``products_offered``);
    ``info``: the as-of date, horizon, channel, training windows and sizes."""

    rows: dict[str, dict[str, float]]
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "info": self.info}

    def table(self) -> str:
        head = f"{'ranker':<20}" + "".join(f"{m:>15}" for m in METRICS) + f"{'products':>10}"
        lines = [head, "-" * len(head)]
        for name, row in self.rows.items():
            lines.append(f"{name:<20}" + "".join(f"{row[m]:>15.4f}" for m in METRICS)
                         + f"{int(row['products_offered']):>10}")
        info = self.info
        lines.append("")
        lines.append(f"as of {info['as_of']}, horizon {info['horizon_days']:g} days, channel {info['channel']}: "
                     f"{info['counted_customers']:,} of {info['customers']:,} customers bought something the channel "
                     f"could offer ({info['horizon_purchases']:,} purchases); {info['mean_slots']:.2f} offers per customer "
                     f"(every ranker fills the chain's slots); {info['no_offer_customers']:,} counted customers got "
                     "no offer (contact policy or service action)")
        offers, popular = self.rows["offers"], self.rows["popularity"]
        if popular["hit_rate_at_3"]:
            lines.append(f"offers / popularity: hit rate@3 {offers['hit_rate_at_3'] / popular['hit_rate_at_3']:.2f}x, "
                         f"ndcg@3 {offers['ndcg_at_3'] / max(popular['ndcg_at_3'], 1e-12):.2f}x")
        return "\n".join(lines)


def list_metrics(lists: np.ndarray, labels: np.ndarray, counted: np.ndarray, catalog_size: int) -> dict[str, float]:
    """Metrics of offer lists ``lists`` int [C, L] (product columns, best first, -1 = no offer)
    against ``labels`` bool [C, P] (bought in the horizon, already masked by what could be offered),
    over the customers ``counted`` bool [C]. Coverage counts every customer's list."""
    offered = np.unique(lists[lists >= 0])
    out = {"products_offered": float(len(offered)), "coverage": float(len(offered) / max(catalog_size, 1))}
    users = np.nonzero(counted)[0]
    if len(users) == 0:
        return {"hit_rate_at_1": 0.0, "hit_rate_at_3": 0.0, "ndcg_at_3": 0.0, **out, "customers": 0}
    top = lists[users, :3]
    valid = top >= 0
    hits = np.take_along_axis(labels[users], np.where(valid, top, 0), axis=1) & valid
    discount = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    ideal = np.array([discount[: min(int(n), top.shape[1])].sum() for n in labels[users].sum(1)])
    return {"hit_rate_at_1": float(hits[:, :1].any(1).mean()), "hit_rate_at_3": float(hits.any(1).mean()),
            "ndcg_at_3": float(((hits * discount).sum(1) / ideal).mean()), **out, "customers": int(len(users))}


def backtest(split: LogSplit, catalog: Catalog, policy: Policy, params: ModelParams, window_days: float,
             horizon_s: float, channel: str = EVAL_CHANNEL, limit: int = 3, seed: int = 0,
             max_rows: int = 120_000) -> tuple[BacktestReport, NboModel]:
    """Train before ``split.cutoff_s`` (the as-of date, UTC epoch s), rank every customer then
    with the chain on ``channel`` (``limit`` offers), score the purchases of the next
    ``horizon_s`` seconds; ``split`` must hold the purchases after the as-of date (a log folded
    with ``fold_for_training`` does: it folds states before the last cutoff, and keeps every
    purchase)."""
    as_of = split.cutoff_s
    t0 = time.perf_counter()
    ts = training_set(split.folded, catalog, split.starts_s, window_days * DAY_S, None, params)
    model = fit(ts, catalog, params, version="backtest", seed=seed, max_rows=max_rows)
    train_s = time.perf_counter() - t0
    states = split.folded.states[split.folded.cutoffs_s.index(as_of)]
    ids = tuple(sorted(states))
    index = catalog.index
    labels = label_matrix(split.folded.purchases, ids, catalog.ids, as_of, as_of + horizon_s).toarray() > 0
    horizon_purchases = int(labels.sum())
    allowed = eligibility_mask([states[c] for c in ids], catalog, channel, as_of)
    labels &= allowed
    counted = labels.any(1)

    t1 = time.perf_counter()
    offers = np.full((len(ids), limit), -1, dtype=np.int64)
    for r, cid in enumerate(ids):
        decision = rank(states[cid], model, catalog, policy, channel, as_of, limit)
        for j, offer in enumerate(decision.offers[:limit]):
            offers[r, j] = index[offer.product.product_id]
    rank_s = time.perf_counter() - t1

    test = build_matrix(states, catalog.ids, model.token_ids, as_of, customer_ids=ids)
    scores = {"model_scores": model.score_batch(test.x, recent=test.recent, now_s=as_of, segments=test.segments)}
    baselines = baseline_scores(ts.labels.toarray() > 0, ts.x.segments, test.segments, catalog, seed)
    scores.update({name: baselines[name] for name in ("popularity", "segment_popularity")})
    lists = {"offers": offers}
    slots = (offers >= 0).sum(1)  # the contact policy's daily cap may leave room for fewer than ``limit``
    for name, s in scores.items():
        top = top_k(s, allowed, limit)
        lists[name] = np.where(np.take_along_axis(allowed, top, axis=1) & (np.arange(limit)[None, :] < slots[:, None]),
                               top, -1)
    rows = {name: list_metrics(lists[name], labels, counted, len(catalog)) for name in RANKERS}
    info = {
        "as_of": _iso(as_of), "horizon_days": horizon_s / DAY_S, "channel": channel, "limit": limit,
        "customers": len(ids), "counted_customers": int(counted.sum()), "horizon_purchases": horizon_purchases,
        "no_offer_customers": int((counted & (offers[:, 0] < 0)).sum()),
        "mean_slots": round(float(slots.mean()), 3) if len(ids) else 0.0,
        "training": {"windows": [[_iso(a), _iso(b)] for a, b in ts.windows], "window_days": window_days,
                     "purchases": int(ts.labels.nnz), "rows": int(ts.x.x.shape[0]),
                     "products_with_labels": int(model.metadata.get("labels", {}).get("products_with_labels", 0))},
        "train_s": round(train_s, 2), "rank_us_per_customer": round(1e6 * rank_s / max(len(ids), 1), 1),
    }
    return BacktestReport(rows, info), model
