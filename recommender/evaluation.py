"""Offline evaluation: ranking metrics, the time split and leave-one-out, baselines, the report.

Every ranker is a score matrix [C, P] (higher = offer first). A customer counts when they bought
at least one product in the label window that could be offered. What can be offered is the
decisioning's own answer (``decisioning.eligibility.eligible_products``: held single-hold, channel,
age, minimum assets, risk tolerance, value tier), for the customer's state at the cutoff on one
channel; those products are removed from every ranker's list alike, so the comparison is the
ranking a customer would actually see there. The headline rows are for ``EVAL_CHANNEL`` (the
teller, who sells 42 of the 43 products); ``EvalReport.channels`` has every channel's rows.

Metrics at ``k`` (mean over counted customers): ``ndcg`` (binary gain, ideal = all bought
products first), ``map`` (average precision, normalised by ``min(bought, k)``), ``recall``,
``hit_rate`` (at least one bought product in the top k) and ``coverage`` (share of the catalog
that appears in anybody's top k).
"""

from __future__ import annotations

import heapq
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import sparse

from decisioning.eligibility import eligible_products
from decisioning.policy import CHANNELS
from schemas.rules import DEFAULT_RULES, ContractRules
from domain.catalog import Catalog
from domain.features import FeatureParams
from domain.state import CustomerState
from recommender.after_purchase import fit_transitions
from recommender.matrix import (FoldedLog, InteractionMatrix, Purchase, build_matrix, iso_epoch_s, label_matrix,
                               token_vocabulary)
from recommender.model import ModelParams, NboModel, family_prior, train_model

DAY_S = 86_400.0
#: A customer is a recent purchaser when they bought something in this many days before the cutoff.
RECENT_DAYS = 30.0
METRICS: tuple[str, ...] = ("ndcg", "map", "recall", "hit_rate", "coverage")
#: The channel of the headline figures: the teller sells every product but one.
EVAL_CHANNEL = "teller"


