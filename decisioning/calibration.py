"""Calibration: the model's propensity corrected by what customers answered online.

For each candidate the step takes the online evidence (``domain.learning.Evidence``, decayed to
``now_s``) of the customer's segment when that segment has answered at least
``segment_min_evidence`` times (decayed), else of the product over all customers, and forms the
Beta posterior ``posterior(evidence, propensity, starting_evidence)``:

- on an exploit channel the candidate is ranked by the posterior mean
  alpha / (alpha + beta); a product without evidence keeps the model's propensity (which is that
  mean), so with no evidence at all the ranking is exactly the model's;
- on a channel in ``explore_channels`` by one Thompson sample of the posterior (drawn with the
  request's seeded generator), with or without evidence: a product few customers have answered
  gets a wide posterior and is sometimes ranked up, so it gets answers.

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
from domain.learning import DAY_S, Evidence, decayed_to

#: Draws of the whole ranking behind one logged Thompson probability (standard error at most
#: 0.5 / sqrt(PROPENSITY_DRAWS) = 0.0625; see docs/LOOP.md for the cost and the error).
PROPENSITY_DRAWS = 64
#: Candidates whose score stays below the k-th best lower bound within this many standard
#: deviations of their posterior are left out of the draws (they almost never reach the top k).
PRUNE_SD = 6.0


def evidence_for(evidence: Mapping[str, Evidence], product_id: str, segment: str | None, now_s: float,
                 params: LoopParams) -> Evidence | None:
    """The evidence that informs one product for a customer of ``segment``, decayed to ``now_s``:
    the segment's (field ``<product>|<segment>``) when it holds at least
    ``segment_min_evidence`` decayed answers, else the product's (field ``<product>``), else None.
    (The reference; the step does the same through ``_Informed``, faster.)"""
    half_life = params.evidence_half_life_days
    if segment:
        in_segment = evidence.get(f"{product_id}|{segment}")
        if in_segment is not None:
            in_segment = decayed_to(in_segment, now_s, half_life)
            if in_segment.accepts + in_segment.others >= params.segment_min_evidence:
                return in_segment
    overall = evidence.get(product_id)
    return decayed_to(overall, now_s, half_life) if overall is not None else None


def _by_segment(evidence: Mapping[str, Evidence]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """segment ("" for all customers) -> product id -> (accepts, others, as_of_s): the evidence
    mapping split once per read of it (each read is a new mapping), not per request."""
    split: dict[str, dict[str, tuple[float, float, float]]] = {}
    for name, e in evidence.items():
        product_id, _, segment = name.partition("|")
        split.setdefault(segment, {})[product_id] = (e.accepts, e.others, e.as_of_s)
    return split


_SPLIT: Memo[dict[str, dict[str, tuple[float, float, float]]]] = Memo(max_entries=4)


class _Informed:
    """``evidence_for`` for one request: (accepts, others) decayed to ``now_s``, or None."""

    def __init__(self, evidence: Mapping[str, Evidence], segment: str | None, now_s: float,
                 params: LoopParams) -> None:
        split = _SPLIT.get((evidence,), (), lambda: _by_segment(evidence))
        self.overall = split.get("", {})
        self.in_segment = split.get(segment, {}) if segment else {}
        self.now_s, self.minimum = now_s, params.segment_min_evidence
        self.half_life_s = params.evidence_half_life_days * DAY_S
        self.factors: dict[float, float] = {}  # as_of_s -> decay to now (domain.learning's factor)

    def factor(self, as_of_s: float) -> float:
        f = self.factors.get(as_of_s)
        if f is None:
            elapsed_s = self.now_s - as_of_s
            f = self.factors[as_of_s] = 1.0 if elapsed_s <= 0 else 0.5 ** (elapsed_s / self.half_life_s)
        return f

    def __call__(self, product_id: str) -> tuple[float, float] | None:
        found = self.in_segment.get(product_id)
        if found is not None:
            f = self.factor(found[2])
            if (found[0] + found[1]) * f >= self.minimum:
                return found[0] * f, found[1] * f
        found = self.overall.get(product_id)
        if found is None:
            return None
        f = self.factor(found[2])
        return found[0] * f, found[1] * f


def _posterior(counts: tuple[float, float] | None, propensity: float, prior: float) -> tuple[float, float]:
    """``domain.learning.posterior`` of (accepts, others) already decayed (no Evidence made)."""
    p = min(max(propensity, 1e-6), 1.0 - 1e-6)
    if counts is None:
        return p * prior, (1.0 - p) * prior
    return p * prior + counts[0], (1.0 - p) * prior + counts[1]


def calibration(ctx: Context) -> None:
    params, evidence = ctx.loop, ctx.evidence
    explore = ctx.channel in params.explore_channels
    if not explore and not evidence:
        return  # nothing learned yet: the posterior mean is the model's propensity
    prior = params.starting_evidence
    informed = _Informed(evidence, ctx.state.vs_segment, ctx.now_s, params) if evidence else None
    weight = similar_weight(ctx.model, ctx.policy)
    if not explore:  # ``informed`` and ``_posterior`` inlined: this loop is on every request with evidence
        assert informed is not None
        in_segment, overall, minimum, factor = informed.in_segment, informed.overall, informed.minimum, informed.factor
        for pid, offer in ctx.candidates.items():
            found = in_segment.get(pid)
            if found is not None:
                f = factor(found[2])
                if (found[0] + found[1]) * f < minimum:
                    found = None
            if found is None:
                found = overall.get(pid)
                if found is None:
                    continue
                f = factor(found[2])
            propensity = offer.propensity
            p = 1e-6 if propensity < 1e-6 else (1.0 - 1e-6 if propensity > 1.0 - 1e-6 else propensity)
            value = (p * prior + found[0] * f) / (prior + (found[0] + found[1]) * f)  # alpha / (alpha + beta)
            if propensity > 0:
                offer.score *= value / propensity
            else:
                _rank_by(offer, value, weight)
            offer.calibrated = value
        return
    offers = list(ctx.candidates.values())
    if not offers:
        return
    shapes = [_posterior(informed(o.product.product_id) if informed else None, o.propensity, prior) for o in offers]
    alphas, betas = np.array(shapes).T
    samples = np.maximum(ctx.rng.beta(alphas, betas), 1e-300).tolist()
    for offer, shape, sample in zip(offers, shapes, samples):
        offer.posterior = shape
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
    puts it at its position. Every offer of ``pool`` carries ``posterior`` (alpha, beta) and
    ``calibrated`` (its sample); its score is the sample times a factor that does not depend on
    the sample (similar boost, value, channel fit, lever). The estimate is the share of
    ``draws`` samples of the whole pool that rank it there, at least 0.5 / ``draws`` (a shown
    offer has a positive probability)."""
    k = len(kept)
    if k == 0:
        return []
    alphas = np.array([o.posterior[0] for o in pool])  # type: ignore[index]
    betas = np.array([o.posterior[1] for o in pool])  # type: ignore[index]
    factors = np.array([o.score / o.calibrated if o.calibrated else 0.0 for o in pool])
    index = {id(o): i for i, o in enumerate(pool)}
    kept_at = [index[id(o)] for o in kept]
    total = alphas + betas
    if len(pool) > k:  # leave out who cannot reach the top k (within PRUNE_SD sd of its posterior)
        mean = alphas / total
        sd = np.sqrt(alphas * betas / (total * total * (total + 1.0)))
        high = factors * np.minimum(1.0, mean + PRUNE_SD * sd)
        low = factors * np.maximum(0.0, mean - PRUNE_SD * sd)
        kth_low = np.partition(low, len(pool) - k)[len(pool) - k]
        keep = high >= kth_low
        keep[kept_at] = True
        positions = np.flatnonzero(keep)
        alphas, betas, factors = alphas[positions], betas[positions], factors[positions]
        remap = {int(p): i for i, p in enumerate(positions)}
        kept_at = [remap[i] for i in kept_at]
    scores = rng.beta(alphas, betas, size=(draws, len(alphas))) * factors
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    counts = (top == np.array(kept_at)).sum(axis=0)
    return [max(float(c), 0.5) / draws for c in counts]
