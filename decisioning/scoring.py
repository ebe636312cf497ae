"""Scoring: the model's live propensity for each candidate (the customer's current state folded
in on this request), then the fading "similar after purchase" boost, weighted by the model's own
tuned ``similar_weight`` (what ``nbo tune`` / ``nbo train --params`` chose) unless the policy pins
one (``Policy.similar_weight_override``)."""

from __future__ import annotations

from functools import lru_cache

from decisioning.context import Context
from decisioning.policy import Policy
from decisioning.scores import RankingModel
from domain.features import holdings_weights


def scoring(ctx: Context) -> None:
    state = ctx.state
    scores = ctx.model.score(
        holdings_weights(state), ctx.tokens,
        [(p, float(t)) for p, t in state.recent_purchases], ctx.now_s, state.value_tier,
    )
    index = _positions(scores.product_ids)
    propensity, boost = scores.propensity.tolist(), scores.similar_boost.tolist()  # Python floats, once
    because_of = scores.because_of
    for pid, offer in ctx.candidates.items():
        i = index.get(pid)
        if i is None:  # a product the model was not trained on: no evidence, lowest priority
            continue
        offer.propensity = offer.score = propensity[i]
        offer.similar_boost = boost[i]
        offer.because_of = because_of[i]


@lru_cache(maxsize=8)
def _positions(product_ids: tuple[str, ...]) -> dict[str, int]:
    """Product id -> position in a model's score arrays (a model has one order; made once)."""
    return {pid: i for i, pid in enumerate(product_ids)}


def similar_weight(model: RankingModel, policy: Policy) -> float:
    """The weight of "similar after purchase" that serves: the model's tuned one, unless
    marketing pinned one in the policy file (``similar_weight_override``, off by default)."""
    override = policy.similar_weight_override
    return model.similar_weight if override is None else override


def similar_boost(ctx: Context) -> None:
    """score = propensity x (1 + similar_weight x boost), with ``similar_weight(model, policy)``."""
    weight = similar_weight(ctx.model, ctx.policy)
    for offer in ctx.candidates.values():
        if offer.similar_boost > 0:
            offer.score = offer.propensity * (1.0 + weight * offer.similar_boost)