def top_k(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Indices [C, k] of the best allowed products per row (ties: lower index first)."""
    masked = np.where(allowed, scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    return order


def ranking_metrics(scores: np.ndarray, labels: np.ndarray, allowed: np.ndarray, k: int) -> dict[str, float]:
    """Metrics at ``k`` of one ranker. ``labels`` bool [C, P]; rows without an allowed label are skipped."""
    labels = labels & allowed
    users = np.nonzero(labels.any(1))[0]
    if len(users) == 0:
        return {m: 0.0 for m in METRICS} | {"customers": 0}
    top = top_k(scores[users], allowed[users], k)
    valid = np.take_along_axis(allowed[users], top, axis=1)
    hits = np.take_along_axis(labels[users], top, axis=1) & valid
    n_rel = labels[users].sum(1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount).sum(1)
    ideal = np.array([discount[: min(n, k)].sum() for n in n_rel])
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (precision_at * hits).sum(1) / np.minimum(n_rel, k)
    shown = np.unique(top[valid])
    return {
        "ndcg": float((dcg / ideal).mean()),
        "map": float(ap.mean()),
        "recall": float((hits.sum(1) / n_rel).mean()),
        "hit_rate": float(hits.any(1).mean()),
        "coverage": float(len(shown) / scores.shape[1]),
        "customers": int(len(users)),
    }


def ndcg_per_customer(scores: np.ndarray, labels: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k [U] of each counted customer (with an allowed label), in row order: the terms whose
    mean is ``ranking_metrics``'s ``ndcg``, for paired comparisons of two rankers."""
    labels = labels & allowed
    users = np.nonzero(labels.any(1))[0]
    if len(users) == 0:
        return np.zeros(0)
    top = top_k(scores[users], allowed[users], k)
    hits = np.take_along_axis(labels[users], top, axis=1) & np.take_along_axis(allowed[users], top, axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.array([discount[: min(n, k)].sum() for n in labels[users].sum(1)])
    return (hits * discount).sum(1) / ideal


def paired_gain(with_boost: np.ndarray, without: np.ndarray, labels: np.ndarray, allowed: np.ndarray,
                k: int) -> dict[str, float]:
    """Mean NDCG@k gain of one ranker over another on the same customers, with its standard
    error (per-customer differences) and the share of customers whose NDCG changed."""
    diff = ndcg_per_customer(with_boost, labels, allowed, k) - ndcg_per_customer(without, labels, allowed, k)
    n = len(diff)
    if n == 0:
        return {"gain": 0.0, "se": 0.0, "changed": 0.0, "customers": 0}
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return {"gain": float(diff.mean()), "se": se, "changed": float((diff != 0).mean()), "customers": n}


def eligibility_mask(states: Sequence[CustomerState | None], catalog: Catalog, channel: str,
                     now_s: float) -> np.ndarray:
    """bool [C, P] in catalog order: may the product be offered to the customer on ``channel`` at
    ``now_s`` (UTC epoch s), by the decisioning's own eligibility (``eligible_products``). A
    customer without a state (``None``) is judged as a new one: nothing held, no assets, no profile."""
    out = np.zeros((len(states), len(catalog)), dtype=bool)
    index = catalog.index
    for r, state in enumerate(states):
        _, eligible = eligible_products(state if state is not None else CustomerState(""), catalog, channel, now_s)
        out[r, [index[p.product_id] for p in eligible]] = True
    return out


def held_single_mask(x: InteractionMatrix, catalog: Catalog) -> np.ndarray:
    single = np.array([not p.multi_hold for p in catalog.products])
    held = x.held.toarray() > 0
    return ~(held & single[None, :])


@dataclass
class TrainingSet:
    """Stacked time splits: rows = (window, customer); features at each window's start and the
    purchases in ``[start, start + window)`` as labels."""

    x: InteractionMatrix
    labels: sparse.csr_matrix
    windows: list[tuple[float, float]]
    #: every purchase of the log (the after-purchase transitions use those before the newest
    #: window's end, in order); ``observed_from_s``: purchases from then on (one window before
    #: the oldest start) trigger a transition, older ones only make their buyer a holder
    purchases: Sequence[Purchase] = ()
    observed_from_s: float | None = None


def training_set(folded: FoldedLog, catalog: Catalog, starts_s: Sequence[float], window_s: float,
                 customer_ids: Sequence[str] | None = None, params: ModelParams = ModelParams()) -> TrainingSet:
    """Stack one time split per start (each must be one of ``folded.cutoffs_s``); the token
    columns are those of the latest start."""
    starts = sorted(starts_s)
    latest = folded.states[folded.cutoffs_s.index(starts[-1])]
    ids = tuple(customer_ids) if customer_ids is not None else tuple(sorted(latest))
    vocab = token_vocabulary((latest[c] for c in ids if c in latest), starts[-1], params.max_token_columns,
                             params.min_token_customers)
    xs, ys, segments, recent = [], [], [], []
    for start in starts:
        states = folded.states[folded.cutoffs_s.index(start)]
        m = build_matrix(states, catalog.ids, vocab, start, customer_ids=ids)
        xs.append(m.x)
        ys.append(label_matrix(folded.purchases, ids, catalog.ids, start, start + window_s))
        segments += m.segments
        recent += m.recent
    x = InteractionMatrix(ids * len(starts), catalog.ids, vocab, sparse.vstack(xs).tocsr(), tuple(segments), recent,
                          starts[-1])
    return TrainingSet(x, sparse.vstack(ys).tocsr(), [(s, s + window_s) for s in starts], folded.purchases,
                       starts[0] - window_s)


def fit(ts: TrainingSet, catalog: Catalog, params: ModelParams = ModelParams(), version: str = "dev",
        seed: int = 0, max_rows: int = 120_000) -> NboModel:
    """Train on ``ts``; the after-purchase transitions come from its purchases before the end of
    its newest window (none when it carries no purchases)."""
    single = np.array([not p.multi_hold for p in catalog.products])
    transitions = None
    if ts.purchases:
        end = max(b for _, b in ts.windows)
        start = ts.observed_from_s if ts.observed_from_s is not None else min(a for a, _ in ts.windows)
        transitions = fit_transitions(ts.purchases, catalog.ids, single, start, end, params.after_purchase_days)
    meta = {
        "catalog_hash": catalog.content_hash(),
        "data_window": {"windows": [[_iso(a), _iso(b)] for a, b in ts.windows],
                        "rows": len(ts.x.customer_ids), "purchases": int(ts.labels.nnz)},
    }
    return train_model(ts.x.x, ts.labels, ts.x.segments, catalog.ids, ts.x.token_ids, single, params,
                       version=version, seed=seed, metadata=meta, max_rows=max_rows, transitions=transitions)


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


@dataclass
class EvalReport:
    k: int
    rows: dict[str, dict[str, float]]
    segments: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    #: channel -> ranker -> metrics, each ranking masked by that channel's eligibility
    channels: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    #: purchase recency group (``recent_purchasers``: bought something in the ``RECENT_DAYS``
    #: before the cutoff; ``others``) -> channel -> ranker -> metrics
    recency: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)

    def ratios(self) -> dict[str, float]:
        model = self.rows.get("model", {}).get("ndcg", 0.0)
        out = {}
        for name in ("popularity", "oracle"):
            base = self.rows.get(name, {}).get("ndcg", 0.0)
            if base:
                out[f"model_over_{name}"] = model / base
        return out

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "rows": self.rows, "ratios": self.ratios(), "segments": self.segments,
                "channels": self.channels, "recency": self.recency, "info": self.info}

    def table(self) -> str:
        head = f"{'ranker':<20}" + "".join(f"{m + '@' + str(self.k) if m != 'coverage' else m:>12}" for m in METRICS)
        lines = [head, "-" * len(head)]
        for name, row in self.rows.items():
            lines.append(f"{name:<20}" + "".join(f"{row[m]:>12.4f}" for m in METRICS))
        ratios = self.ratios()
        if ratios:
            lines.append("")
            lines.append("  ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))
        if self.segments:
            lines.append("")
            names = list(self.rows)
            lines.append(f"{'segment (ndcg@' + str(self.k) + ')':<20}{'customers':>10}" + "".join(f"{n[:18]:>20}" for n in names))
            for seg, rows in self.segments.items():
                n = next(iter(rows.values())).get("customers", 0)
                lines.append(f"{seg:<20}{n:>10}" + "".join(f"{rows[r]['ndcg']:>20.4f}" for r in names))
        if self.channels:
            lines.append("")
            names = list(self.rows)
            lines.append(f"{'channel (ndcg@' + str(self.k) + ')':<20}{'customers':>10}" + "".join(f"{n[:18]:>20}" for n in names))
            for channel, rows in self.channels.items():
                n = next(iter(rows.values())).get("customers", 0)
                lines.append(f"{channel:<20}{n:>10}" + "".join(f"{rows[r]['ndcg']:>20.4f}" for r in names))
        if self.recency:
            lines.append("")
            names = list(self.rows)
            lines.append(f"{'recency (ndcg@' + str(self.k) + ')':<20}{'customers':>10}" + "".join(f"{n[:18]:>20}" for n in names))
            for group, by_channel in self.recency.items():
                for channel, rows in by_channel.items():
                    n = next(iter(rows.values())).get("customers", 0)
                    label = f"{group[:12]}/{channel[:7]}"
                    lines.append(f"{label:<20}{n:>10}" + "".join(f"{rows[r]['ndcg']:>20.4f}" for r in names))
        return "\n".join(lines)


def compare(rankers: Mapping[str, np.ndarray], labels: np.ndarray, allowed: np.ndarray, k: int,
            groups: np.ndarray | None = None, group_names: Sequence[str] | None = None) -> EvalReport:
    rows = {name: ranking_metrics(s, labels, allowed, k) for name, s in rankers.items()}
    segments: dict[str, dict[str, dict[str, float]]] = {}
    if groups is not None and group_names is not None:
        for g, name in enumerate(group_names):
            sel = groups == g
            if not sel.any():
                continue
            segments[name] = {r: ranking_metrics(s[sel], labels[sel], allowed[sel], k) for r, s in rankers.items()}
    return EvalReport(k, rows, segments)


def baseline_scores(train_labels: np.ndarray, train_segments: Sequence[str], test_segments: Sequence[str],
                    catalog: Catalog, seed: int = 0) -> dict[str, np.ndarray]:
    """Popularity (purchase rate in the training window), per-value-tier popularity, random,
    and the untrained family prior, as score matrices for the test rows."""
    y = np.asarray(train_labels, dtype=np.float64)
    c = len(test_segments)
    pop = y.mean(0)
    seg_pop = {}
    train_seg = np.asarray(train_segments)
    for s in set(train_segments):
        rows = train_seg == s
        seg_pop[s] = (y[rows].sum(0) + 20 * pop) / (rows.sum() + 20)
    rng = np.random.default_rng(seed)
    return {
        "popularity": np.tile(pop, (c, 1)),
        "segment_popularity": np.stack([seg_pop.get(s, pop) for s in test_segments]) if c else np.zeros((0, len(pop))),
        "random": rng.random((c, len(pop))),
        "family_prior": np.tile(family_prior(catalog), (c, 1)),
    }


def time_split(folded: FoldedLog, catalog: Catalog, cutoff_s: float, window_days: float,
               params: ModelParams = ModelParams(), k: int = 3, seed: int = 0,
               truth: Any = None, label_end_s: float | None = None,
               train_starts_s: Sequence[float] | None = None,
               channels: Sequence[str] = (EVAL_CHANNEL,),
               similar_weights: Sequence[float] = (),
               customer_ids: Sequence[str] | None = None) -> tuple[EvalReport, NboModel]:
    """Train on states at ``cutoff - window`` with purchases in ``[cutoff - window, cutoff)``,
    then rank at ``cutoff`` and score the purchases in the next window (``truth.holdout_pairs``
    when a simulator truth is given, else purchases in the log from ``cutoff`` to ``label_end_s``).
    Rankings are masked by the decisioning's eligibility on each of ``channels``; the report's
    rows and segments are for the first, ``report.channels`` has them all.

    ``train_starts_s`` (default ``[cutoff - window]``) stacks several training windows; each
    must end by the cutoff. ``folded`` must hold states at every start and at ``cutoff``.
    ``report.recency`` splits every channel's rows into recent purchasers (a purchase in the
    ``RECENT_DAYS`` before the cutoff) and the others; ``report.info["similar_gain"]`` has the
    paired NDCG@k gain of ``model`` over ``model_no_similar`` with its standard error, per group
    and channel. Each of ``similar_weights`` adds a ranker
    ``model_w<weight>``: the same model with that after-purchase weight (for tuning).
    ``customer_ids`` (without a truth file): train and rank these customers only (default: every
    customer with a state at the cutoff)."""
    starts = list(train_starts_s or [cutoff_s - window_days * DAY_S])
    channels = tuple(channels)
    if not channels or any(ch not in CHANNELS for ch in channels):
        raise ValueError(f"channels: expected some of {CHANNELS}, got {channels!r}")
    if truth is not None:
        ids = tuple(str(c) for c in truth.customer_ids)
    elif customer_ids is not None:
        ids = tuple(customer_ids)
    else:
        ids = tuple(sorted(folded.states[folded.cutoffs_s.index(cutoff_s)]))
    t0 = time.perf_counter()
    ts = training_set(folded, catalog, starts, window_days * DAY_S, ids, params)
    model = fit(ts, catalog, params, version="evaluation", seed=seed)
    train_s = time.perf_counter() - t0
    states_now = folded.states[folded.cutoffs_s.index(cutoff_s)]
    customer_states = [states_now.get(c) for c in ids]  # read once (a packed fold unpickles each read)
    test = build_matrix({c: s for c, s in zip(ids, customer_states) if s is not None}, catalog.ids, model.token_ids,
                        cutoff_s, customer_ids=ids)
    if truth is not None:
        labels = np.zeros((len(ids), len(catalog)), dtype=bool)
        labels[truth.holdout_pairs[:, 0], truth.holdout_pairs[:, 1]] = True
        groups, group_names = np.asarray(truth.segment), list(truth.segment_names)
    else:
        end = label_end_s if label_end_s is not None else cutoff_s + window_days * DAY_S
        labels = label_matrix(folded.purchases, ids, catalog.ids, cutoff_s, end).toarray() > 0
        tiers = sorted(set(test.segments))
        groups, group_names = np.array([tiers.index(s) for s in test.segments]), tiers
    allowed = {ch: eligibility_mask(customer_states, catalog, ch, cutoff_s) for ch in channels}
    t1 = time.perf_counter()
    rankers = {"model": model.score_batch(test.x, recent=test.recent, now_s=cutoff_s, segments=test.segments)}
    score_s = time.perf_counter() - t1
    rankers["model_no_similar"] = model.score_batch(test.x, now_s=cutoff_s, segments=test.segments, similar_weight=0.0)
    for w in similar_weights:
        rankers[f"model_w{w:g}"] = model.score_batch(test.x, recent=test.recent, now_s=cutoff_s,
                                                     segments=test.segments, similar_weight=float(w))
    rankers.update(baseline_scores(ts.labels.toarray() > 0, ts.x.segments, test.segments, catalog, seed))
    if truth is not None:
        rankers["oracle"] = np.asarray(truth.propensity, dtype=np.float64)
    report = compare(rankers, labels, allowed[channels[0]], k, groups, group_names)
    report.channels = {ch: {name: ranking_metrics(scores, labels, allowed[ch], k) for name, scores in rankers.items()}
                       for ch in channels}
    recent = recent_purchasers(folded, ids, cutoff_s)
    gains: dict[str, dict[str, dict[str, float]]] = {}
    for group, sel in (("all", np.ones(len(ids), bool)), ("recent_purchasers", recent), ("others", ~recent)):
        if group != "all":
            report.recency[group] = {ch: {name: ranking_metrics(scores[sel], labels[sel], allowed[ch][sel], k)
                                          for name, scores in rankers.items()} for ch in channels}
        gains[group] = {ch: paired_gain(rankers["model"][sel], rankers["model_no_similar"][sel], labels[sel],
                                        allowed[ch][sel], k) for ch in channels}
    report.info = {
        "mode": "time_split", "customers": len(ids), "cutoff": _iso(cutoff_s), "window_days": window_days,
        "channel": channels[0],
        "train_purchases": int(ts.labels.nnz), "test_purchases": int(labels.sum()),
        "tokens": len(model.token_ids), "train_s": round(train_s, 2),
        "recent_purchasers": int(recent.sum()), "similar_weight": model.similar_weight,
        "similar_gain": gains,
        "half_life_days": model.params.half_life_days, "after_purchase": model.metadata.get("after_purchase"),
        "score_us_per_customer": round(1e6 * score_s / max(len(ids), 1), 2), "params": params.to_dict(),
    }
    return report, model


def recent_purchasers(folded: FoldedLog, customer_ids: Sequence[str], cutoff_s: float,
                      days: float = RECENT_DAYS) -> np.ndarray:
    """bool [C]: bought something in ``[cutoff - days, cutoff)`` (UTC epoch s)."""
    rows = {c: i for i, c in enumerate(customer_ids)}
    out = np.zeros(len(customer_ids), dtype=bool)
    lo = cutoff_s - days * DAY_S
    for p in folded.purchases:
        if lo <= p.at_s < cutoff_s:
            i = rows.get(p.customer_id)
            if i is not None:
                out[i] = True
    return out


def leave_one_out(x: InteractionMatrix, catalog: Catalog, params: ModelParams = ModelParams(), k: int = 3,
                  seed: int = 0, test_share: float = 0.2) -> EvalReport:
    """For data without time structure: hide one held product per customer (with at least two),
    train on the other customers, and rank the hidden product back for the test customers."""
    rng = np.random.default_rng(seed)
    p = len(catalog)
    xs = sparse.csr_matrix(x.x, dtype=np.float32, copy=True)
    held = xs[:, :p].toarray() > 0
    rows = np.nonzero(held.sum(1) >= 2)[0]
    labels = np.zeros((xs.shape[0], p), dtype=bool)
    xl = xs.tolil()
    for r in rows:
        j = rng.choice(np.nonzero(held[r])[0])
        labels[r, j] = True
        xl[r, j] = 0
    hidden = sparse.csr_matrix(xl)
    hidden.eliminate_zeros()
    order = rng.permutation(rows)
    n_test = max(1, int(len(order) * test_share))
    test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
    single = np.array([not q.multi_hold for q in catalog.products])
    segs = np.asarray(x.segments)
    model = train_model(hidden[train_rows], labels[train_rows], list(segs[train_rows]), catalog.ids, x.token_ids,
                        single, params, version="loo", seed=seed)
    scores = model.score_batch(hidden[test_rows], segments=list(segs[test_rows]))
    test_held = hidden[test_rows][:, :p].toarray() > 0
    allowed = ~(test_held & single[None, :])
    rankers = {"model": scores}
    rankers.update(baseline_scores(labels[train_rows], list(segs[train_rows]), list(segs[test_rows]), catalog, seed))
    tiers = sorted(set(segs[test_rows]))
    report = compare(rankers, labels[test_rows], allowed, k,
                     np.array([tiers.index(s) for s in segs[test_rows]]), tiers)
    report.info = {"mode": "leave_one_out", "customers": int(len(test_rows)), "train_customers": int(len(train_rows))}
    return report


def dumps(report: EvalReport) -> str:
    return json.dumps(report.to_json(), sort_keys=False)


def plan_starts(cutoff_s: float, window_days: float, windows: int, data_start_s: float | None = None) -> list[float]:
    """Start times of the stacked training windows, newest first: ``cutoff - i * window``
    (i = 1..windows), dropping any that begins before ``data_start_s`` (keeps at least one)."""
    starts = [cutoff_s - i * window_days * DAY_S for i in range(1, windows + 1)]
    if data_start_s is not None:
        kept = [s for s in starts if s >= data_start_s]
        starts = kept or starts[:1]
    return starts


@dataclass
class LogSplit:
    """An event log folded for training and evaluation."""

    folded: FoldedLog
    cutoff_s: float
    starts_s: list[float]
    data_start_s: float | None


def fold_for_training(lines: Any, cutoff_s: float, window_days: float, windows: int,
                      data_start_s: float | None = None, extra_cutoffs_s: Sequence[float] = (),
                      features: FeatureParams = FeatureParams(), rules: ContractRules = DEFAULT_RULES) -> LogSplit:
    """Fold a log once with states at every training start, ``cutoff_s`` and any extra cutoffs,
    with the half-lives ``features`` (the stream's, ``bootstrap.feature_params``), decoding under
    the bank's contract ``rules`` (its customer ids and earliest event time: the stream's).
    ``lines``: the log's lines, or a source with its own ``fold(cutoffs, features)`` that
    decodes under its own rules (e.g. ``recommender.partitioned_fold.PartitionedLog``: over
    customer partitions, from a snapshot)."""
    from recommender.matrix import fold_event_log

    starts = plan_starts(cutoff_s, window_days, windows, data_start_s)
    cutoffs = sorted(set(starts) | {cutoff_s} | set(extra_cutoffs_s))
    fold = getattr(lines, "fold", None)
    folded = fold(cutoffs, features) if fold is not None else fold_event_log(lines, cutoffs, features, rules)
    return LogSplit(folded, cutoff_s, starts, data_start_s)


def train_at(split: LogSplit, catalog: Catalog, params: ModelParams, window_days: float, version: str = "dev",
             seed: int = 0, max_rows: int = 120_000) -> tuple[NboModel, dict[str, Any]]:
    """Train on the stacked windows before ``split.cutoff_s``; returns the model and timings."""
    t0 = time.perf_counter()
    ts = training_set(split.folded, catalog, split.starts_s, window_days * DAY_S, None, params)
    t1 = time.perf_counter()
    model = fit(ts, catalog, params, version=version, seed=seed, max_rows=max_rows)
    t2 = time.perf_counter()
    info = {"matrix_s": round(t1 - t0, 2), "train_s": round(t2 - t1, 2), "rows": int(ts.x.x.shape[0]),
            "customers": len(split.folded.states[-1]), "purchases": int(ts.labels.nnz),
            "tokens": len(ts.x.token_ids), "cutoff": _iso(split.cutoff_s)}
    return model, info


def validation_split(split: LogSplit, catalog: Catalog, params: ModelParams, window_days: float, k: int = 3,
                     seed: int = 0, similar_weights: Sequence[float] = (),
                     customer_ids: Sequence[str] | None = None) -> EvalReport:
    """Tune-time evaluation without a truth file: train on the windows before ``cutoff - window``
    and rank the purchases of the last window ``[cutoff - window, cutoff)`` from the log
    (``customer_ids``: of these customers only, see ``time_split``)."""
    val_cut = split.cutoff_s - window_days * DAY_S
    starts = [s for s in split.starts_s if s + window_days * DAY_S <= val_cut + 1e-6]
    if not starts:
        raise ValueError("tuning needs at least two training windows before the cutoff (--windows 2)")
    report, _ = time_split(split.folded, catalog, val_cut, window_days, params, k, seed,
                           label_end_s=split.cutoff_s, train_starts_s=starts, similar_weights=similar_weights,
                           customer_ids=customer_ids)
    return report


#: The after-purchase weights ``tune_similar_weight`` tries by default.
SIMILAR_WEIGHTS: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0)


