"""Arbitration: priority = score (propensity, boosted) x value x channel fit x business lever.

Value is the product's annual value to the bank relative to the median candidate, damped by
``policy.value_exponent`` (0 ignores value, 1 ranks by expected revenue)."""

from __future__ import annotations

import statistics

from recommender.decisioning.context import Context


def arbitration(ctx: Context) -> None:
    if not ctx.candidates:
        return
    policy = ctx.policy
    median = float(statistics.median(max(o.product.annual_value_minor, 1) for o in ctx.candidates.values()))
    for offer in ctx.candidates.values():
        p = offer.product
        value = (max(p.annual_value_minor, 1) / median) ** policy.value_exponent
        offer.score = offer.score * value * policy.fit(ctx.channel, p.family) * policy.lever(p)
