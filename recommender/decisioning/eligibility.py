"""Eligibility and suitability: which products may be offered to this customer on this channel.

A product is excluded (with the rule's name) when it is already held and cannot be held twice,
not sold on the channel, outside its age band, above the customer's assets, above the customer's
risk tolerance (R1..R5 vs 1..5; unknown tolerance counts as 2, cautious), or not for the
customer's value tier (no premium product to a mass-market customer, no basic one to a wealthy one).
"""

from __future__ import annotations

from recommender.decisioning.context import Context, Offer
from recommender.features import age_at, assets_minor

#: Risk tolerance assumed when the customer has none on record (cautious).
UNKNOWN_RISK_TOLERANCE = 2


def eligibility(ctx: Context) -> None:
    state = ctx.state
    age = age_at(state, ctx.now_s)
    assets = assets_minor(state)
    tolerance = state.risk_tolerance if state.risk_tolerance is not None else UNKNOWN_RISK_TOLERANCE
    tier = state.value_tier
    excluded = ctx.decision.excluded
    for product in ctx.catalog.products:
        pid = product.product_id
        if pid in state.holdings and not product.multi_hold:
            excluded[pid] = "already_held"
        elif ctx.channel not in product.channels:
            excluded[pid] = "channel_not_allowed"
        elif age is not None and not product.fits_age(age):
            excluded[pid] = "age"
        elif assets < product.min_assets_minor:
            excluded[pid] = "min_assets"
        elif product.risk_level > tolerance:
            excluded[pid] = "risk_above_tolerance"
        elif tier not in product.value_tiers:
            excluded[pid] = "tier_fit"
        else:
            ctx.candidates[pid] = Offer(product, 0.0, 0.0, 0.0, None, [])