def tune_similar_weight(split: LogSplit, catalog: Catalog, params: ModelParams, window_days: float, k: int = 3,
                        seed: int = 0, weights: Sequence[float] = SIMILAR_WEIGHTS) -> tuple[float, dict[float, float]]:
    """The after-purchase weight with the best NDCG@k on the validation window (the last window
    before the cutoff, purchases from the log: never the holdout), trained once for all
    ``weights``; ties go to the smaller weight. Returns (best weight, {weight: ndcg})."""
    report = validation_split(split, catalog, params, window_days, k, seed, similar_weights=weights)
    ndcg = {float(w): report.rows[f"model_w{w:g}"]["ndcg"] for w in weights}
    best = min(ndcg, key=lambda w: (-round(ndcg[w], 6), w))
    return best, ndcg


# ---- label windows from the data -------------------------------------------------------------

#: Labelled purchases the training windows should hold: below this a model has ranked worse than
#: popularity on a real bank's data (it lost badly with a few dozen and won with thousands).
MIN_LABEL_PURCHASES = 1000
#: The most stacked windows the search tries at one window length before doubling the length.
MAX_WINDOWS = 12


@dataclass(frozen=True)
class HistoryScan:
    """What one pass over a log says about its time span: first and last event (UTC epoch s),
    every purchase time (sorted), events read."""

    first_event_s: float
    last_event_s: float
    purchase_times_s: np.ndarray
    events: int


