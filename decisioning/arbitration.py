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

import math
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
    table = damped_weights(ctx.policy, ctx.catalog, ctx.channel, ctx.model, informed)
    log_median = math.log(median)
    for pid, offer in candidates.items():
        weight, lack = table[pid]
        # weight = value ** (exponent - lack) x fit x lever, so x median ** lack makes the value term
        # (value / median) ** (exponent x informed) once divided by median ** exponent (scale)
        offer.score = offer.score * weight * scale * (math.exp(lack * log_median) if lack else 1.0)


def damped_weights(policy: Policy, catalog: Catalog, channel: str, model: object,
                   informed: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Product id -> (``value ** (exponent - lack)`` x channel fit x lever, ``lack``), where
    ``lack = exponent x (1 - informed)`` is the part of the value exponent the product's
    propensity has not earned (a product the model has no score of, launched after it, counts
    as uninformed: the whole exponent). Once per policy, catalog, channel and model."""
    def compute() -> dict[str, tuple[float, float]]:
        exponent = policy.value_exponent
        out = {}
        for pid, (value, weight) in product_weights(policy, catalog, channel).items():
            lack = exponent * (1.0 - min(max(informed.get(pid, 0.0), 0.0), 1.0))
            out[pid] = (weight * value ** -lack if lack else weight, lack)
        return out
    return _DAMPED.get((policy, catalog, model), (channel,), compute)


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
_DAMPED: Memo[dict[str, tuple[float, float]]] = Memo(max_entries=64)
