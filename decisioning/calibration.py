"""Calibration: the model's propensity corrected by what customers answered online.

The model's propensity ranks one customer's products well but is no calibrated probability of
acceptance (a score relative to other products and customers, often far above the observed
rate). So the step corrects it multiplicatively: the evidence of a product (``domain.learning.
Evidence``, decayed to ``now_s``) counts the acceptances observed and those the model expected
(the propensities of the answered offers, summed), and the candidate's calibrated value is

    propensity x ratio,   ratio = (k + accepts) / (k / prior_mean + expected)

the mean of the Gamma posterior of observed / expected (``domain.learning.ratio_posterior``,
k = ``starting_evidence`` acceptances). The prior is hierarchical: all products together
(evidence field ``*``) with the prior mean 1, a product with the mean of all products, and the
customer's segment — once it holds ``segment_min_evidence`` decayed answers for the product —
with the product's. A product's ratio multiplies every customer's propensity alike, so each
customer's own order of products the answers agree with is kept, while a product whose
acceptance drifts down (or up) against what the model foresaw moves down (or up) for everybody;
a product nobody answered yet has the ratio of all products, so the scale of the model's scores
does not favour the products with the least evidence.

- on an exploit channel the candidate is ranked by that mean; with no evidence at all the step
  does nothing, so the ranking is exactly the model's;
- on a channel in ``explore_channels`` by propensity x one draw of the ratio from its Gamma
  posterior (the request's seeded generator), with or without evidence: a product few customers
  have answered has a wide posterior and is sometimes ranked up, so it gets answers.

The value replaces the propensity in the priority (``score`` = value x the similar-after-purchase
factor, then arbitration multiplies in value, channel fit and lever), so the boost and the levers
act on it as they act on the propensity. ``Offer.propensity`` stays the model's.

``thompson_probabilities`` estimates, for the offers a Thompson-sampled ranking kept, the
probability that the policy puts each of them at its position: a Monte Carlo estimate over
``PROPENSITY_DRAWS`` draws of the whole ranking (vectorised; docs/LOOP.md has its cost and
error).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from decisioning.context import Context, Offer
from decisioning.experiment import LoopParams
from decisioning.memo import Memo
from decisioning.scoring import similar_weight
from domain.learning import ALL_PRODUCTS, DAY_S, Evidence, decayed_to, ratio, ratio_posterior

#: Draws of the whole ranking behind one logged Thompson probability (standard error at most
#: 0.5 / sqrt(PROPENSITY_DRAWS) = 0.0625; see docs/LOOP.md for the cost and the error).
PROPENSITY_DRAWS = 64
#: Candidates whose score stays below the k-th best lower bound within this many standard
#: deviations of their posterior are left out of the draws (they almost never reach the top k).
PRUNE_SD = 6.0


def posterior_for(evidence: Mapping[str, Evidence], product_id: str, segment: str | None, now_s: float,
                  params: LoopParams) -> tuple[float, float]:
    """(shape, rate) of the Gamma posterior of the ratio observed / expected acceptances of one
    product for a customer of ``segment``, the evidence decayed to ``now_s`` (module docstring).
    (The reference; the step does the same through ``_Informed``, faster.)"""
    half_life, k = params.evidence_half_life_days, params.starting_evidence

    def field(name: str) -> Evidence | None:
        found = evidence.get(name)
        if found is None or found.expected is None:
            return None
        return decayed_to(found, now_s, half_life)

    overall = ratio(field(ALL_PRODUCTS), 1.0, k)
    shape, rate = ratio_posterior(field(product_id), overall, k)
    if segment:
        in_segment = field(f"{product_id}|{segment}")
        if in_segment is not None and in_segment.answers >= params.segment_min_evidence:
            return ratio_posterior(in_segment, shape / rate, k)
    return shape, rate


Split = dict[str, dict[str, tuple[float, float, float, float]]]


def _by_segment(evidence: Mapping[str, Evidence]) -> Split:
    """segment ("" for all customers) -> product id (or ``*``) -> (accepts, answers, as_of_s,
    expected): the evidence mapping split once per read of it (each read is a new mapping), not
    per request; values without ``expected`` (the older stored form) left out."""
    split: Split = {}
    for name, e in evidence.items():
        if e.expected is None:
            continue
        product_id, _, segment = name.partition("|")
        split.setdefault(segment, {})[product_id] = (e.accepts, e.accepts + e.others, e.as_of_s, e.expected)
    return split


_SPLIT: Memo[Split] = Memo(max_entries=4)


class _Informed:
    """``posterior_for`` for one request."""

    def __init__(self, evidence: Mapping[str, Evidence], segment: str | None, now_s: float,
                 params: LoopParams) -> None:
        split = _SPLIT.get((evidence,), (), lambda: _by_segment(evidence))
        self.overall = split.get("", {})
        self.in_segment = split.get(segment, {}) if segment else {}
        self.now_s, self.minimum = now_s, params.segment_min_evidence
        self.prior = params.starting_evidence
        self.half_life_s = params.evidence_half_life_days * DAY_S
        self.factors: dict[float, float] = {}  # as_of_s -> decay to now (domain.learning's factor)
        k = self.prior
        every = self.overall.get(ALL_PRODUCTS)
        if every is None:
            self.base_rate = k  # prior mean 1
        else:
            f = self.factor(every[2])
            self.base_rate = k * (k + every[3] * f) / (k + every[0] * f)  # k / (the ratio of all products)

    def factor(self, as_of_s: float) -> float:
        f = self.factors.get(as_of_s)
        if f is None:
            elapsed_s = self.now_s - as_of_s
            f = self.factors[as_of_s] = 1.0 if elapsed_s <= 0 else 0.5 ** (elapsed_s / self.half_life_s)
        return f

    def __call__(self, product_id: str) -> tuple[float, float]:
        k = self.prior
        found = self.overall.get(product_id)
        if found is None:
            shape, rate = k, self.base_rate
        else:
            f = self.factor(found[2])
            shape, rate = k + found[0] * f, self.base_rate + found[3] * f
        found = self.in_segment.get(product_id)
        if found is not None:
            f = self.factor(found[2])
            if found[1] * f >= self.minimum:
                shape, rate = k + found[0] * f, k * rate / shape + found[3] * f
        return shape, rate


def calibration(ctx: Context) -> None:
    params, evidence = ctx.loop, ctx.evidence
    explore = ctx.channel in params.explore_channels
    if not explore and not evidence:
        return  # nothing learned yet: the model's propensity
    informed = _Informed(evidence, ctx.state.vs_segment, ctx.now_s, params)
    weight = similar_weight(ctx.model, ctx.policy)
    if not explore:  # ``informed`` inlined: this loop is on every request with evidence
        overall, in_segment = informed.overall, informed.in_segment
        if not overall and not in_segment:
            return  # no evidence of this form (only the older one, or other segments'): the model's
        k, base_rate, minimum, factor = informed.prior, informed.base_rate, informed.minimum, informed.factor
        base = k / base_rate
        for pid, offer in ctx.candidates.items():
            found = overall.get(pid)
            if found is None:
                value_ratio = base
            else:
                f = factor(found[2])
                shape, rate = k + found[0] * f, base_rate + found[3] * f
                value_ratio = shape / rate
            seg = in_segment.get(pid)
            if seg is not None:
                f = factor(seg[2])
                if seg[1] * f >= minimum:
                    value_ratio = (k + seg[0] * f) / (k / value_ratio + seg[3] * f)
            propensity = offer.propensity
            if propensity > 0:
                offer.score *= value_ratio
                offer.calibrated = propensity * value_ratio
            else:
                _rank_by(offer, 0.0, weight)
        return
    offers = list(ctx.candidates.values())
    if not offers:
        return
    shapes, rates = np.array([informed(o.product.product_id) for o in offers]).T
    propensities = np.array([o.propensity for o in offers])
    scales = propensities / rates  # the value propensity x ratio ~ Gamma(shape, scale)
    samples = (ctx.rng.standard_gamma(shapes) * scales).tolist()
    for offer, shape, scale, sample in zip(offers, shapes.tolist(), scales.tolist(), samples):
        offer.posterior = (shape, scale)
        _rank_by(offer, sample, weight)


def _rank_by(offer: Offer, value: float, weight: float) -> None:
    """Put ``value`` in the offer's priority in place of the model's propensity."""
    if offer.propensity > 0:
        offer.score *= value / offer.propensity
    else:
        offer.score = value * (1.0 + weight * offer.similar_boost) if offer.similar_boost > 0 else value
    offer.calibrated = value


def thompson_probabilities(pool: Sequence[Offer], kept: Sequence[Offer], rng: np.random.Generator,
                           draws: int = PROPENSITY_DRAWS) -> list[float]:
    """For each offer of ``kept`` (the top ``len(kept)`` of ``pool`` by ``score``, best first, as
    one Thompson sample ranked them), the estimated probability that ranking by a fresh sample
    puts it at its position. Every offer of ``pool`` carries ``posterior`` (shape, scale: the
    Gamma its value propensity x ratio was drawn from) and ``calibrated`` (its draw); its score is
    the draw times a factor that does not depend on it (similar boost, value, channel fit,
    lever). The estimate is the share of ``draws`` samples of the whole pool that rank it there,
    at least 0.5 / ``draws`` (a shown offer has a positive probability)."""
    k = len(kept)
    if k == 0:
        return []
    shapes = np.array([o.posterior[0] for o in pool])  # type: ignore[index]
    scales = np.array([o.posterior[1] for o in pool])  # type: ignore[index]
    factors = np.array([o.score / o.calibrated if o.calibrated else 0.0 for o in pool])
    index = {id(o): i for i, o in enumerate(pool)}
    kept_at = [index[id(o)] for o in kept]
    if len(pool) > k:  # leave out who cannot reach the top k (within PRUNE_SD sd of its posterior)
        mean = shapes * scales
        sd = np.sqrt(shapes) * scales
        high = factors * (mean + PRUNE_SD * sd)
        low = factors * np.maximum(0.0, mean - PRUNE_SD * sd)
        kth_low = np.partition(low, len(pool) - k)[len(pool) - k]
        keep = high >= kth_low
        keep[kept_at] = True
        positions = np.flatnonzero(keep)
        shapes, scales, factors = shapes[positions], scales[positions], factors[positions]
        remap = {int(p): i for i, p in enumerate(positions)}
        kept_at = [remap[i] for i in kept_at]
    scores = rng.standard_gamma(shapes, size=(draws, len(shapes))) * (scales * factors)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    counts = (top == np.array(kept_at)).sum(axis=0)
    return [max(float(c), 0.5) / draws for c in counts]
