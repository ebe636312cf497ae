"""Arbitration: priority = score (propensity, boosted) x value x channel fit x business lever.

Value is the product's annual value to the bank relative to the median candidate, damped by
``policy.value_exponent`` (0 ignores value, 1 ranks by expected revenue).

Value only weighs as much as the propensity it multiplies is informed. A propensity the model
knows little about (``RankingModel.informed``: few labelled purchases of the product, so it is
mostly the product's popularity) does not say who wants the product, and multiplied by value it
would hand every customer the same high-value products. So the value term of a candidate with
informed weight ``i`` in [0, 1] is ``(value / median) ** (value_exponent * i)``: as configured
when the model is informed (``i = 1``, and for a model that does not say), and neutral (1: rank
by propensity x channel fit x lever) when it knows nothing. Channel fit and levers are
marketing's decisions and are never damped."""

from __future__ import annotations

from typing import Mapping

from domain.catalog import Catalog
from decisioning.context import Context
from decisioning.memo import Memo
from decisioning.policy import Policy
from decisioning.scores import informed_weights


def arbitration(ctx: Context) -> None:
    candidates = ctx.candidates
    if not candidates:
        return
    exponent = ctx.policy.value_exponent
    weights = product_weights(ctx.policy, ctx.catalog, ctx.channel)
    values = sorted([weights[pid][0] for pid in candidates])
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    scale = 1.0 / median ** exponent
    informed = informed_weights(ctx.model)
    if informed is None or exponent == 0:
        for pid, offer in candidates.items():
            offer.score = offer.score * weights[pid][1] * scale
        return
    for pid, offer in candidates.items():
        value, weight = weights[pid]
        offer.score = offer.score * weight * scale * uninformed_value_damping(value, median, exponent,
                                                                              informed, pid)


def uninformed_value_damping(value: float, median: float, exponent: float, informed: Mapping[str, float],
                             product_id: str) -> float:
    """``(median / value) ** (exponent * (1 - i))``: what turns the configured value term
    ``(value / median) ** exponent`` into ``(value / median) ** (exponent * i)`` for a product whose
    propensity is informed ``i`` (a product the model has no score of, launched after it, counts
    as uninformed: 0)."""
    lack = 1.0 - informed.get(product_id, 0.0)
    return (median / value) ** (exponent * lack) if lack > 0 else 1.0


def product_weights(policy: Policy, catalog: Catalog, channel: str) -> dict[str, tuple[int, float]]:
    """Product id -> (annual value, at least 1; value ** exponent x channel fit x lever): what does
    not depend on the customer, computed once per policy, catalog and channel."""
    def compute() -> dict[str, tuple[int, float]]:
        fit = policy.channel_fit.get(channel, {})
        weights = {}
        for p in catalog.products:
            value = max(p.annual_value_minor, 1)
            weights[p.product_id] = (value, value ** policy.value_exponent * fit.get(p.family, 1.0) * policy.lever(p))
        return weights
    return _WEIGHTS.get((policy, catalog), (channel,), compute)


_WEIGHTS: Memo[dict[str, tuple[int, float]]] = Memo(max_entries=256)