def scan_history(lines: Any) -> HistoryScan:
    """One cheap pass over JSON event lines (bytes): times only, nothing validated or folded."""
    import orjson

    first, last, events = float("inf"), float("-inf"), 0
    bought: list[float] = []
    for raw in lines:
        head = orjson.loads(raw)
        at_s = iso_epoch_s(head["occurred_at"])
        events += 1
        first, last = min(first, at_s), max(last, at_s)
        if head.get("type") == "purchase":
            bought.append(at_s)
    if not events:
        raise ValueError("the event log is empty")
    return HistoryScan(first, last, np.sort(np.asarray(bought, dtype=np.float64)), events)


@dataclass(frozen=True)
class WindowChoice:
    """The label windows training uses: ``windows`` stacked windows of ``window_days`` ending at
    the cutoff, the purchases they hold, and why they were chosen."""

    window_days: float
    windows: int
    purchases: int
    enough: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"window_days": self.window_days, "windows": self.windows, "purchases": self.purchases,
                "enough": self.enough, "reason": self.reason}


def choose_windows(purchase_times_s: np.ndarray, cutoff_s: float, data_start_s: float, window_days: float,
                   windows: int, min_purchases: int = MIN_LABEL_PURCHASES, fixed_window_days: bool = False,
                   fixed_windows: bool = False, max_windows: int = MAX_WINDOWS) -> WindowChoice:
    """The label windows before ``cutoff_s`` (UTC epoch s): the configured ``windows`` x
    ``window_days`` when they hold at least ``min_purchases`` purchases (``purchase_times_s``,
    sorted); else more windows of the same length (up to ``max_windows``), then windows of twice
    the length, and so on, while they fit in the history (``data_start_s`` to the cutoff); the
    first that holds enough wins. When none does, the span that holds the most (the fewest,
    shortest windows on a tie), marked ``enough=False``. ``fixed_*``: an explicit
    ``--window-days`` / ``--windows`` is kept as given and only the other one is searched (both
    fixed: exactly as given)."""
    times = np.asarray(purchase_times_s, dtype=np.float64)

    def held(w_days: float, n: int) -> int:
        lo = max(cutoff_s - n * w_days * DAY_S, data_start_s)
        return int(np.searchsorted(times, cutoff_s, "left") - np.searchsorted(times, lo, "left"))

    history_days = max((cutoff_s - data_start_s) / DAY_S, 0.0)
    if not fixed_windows:  # windows that would start before the history are dropped (``plan_starts``)
        windows = min(windows, max(1, int(history_days / window_days + 1e-9)))
    configured = held(window_days, windows)
    if configured >= min_purchases or (fixed_window_days and fixed_windows):
        why = ("as given" if fixed_window_days and fixed_windows else
               f"the configured windows hold {configured:,} purchases (>= {min_purchases:,})")
        return WindowChoice(window_days, windows, configured, configured >= min_purchases, why)
    lengths = [window_days]
    if not fixed_window_days:
        while lengths[-1] * 2 * (windows if fixed_windows else 1) <= history_days + 1e-9:
            lengths.append(lengths[-1] * 2)
    best = (configured, window_days, windows)
    for w_days in lengths:
        counts = [windows] if fixed_windows else range(1, max_windows + 1)
        for n in counts:
            if (w_days, n) != (window_days, windows) and n * w_days > history_days + 1e-9:
                continue
            got = held(w_days, n)
            if got >= min_purchases:
                return WindowChoice(w_days, n, got, True,
                                    f"the configured {windows} x {window_days:g} days held {configured:,} purchases "
                                    f"(< {min_purchases:,}); {n} x {w_days:g} days hold {got:,}")
            if got > best[0]:
                best = (got, w_days, n)
    got, w_days, n = best
    return WindowChoice(w_days, n, got, False,
                        f"the history ({history_days:.0f} days before the cutoff) holds {got:,} purchases at most "
                        f"({n} x {w_days:g} days), fewer than the {min_purchases:,} wanted")


