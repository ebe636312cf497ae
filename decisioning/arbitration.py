"""Arbitration: priority = score (propensity, boosted) x value x channel fit x business lever.

Value is the product's annual value to the bank relative to the median candidate, damped by
``policy.value_exponent`` (0 ignores value, 1 ranks by expected revenue)."""

from __future__ import annotations

from domain.catalog import Catalog
from decisioning.context import Context
from decisioning.memo import Memo
from decisioning.policy import Policy


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
    for pid, offer in candidates.items():
        offer.score = offer.score * weights[pid][1] * scale


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
