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
from decisioning.scoring import similar_weight
from domain.learning import Evidence, decayed_to, posterior

#: Draws of the whole ranking behind one logged Thompson probability (standard error at most
#: 0.5 / sqrt(PROPENSITY_DRAWS) = 0.044; see docs/LOOP.md).
PROPENSITY_DRAWS = 128
#: Candidates whose score stays below the k-th best lower bound within this many standard
#: deviations of their posterior are left out of the draws (they almost never reach the top k).
PRUNE_SD = 6.0


def evidence_for(evidence: Mapping[str, Evidence], product_id: str, segment: str | None, now_s: float,
                 params: LoopParams) -> Evidence | None:
    """The evidence that informs one product for a customer of ``segment``, decayed to ``now_s``:
    the segment's (field ``<product>|<segment>``) when it holds at least
    ``segment_min_evidence`` decayed answers, else the product's (field ``<product>``), else None."""
    half_life = params.evidence_half_life_days
    if segment:
        in_segment = evidence.get(f"{product_id}|{segment}")
        if in_segment is not None:
            in_segment = decayed_to(in_segment, now_s, half_life)
            if in_segment.accepts + in_segment.others >= params.segment_min_evidence:
                return in_segment
    overall = evidence.get(product_id)
    return decayed_to(overall, now_s, half_life) if overall is not None else None


def calibration(ctx: Context) -> None:
    params, evidence = ctx.loop, ctx.evidence
    explore = ctx.channel in params.explore_channels
    if not explore and not evidence:
        return  # nothing learned yet: the posterior mean is the model's propensity
    segment, now_s, prior = ctx.state.vs_segment, ctx.now_s, params.starting_evidence
    weight = similar_weight(ctx.model, ctx.policy)
    if not explore:
        for pid, offer in ctx.candidates.items():
            found = evidence_for(evidence, pid, segment, now_s, params) if evidence else None
            if found is not None:
                alpha, beta = posterior(found, offer.propensity, prior)
                _rank_by(offer, alpha / (alpha + beta), weight)
        return
    offers = list(ctx.candidates.values())
    if not offers:
        return
    shapes = [posterior(found if (found := evidence_for(evidence, o.product.product_id, segment, now_s, params))
                        is not None else _NONE, o.propensity, prior) for o in offers] if evidence else \
        [posterior(_NONE, o.propensity, prior) for o in offers]
    alphas, betas = np.array(shapes).T
    samples = np.maximum(ctx.rng.beta(alphas, betas), 1e-300).tolist()
    for offer, shape, sample in zip(offers, shapes, samples):
        offer.posterior = shape
        _rank_by(offer, sample, weight)


_NONE = Evidence()


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
