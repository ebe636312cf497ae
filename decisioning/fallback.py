"""Offers without a personal ranking: the degraded fallback and the cold start.

``fallback``: the customer's state or the model is unavailable. Low-risk (R1-R2) products that suit
every value tier, marked ``degraded``; the reason is the product's own pitch (nothing about the
customer, whom the service cannot see).

``cold_start``: the state was read and the bank knows nothing about the customer (no event folded
in, no profile: ``knows_nothing``). No personal claim can be true, so no ranking by the model
either: the R1, non-credit products of ``SAFE_FALLBACK`` that pass the eligibility rules for what
is known (channel, no age, no assets, no risk tolerance, the default tier), in that order,
with reason code ``cold_start`` and a sentence that says exactly that (``reasons.COLD_START``).

Both draw on ``safe_products(catalog)``: the products of ``SAFE_FALLBACK`` the catalog has, in
that order; a bank's own catalog (``NBO_CATALOG__PATH``) with none of them gives its R1 products
outside credit that fit every value tier, in catalog order.
"""

from __future__ import annotations

from domain.catalog import VALUE_TIERS, Catalog, Product
from domain.state import CustomerState
from decisioning.context import Decision, Offer
from decisioning.memo import Memo
from decisioning.eligibility import static_rule
from decisioning.reasons import COLD_START, CREDIT_FAMILIES

#: Products that suit nearly everyone, in the order they are offered.
SAFE_FALLBACK = ("mobile_banking", "time_deposit_1y", "money_market_fund", "utility_autopay", "debit_card")


def safe_products(catalog: Catalog) -> tuple[Product, ...]:
    """The products the fallback and the cold start draw on, in the order they are offered (see
    the module docstring). Made once per catalog."""
    def compute() -> tuple[Product, ...]:
        named = tuple(catalog.get(pid) for pid in SAFE_FALLBACK if pid in catalog)
        if named:
            return named
        every_tier = frozenset(VALUE_TIERS)
        return tuple(p for p in catalog.products
                     if p.risk_level == 1 and p.family not in CREDIT_FAMILIES and p.value_tiers >= every_tier)
    return _SAFE.get((catalog,), (), compute)


_SAFE: Memo[tuple[Product, ...]] = Memo(max_entries=64)


def fallback(catalog: Catalog, channel: str, limit: int) -> Decision:
    offers = []
    for product in safe_products(catalog):
        if channel in product.channels and product.risk_level <= 2:
            offers.append(Offer(product, 0.0, 0.0, 0.0, None, ["fallback_safe_offer"],
                                product.pitch_en, product.pitch_zh, {}))
    return Decision(offers[:limit], ["fallback"], degraded=True)


#: What offer decisions alone write into a state (the closed loop's record of what was shown, and
#: the fold's counters): a customer with nothing else on record is still one the bank knows
#: nothing about.
_DECISIONS_ONLY = ("customer_id", "events_applied", "as_of_s", "touches", "bought", "loop_due_s",
                   "value_tier", "vs_segment")  # the segments, derived from nothing but defaults then
_EMPTY = {k: v for k, v in CustomerState("").to_dict().items() if k not in _DECISIONS_ONLY}


def knows_nothing(state: CustomerState) -> bool:
    """True when ``state`` holds nothing but defaults (no profile, balance, holdings, behaviour
    or contact history) beyond the record of offers shown to the customer."""
    if state.birth_year is not None or state.holdings or state.tokens or state.contacts:
        return False
    data = {k: v for k, v in state.to_dict().items() if k not in _DECISIONS_ONLY}
    return data == _EMPTY


def cold_start(state: CustomerState, catalog: Catalog, channel: str, limit: int) -> Decision:
    """The cold-start offers for a customer the bank knows nothing about (``knows_nothing``)."""
    offers, excluded = [], {}
    for product in safe_products(catalog):
        pid = product.product_id
        # No age band check: the cold-start products are meant for nearly every age.
        rule = static_rule(product, channel, None, 0, state.risk_tolerance, state.value_tier)
        if rule is None and (product.risk_level > 1 or product.family in CREDIT_FAMILIES):
            rule = "cold_start_low_risk_only"
        if rule is None:
            offers.append(Offer(product, 0.0, 0.0, 0.0, None, ["cold_start"], COLD_START[0], COLD_START[1],
                                {"behaviour_events": 0, "profile_known": False}))
        else:
            excluded[pid] = rule
    return Decision(offers[:limit], ["cold_start"], excluded=excluded)