# ---- the promotion gate ----------------------------------------------------------------------

#: Labelled purchases below which a model is not promoted (without ``--force``): its validation
#: could not tell it from popularity, and neither could the bank.
MIN_PROMOTE_PURCHASES = 200
#: Customers the promotion gate validates on at most (``gate_sample``).
GATE_MAX_CUSTOMERS = 200_000
#: The metric of the gate (on the validation window, decisioning's eligibility on the teller).
GATE_METRIC = "ndcg"


@dataclass
class GateResult:
    """Whether a trained model may be promoted: ``reasons`` it may not (empty when it may) and the
    validation figures behind them (``validation``: ranker -> metrics at k, or None when there
    was no validation window)."""

    passed: bool
    reasons: list[str]
    validation: dict[str, dict[str, float]] | None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "metric": f"{GATE_METRIC}@3",
                "validation": self.validation, **self.info}


def gate_sample(customer_ids: Iterable[str], max_customers: int) -> list[str] | None:
    """At most ``max_customers`` of ``customer_ids`` for the gate's validation, the same ones on
    every run and machine (smallest CRC-32 of the id, then the id), in id order; None when there
    are not more than that (then every customer is validated)."""
    ids = list(customer_ids)
    if len(ids) <= max_customers:
        return None
    chosen = heapq.nsmallest(max_customers, ids, key=lambda c: (zlib.crc32(c.encode()), c))
    return sorted(chosen)


