"""Fallback: safe, broadly suitable offers when the customer's state or the model is unavailable.

Only low-risk (R1-R2), no-minimum products that suit every value tier, marked ``degraded``."""

from __future__ import annotations

from domain.catalog import Catalog
from decisioning.context import Decision, Offer

#: Products that suit nearly everyone, in the order they are offered.
SAFE_FALLBACK = ("mobile_banking", "time_deposit_1y", "money_market_fund", "utility_autopay", "debit_card")


def fallback(catalog: Catalog, channel: str, limit: int) -> Decision:
    offers = []
    for pid in SAFE_FALLBACK:
        if pid not in catalog:
            continue
        product = catalog.get(pid)
        if channel in product.channels and product.risk_level <= 2:
            offers.append(Offer(product, 0.0, 0.0, 0.0, None, ["fallback_safe_offer"],
                                product.pitch_en, product.pitch_zh))
    return Decision(offers[:limit], ["fallback"], degraded=True)
