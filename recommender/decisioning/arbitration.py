"""Arbitration: priority = score (propensity, boosted) x value x channel fit x business lever.

Value is the product's annual value to the bank relative to the median candidate, damped by
``policy.value_exponent`` (0 ignores value, 1 ranks by expected revenue)."""

from __future__ import annotations

from recommender.decisioning.context import Context


def arbitration(ctx: Context) -> None:
    if not ctx.candidates:
        return
    policy = ctx.policy
    values = sorted(max(o.product.annual_value_minor, 1) for o in ctx.candidates.values())
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    exponent = policy.value_exponent
    fit = policy.channel_fit.get(ctx.channel, {})
    levers = policy.levers
    for offer in ctx.candidates.values():
        p = offer.product
        value = (max(p.annual_value_minor, 1) / median) ** exponent
        lever = levers.get(p.product_id, levers.get(p.family, 1.0))
        offer.score = offer.score * value * fit.get(p.family, 1.0) * lever