def promotion_gate(split: LogSplit, catalog: Catalog, params: ModelParams, window_days: float, purchases: int,
                   min_purchases: int = MIN_PROMOTE_PURCHASES, k: int = 3, seed: int = 0,
                   max_customers: int = GATE_MAX_CUSTOMERS) -> GateResult:
    """Hold out the last window before the cutoff, train on the windows before it (as
    ``validation_split``), rank every customer at its start with the decisioning's eligibility
    (teller) and compare NDCG@k with popularity from the same windows. Refused: fewer than
    ``min_purchases`` labelled purchases (``purchases``: the full model's), no window to hold
    out, or a validation NDCG@k below popularity's (a tie passes: a model shrunk to popularity
    ranks like it). A bank larger than ``max_customers`` is validated on that many of its
    customers (``gate_sample``, recorded as ``sampled_from``): the validation model trains on an
    importance subsample of rows anyway, and building and ranking every customer of a
    ten-million bank would add minutes to every training."""
    reasons: list[str] = []
    if purchases < min_purchases:
        reasons.append(f"only {purchases:,} labelled purchases (at least {min_purchases:,} are needed to tell a "
                       "model from popularity)")
    t0 = time.perf_counter()
    everyone = split.folded.states[split.folded.cutoffs_s.index(split.cutoff_s)]
    sample = gate_sample(everyone, max_customers)
    try:
        report = validation_split(split, catalog, params, window_days, k, seed, customer_ids=sample)
    except ValueError:
        reasons.append("no validation window: the history before the cutoff holds a single label window, "
                       "so none can be held out")
        return GateResult(False, reasons, None)
    rows = {name: report.rows[name] for name in ("model", "popularity", "segment_popularity")}
    model, popular = rows["model"][GATE_METRIC], rows["popularity"][GATE_METRIC]
    customers = int(rows["model"].get("customers", 0))
    if model < popular:
        reasons.append(f"it ranks worse than popularity on the validation window ({report.info['cutoff'][:10]}, "
                       f"{customers:,} customers): {GATE_METRIC}@{k} {model:.4f} vs {popular:.4f}")
    info = {"window": [report.info["cutoff"], _iso(split.cutoff_s)], "customers": customers,
            "sampled_from": len(everyone) if sample is not None else None,
            "train_purchases": report.info["train_purchases"], "validation_s": round(time.perf_counter() - t0, 2)}
    return GateResult(not reasons, reasons, rows, info)
