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
from domain.features import VS_STRATEGIES, FeatureParams, age_at, decayed
from domain.state import CustomerState
from schemas.events import OfferChannel
from services.api.models import (
    Behaviour,
    ContactOut,
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


def json_response(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def offer_view(decision: Decision, decision_id: str, customer_id: str, channel: OfferChannel,
               model_version: str) -> dict[str, Any]:
    """The ``OfferResponse`` body: offers ranked from 1, with reasons, pitch and (call centre)
    talking points in English and Chinese, and the service action, if any."""
    offers = []
    for position, offer in enumerate(decision.offers, start=1):
        head, tail = product_parts(offer.product, channel)
        offers.append({
            **head, "rank": position, "score": round(offer.score, 6), "propensity": round(offer.propensity, 6),
            "reason_codes": offer.reason_codes, "reason": {"en": offer.reason_en, "zh": offer.reason_zh}, **tail,
        })
    action = SERVICE_ACTIONS.get(decision.service_action or "")
    return {"decision_id": decision_id, "customer_id": customer_id, "channel": channel.value,
            "model_version": model_version, "degraded": decision.degraded, "offers": offers,
            "service_action": {"code": decision.service_action, "en": action[0], "zh": action[1]} if action else None}


def slots_view(offers: dict[str, Any]) -> dict[str, Any]:
    """The ``SlotsResponse`` body of a mobile ``OfferResponse`` body: one slot per offer, in rank
    order, with its creative and a title in both languages."""
    slots = [{"slot": o["rank"], "product_id": o["product_id"], "creative_id": o["creative_id"],
              "title": {"en": o["name"], "zh": o["name_zh"]}, "reason": o["reason"]} for o in offers["offers"]]
    return {"decision_id": offers["decision_id"], "customer_id": offers["customer_id"],
            "model_version": offers["model_version"], "degraded": offers["degraded"], "slots": slots}


def product_parts(product: Product, channel: OfferChannel) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parts of an offer that depend only on the product and channel (names, pitch, talking
    points, creative), made once per product and channel and shared by responses (read-only)."""
    def make() -> tuple[dict[str, Any], dict[str, Any]]:
        p = product
        head = {"product_id": p.product_id, "name": p.name, "name_zh": p.name_zh, "family": p.family}
        tail = {"pitch": {"en": p.pitch_en, "zh": p.pitch_zh},
                "talking_points": [{"en": en, "zh": zh} for en, zh in talking_points(p)]
                if channel is OfferChannel.CALL_CENTRE else [],
                "creative_id": f"mob-{p.product_id}-1" if channel is OfferChannel.MOBILE else None}
        return head, tail
    return _PRODUCT_PARTS.get((product,), (channel,), make)


_PRODUCT_PARTS: Memo[tuple[dict[str, Any], dict[str, Any]]] = Memo(max_entries=4096)


def profile_view(state: CustomerState, catalog: Catalog, params: FeatureParams, customer_id: str,
                 now_s: float) -> ProfileResponse:
    """What the agent screen shows about a customer at ``now_s`` (UTC epoch seconds): profile,
    behaviour decayed to now (the top four spend categories and hotline intents), holdings by
    product id, recent transactions and purchases, and the ten latest offer outcomes. Times are
    ISO 8601 in UTC; a product the catalog no longer has is named by its id."""
    half_life = params.inflow_half_life_days
    spend = sorted(state.pos_spend.items(), key=lambda kv: -kv[1])[:4]
    intents = sorted(state.hotline_intents.items(), key=lambda kv: -kv[1])[:4]
    strategy = VS_STRATEGIES.get(state.vs_segment, ("", ""))

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
    return ProfileResponse(
        customer_id=customer_id, known=state.events_applied > 0, age=age_at(state, now_s),
        risk_tolerance=state.risk_tolerance, employment=state.employment, value_tier=state.value_tier,
        vs_segment=state.vs_segment, strategy=Text(en=strategy[0], zh=strategy[1]),
        behaviour=Behaviour(
            balance_minor=state.balance_minor,
            inflow_30d_minor=int(decayed(state.inflow_minor, state.as_of_s, now_s, half_life)),
            outflow_30d_minor=int(decayed(state.outflow_minor, state.as_of_s, now_s, half_life)),
            salary_credit=now_s - state.last_salary_at_s < SALARY_RECENT_S,
            large_inflow_recent=now_s - state.last_large_inflow_at_s < LARGE_INFLOW_RECENT_S,
            top_spend_categories=[SpendCategory(category=c, amount_minor=int(a)) for c, a in spend],
            max_hotel_stars=state.max_hotel_stars,
            recent_hotline_intents=[IntentWeight(intent=i, weight=round(w, 3)) for i, w in intents],
            open_complaint=state.open_complaint, satisfaction=round(state.satisfaction, 3),
        ),
        holdings=holdings, recent_transactions=transactions, recent_purchases=purchases,
        contact_history=contacts,
    )
