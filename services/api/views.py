"""Response bodies built from a decision or a customer state: the offer list, the mobile slots,
the agent's profile view.

The offer bodies are plain data serialised once by orjson (``json_response``), not response
models: validating and dumping models cost more per request than the rest of the answer (see
docs/API.md, Performance); ``services.api.models`` describes the same shapes for the OpenAPI
document.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from fastapi.responses import Response

from decisioning import SERVICE_ACTIONS, Decision, talking_points
from decisioning.memo import Memo
from domain.catalog import Catalog, Product
from domain.features import VS_STRATEGIES, FeatureParams, age_at, flows_in_window, flows_window_start_s
from domain.state import CustomerState
from schemas.currencies import minor_unit_exponent
from schemas.events import OfferChannel
from services.api.models import (
    Behaviour,
    ContactOut,
    Money,
    ProfileNote,
    HoldingOut,
    IntentWeight,
    ProfileResponse,
    PurchaseOut,
    SpendCategory,
    Text,
    TransactionOut,
)

#: What the profile calls recent: a salary credit within 45 days, a large inflow within 30.
SALARY_RECENT_S = 45 * 86400
LARGE_INFLOW_RECENT_S = 30 * 86400
#: The days of the profile's money in and out totals.
FLOW_WINDOW_DAYS = 30

#: What each value x satisfaction class means (docs/FEATURES.md), (en, zh).
SEGMENT_LABELS: dict[str, tuple[str, str]] = {
    "A": ("High value, satisfied", "高价值、满意"),
    "B": ("High value, neutral", "高价值、满意度一般"),
    "C": ("High value, dissatisfied", "高价值、不满意"),
    "D": ("Mass, satisfied", "大众、满意"),
    "E": ("Mass, neutral", "大众、满意度一般"),
    "F": ("Mass, dissatisfied", "大众、不满意"),
    "G": ("Buys a lot, complains", "购买多、常投诉"),
}
NOT_ENOUGH_HISTORY = ("Not enough history: no value or satisfaction segment yet",
                      "历史数据不足：暂无价值与满意度分群")
#: Segment G whose complaints are all settled: there is no complaint to fix.
G_SETTLED_STRATEGY = ("Buys a lot and has complained often (no complaint open now): win back satisfaction "
                      "before selling.", "购买多且多次投诉（目前无未结投诉）：先挽回满意度，再谈销售。")
#: The customer's risk tolerance 1..5 (C1..C5); products carry their own scale, R1..R5.
RISK_TOLERANCE_NAMES: dict[int, tuple[str, str]] = {
    1: ("conservative", "保守型"), 2: ("cautious", "谨慎型"), 3: ("balanced", "稳健型"),
    4: ("growth", "积极型"), 5: ("aggressive", "激进型"),
}


#: What the engine does about what is not on record (docs/API.md), code -> (en, zh); the codes are
#: the eligibility rules' (``decisioning.eligibility``).
PROFILE_NOTES: dict[str, tuple[str, str]] = {
    "risk_unknown_conservative": (
        "Risk tolerance not assessed: only the lowest-risk (R1) products are offered until the customer completes "
        "the suitability assessment.",
        "未完成风险测评：在客户完成风险测评之前，只推荐最低风险（R1）的产品。"),
    "birth_year_unknown": (
        "Birth year not on record: products for particular age groups are not offered.",
        "无出生年份记录：不推荐有年龄限制的产品。"),
}


def json_response(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def offer_view(decision: Decision, decision_id: str, customer_id: str, channel: OfferChannel,
               model_version: str, currency: str = "CNY") -> dict[str, Any]:
    """The ``OfferResponse`` body: offers ranked from 1, with reasons, pitch and (call centre)
    talking points in English and Chinese (amounts in the base ``currency``), the service action, if
    any, and the customer's experiment ``arm`` (for the touchpoint's analytics; the agent screen
    does not show it)."""
    offers = []
    for position, offer in enumerate(decision.offers, start=1):
        head, tail = product_parts(offer.product, channel, currency)
        offers.append({
            **head, "rank": position, "score": round(offer.score, 6), "propensity": round(offer.propensity, 6),
            "reason_codes": offer.reason_codes, "reason": {"en": offer.reason_en, "zh": offer.reason_zh},
            "reason_facts": offer.reason_facts or {}, **tail,
        })
    action = SERVICE_ACTIONS.get(decision.service_action or "")
    return {"decision_id": decision_id, "customer_id": customer_id, "channel": channel.value,
            "model_version": model_version, "arm": decision.arm, "degraded": decision.degraded, "offers": offers,
            "service_action": {"code": decision.service_action, "en": action[0], "zh": action[1]} if action else None}


def catalog_status(catalog: Catalog, model: Any, refused: bool) -> dict[str, Any]:
    """What ``/readyz`` says about the catalog: the one served (``catalog_hash``, the first 12 hex
    of its sha256, and ``catalog_products``), whether the latest edit of its file was refused
    (``catalog_refused``: the catalog in force is an older one) and, when the serving model was
    trained for another catalog (kept serving across a change), that one (``model_catalog_hash``)."""
    served = catalog.content_hash()
    body: dict[str, Any] = {"catalog_hash": served[:12], "catalog_products": len(catalog), "catalog_refused": refused}
    trained_for = (getattr(model, "metadata", None) or {}).get("catalog_hash")
    if trained_for and trained_for != served:
        body["model_catalog_hash"] = str(trained_for)[:12]
    return body


def slots_view(offers: dict[str, Any]) -> dict[str, Any]:
    """The ``SlotsResponse`` body of a mobile ``OfferResponse`` body: one slot per offer, in rank
    order, with its creative and a title in both languages."""
    slots = [{"slot": o["rank"], "product_id": o["product_id"], "creative_id": o["creative_id"],
              "title": {"en": o["name"], "zh": o["name_zh"]}, "reason": o["reason"]} for o in offers["offers"]]
    return {"decision_id": offers["decision_id"], "customer_id": offers["customer_id"],
            "model_version": offers["model_version"], "arm": offers["arm"], "degraded": offers["degraded"],
            "slots": slots}


def product_parts(product: Product, channel: OfferChannel,
                  currency: str = "CNY") -> tuple[dict[str, Any], dict[str, Any]]:
    """The parts of an offer that depend only on the product, channel and base currency (names,
    pitch, talking points, creative), made once per such triple and shared by responses (read-only)."""
    def make() -> tuple[dict[str, Any], dict[str, Any]]:
        p = product
        head = {"product_id": p.product_id, "name": p.name, "name_zh": p.name_zh, "family": p.family}
        tail = {"pitch": {"en": p.pitch_en, "zh": p.pitch_zh},
                "talking_points": [{"en": en, "zh": zh} for en, zh in talking_points(p, currency=currency)]
                if channel is OfferChannel.CALL_CENTRE else [],
                "creative_id": f"mob-{p.product_id}-1" if channel is OfferChannel.MOBILE else None}
        return head, tail
    return _PRODUCT_PARTS.get((product,), (channel, currency), make)


_PRODUCT_PARTS: Memo[tuple[dict[str, Any], dict[str, Any]]] = Memo(max_entries=4096)


def profile_view(state: CustomerState, catalog: Catalog, params: FeatureParams, customer_id: str,
                 now_s: float) -> ProfileResponse:
    """What the agent screen shows about a customer at ``now_s`` (UTC epoch seconds): profile
    (no segment, tier or strategy for a customer without history), money in and out over the last
    30 UTC days (exact sums), behaviour decayed to now (the top four spend categories and hotline
    intents), holdings by product id, recent transactions and purchases, and the ten latest offer
    outcomes. Times are ISO 8601 in UTC; a product the catalog no longer has is named by its id."""
    spend = sorted(state.pos_spend.items(), key=lambda kv: -kv[1])[:4]
    intents = sorted(state.hotline_intents.items(), key=lambda kv: -kv[1])[:4]
    known = has_history(state)
    if not known:
        segment, label, strategy = None, NOT_ENOUGH_HISTORY, None
    else:
        segment, label = state.vs_segment, SEGMENT_LABELS.get(state.vs_segment, (state.vs_segment,) * 2)
        strategy = (G_SETTLED_STRATEGY if segment == "G" and not state.open_complaint
                    else VS_STRATEGIES.get(segment, ("", "")))
    inflow, outflow = flows_in_window(state, now_s, FLOW_WINDOW_DAYS)
    window_start_s = flows_window_start_s(now_s, FLOW_WINDOW_DAYS)
    counted_from_s = max(window_start_s, state.daily_flows_from_s)
    risk = RISK_TOLERANCE_NAMES.get(state.risk_tolerance or 0)

    def iso(at_s: float) -> str:
        return datetime.fromtimestamp(at_s, timezone.utc).isoformat()

    def names(pid: str) -> tuple[str, str]:
        product = catalog.get(pid) if pid in catalog else None
        return (product.name, product.name_zh) if product else (pid, pid)

    holdings = [HoldingOut(product_id=pid, name=names(pid)[0], name_zh=names(pid)[1], count=holding.count)
                for pid, holding in sorted(state.holdings.items())]
    transactions = [TransactionOut(at=iso(at_s), kind=kind, amount_minor=amount, channel=channel)
                    for at_s, kind, amount, channel in state.recent_transactions]
    purchases = [PurchaseOut(product_id=pid, name=names(pid)[0], name_zh=names(pid)[1], at=iso(at_s))
                 for pid, at_s in state.recent_purchases]
    contacts = [
        ContactOut(product_id=pid, last_outcome=record.last_outcome,
                   decline_reason=record.last_decline_reason if record.last_outcome == "declined" else None,
                   at=iso(record.last_outcome_at_s) if record.last_outcome_at_s else None)
        for pid, record in sorted(state.contacts.items(), key=lambda kv: -kv[1].last_outcome_at_s)[:10]
    ]
    notes = [] if not known else [
        ProfileNote(code=code, en=PROFILE_NOTES[code][0], zh=PROFILE_NOTES[code][1])
        for code, missing in (("risk_unknown_conservative", state.risk_tolerance is None),
                              ("birth_year_unknown", state.birth_year is None)) if missing]
    base = params.rates.base
    return ProfileResponse(
        customer_id=customer_id, known=known, age=age_at(state, now_s), income_band=state.income_band,
        currency=Money(code=base, minor_unit_exponent=minor_unit_exponent(base)), profile_notes=notes,
        risk_tolerance=state.risk_tolerance,
        risk_tolerance_label=Text(en=f"C{state.risk_tolerance} {risk[0]}", zh=f"C{state.risk_tolerance} {risk[1]}")
        if risk else None,
        employment=state.employment, value_tier=state.value_tier if known else None,
        vs_segment=segment, segment_label=Text(en=label[0], zh=label[1]),
        strategy=Text(en=strategy[0], zh=strategy[1]) if strategy else None,
        behaviour=Behaviour(
            balance_minor=state.balance_minor,
            inflow_30d_minor=inflow, outflow_30d_minor=outflow,
            flows_counted_from=iso(counted_from_s), flows_complete=counted_from_s <= window_start_s,
            salary_credit=now_s - state.last_salary_at_s < SALARY_RECENT_S,
            large_inflow_recent=now_s - state.last_large_inflow_at_s < LARGE_INFLOW_RECENT_S,
            large_inflow_min_minor=params.large_inflow_minor,
            top_spend_categories=[SpendCategory(category=c, amount_minor=int(a)) for c, a in spend],
            max_hotel_stars=state.max_hotel_stars,
            recent_hotline_intents=[IntentWeight(intent=i, weight=round(w, 3)) for i, w in intents],
            open_complaint=state.open_complaint,
            satisfaction=round(state.satisfaction, 3) if state.hotline_intents else None,
        ),
        holdings=holdings, recent_transactions=transactions, recent_purchases=purchases,
        contact_history=contacts,
    )


def has_history(state: CustomerState) -> bool:
    """The bank knows something of the customer: a deposit, card payment, hotline call, purchase
    or profile was folded in (offer outcomes alone say nothing about the customer)."""
    return bool(state.last_balance_at_s or state.card_use or state.pos_spend or state.hotline_intents
                or state.purchases or state.profile_at_s)
