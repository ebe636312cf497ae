"""Decisioning: which products may be offered, in what order, and what to say.

``decide(state, model, catalog, policy, channel, now_s, limit) -> Decision`` runs an ordered,
named chain (``policy.chain``), each step a pure function of a shared ``Context``:

1. ``eligibility``   — not held (unless multi-hold), age, minimum assets, risk level not above the
                       customer's tolerance, tier fit, channel allowed;
2. ``scoring``       — the model's propensity for each product;
3. ``similar_boost`` — plus the fading "similar after purchase" boost;
4. ``contact_policy``— reason-dependent cool-down after a decline, daily caps per channel, no
                       selling during an open complaint or for segment G (a service action instead);
5. ``arbitration``   — priority = propensity x value x channel fit x business lever;
6. ``reasons``       — reason codes and a sentence in English and Chinese;
7. ``fallback``      — broadly suitable, low-risk offers marked ``degraded`` when there is no state.

Time comes in as ``now_s`` (UTC epoch seconds); nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from recommender.catalog import VALUE_TIERS, Catalog, Product
from recommender.features import DAY_S, age_at, assets_minor, holdings_weights, tokens_at
from recommender.model import RankingModel
from recommender.state import CustomerState

#: Cool-down after a decline, in days, by reason; ``None`` means the product's own cool-down.
DECLINE_COOLDOWN_DAYS: dict[str, int | None] = {
    "not_interested": None, "has_it_elsewhere": 180, "too_expensive": 60, "bad_timing": 7,
    "needs_advice": 3, "complaint": 90, "other": 30,
}
#: Products offered to one customer per channel per day, at most.
DAILY_CAPS: dict[str, int] = {"teller": 2, "call_centre": 3, "mobile": 6}
#: How well a channel suits a family (1 = neutral); a teller is good at deposits, mobile at funds.
CHANNEL_FIT: dict[str, dict[str, float]] = {
    "teller": {"deposit": 1.2, "time_deposit": 1.3, "cd": 1.3, "service": 1.1, "loan": 0.8},
    "call_centre": {"insurance": 1.2, "wealth": 1.1, "loan": 1.1, "credit_card": 1.1},
    "mobile": {"fund": 1.3, "gold": 1.2, "service": 1.2, "cd": 0.9, "loan": 0.9},
}
#: Products that suit nearly everyone, for the degraded fallback.
SAFE_FALLBACK = ("mobile_banking", "time_deposit_1y", "money_market_fund", "utility_autopay", "debit_card")


@dataclass(frozen=True)
class Policy:
    """Marketing's knobs; loaded from configuration, changed without code."""

    chain: tuple[str, ...] = ("eligibility", "scoring", "similar_boost", "contact_policy",
                              "arbitration", "reasons")
    levers: Mapping[str, float] = field(default_factory=dict)  # product id or family -> multiplier
    similar_weight: float = 1.0
    value_exponent: float = 0.25
    daily_caps: Mapping[str, int] = field(default_factory=lambda: dict(DAILY_CAPS))


@dataclass
class Offer:
    product: Product
    propensity: float
    similar_boost: float
    score: float
    because_of: str | None
    reason_codes: list[str]
    reason_en: str = ""
    reason_zh: str = ""


@dataclass
class Decision:
    offers: list[Offer]
    rules_applied: list[str]
    degraded: bool = False
    service_action: str | None = None  # e.g. "resolve_complaint"
    excluded: dict[str, str] = field(default_factory=dict)  # product id -> rule that excluded it


@dataclass
class Context:
    state: CustomerState
    model: RankingModel
    catalog: Catalog
    policy: Policy
    channel: str
    now_s: float
    candidates: dict[str, Offer] = field(default_factory=dict)
    decision: Decision = field(default_factory=lambda: Decision([], []))


def _exclude(ctx: Context, product_id: str, rule: str) -> None:
    ctx.candidates.pop(product_id, None)
    ctx.decision.excluded[product_id] = rule


def eligibility(ctx: Context) -> None:
    state, now_s = ctx.state, ctx.now_s
    age = age_at(state, now_s)
    assets = assets_minor(state)
    tolerance = state.risk_tolerance if state.risk_tolerance is not None else 2
    tier = state.value_tier
    for product in ctx.catalog.products:
        pid = product.product_id
        if pid in state.holdings and not product.multi_hold:
            ctx.decision.excluded[pid] = "already_held"
        elif ctx.channel not in product.channels:
            ctx.decision.excluded[pid] = "channel_not_allowed"
        elif age is not None and not product.fits_age(age):
            ctx.decision.excluded[pid] = "age"
        elif assets < product.min_assets_minor:
            ctx.decision.excluded[pid] = "min_assets"
        elif product.risk_level > tolerance:
            ctx.decision.excluded[pid] = "risk_above_tolerance"
        elif tier not in product.value_tiers:
            ctx.decision.excluded[pid] = "tier_fit"
        else:
            ctx.candidates[pid] = Offer(product, 0.0, 0.0, 0.0, None, [])


def scoring(ctx: Context) -> None:
    state = ctx.state
    scores = ctx.model.score(
        holdings_weights(state), tokens_at(state, ctx.now_s),
        [(p, float(t)) for p, t in state.recent_purchases], ctx.now_s, state.value_tier,
    )
    index = {pid: i for i, pid in enumerate(scores.product_ids)}
    for pid, offer in ctx.candidates.items():
        i = index.get(pid)
        if i is None:
            continue
        offer.propensity = float(scores.propensity[i])
        offer.similar_boost = float(scores.similar_boost[i])
        offer.because_of = scores.because_of[i]
        offer.score = offer.propensity


def similar_boost(ctx: Context) -> None:
    for offer in ctx.candidates.values():
        if offer.similar_boost > 0:
            offer.score = offer.propensity * (1.0 + ctx.policy.similar_weight * offer.similar_boost)


def cooldown_days(product: Product, reason: str | None) -> int:
    days = DECLINE_COOLDOWN_DAYS.get(reason or "other", 30)
    return product.cooldown_days if days is None else days


def contact_policy(ctx: Context) -> None:
    state = ctx.state
    if state.open_complaint or state.vs_segment == "G":
        ctx.decision.service_action = "resolve_complaint"
        for pid in list(ctx.candidates):
            _exclude(ctx, pid, "open_complaint" if state.open_complaint else "segment_g_fix_first")
        return
    for pid in list(ctx.candidates):
        record = state.contacts.get(pid)
        if record and record.last_declined_at_s:
            days = cooldown_days(ctx.candidates[pid].product, record.last_decline_reason)
            if ctx.now_s - record.last_declined_at_s < days * DAY_S:
                _exclude(ctx, pid, f"cooldown_{record.last_decline_reason}")
    day = _day(ctx.now_s)
    shown_today = state.daily_contacts.get(f"{day}|{ctx.channel}", 0)
    cap = ctx.policy.daily_caps.get(ctx.channel, 3)
    if shown_today >= cap:
        for pid in list(ctx.candidates):
            _exclude(ctx, pid, "daily_cap")


def arbitration(ctx: Context) -> None:
    values = [o.product.annual_value_minor for o in ctx.candidates.values()] or [1]
    median = float(np.median(values)) or 1.0
    fit = CHANNEL_FIT.get(ctx.channel, {})
    levers = ctx.policy.levers
    for offer in ctx.candidates.values():
        p = offer.product
        value = (max(p.annual_value_minor, 1) / median) ** ctx.policy.value_exponent
        lever = levers.get(p.product_id, levers.get(p.family, 1.0))
        offer.score = offer.score * value * fit.get(p.family, 1.0) * lever


def reasons(ctx: Context) -> None:
    tokens = tokens_at(ctx.state, ctx.now_s)
    for offer in ctx.candidates.values():
        offer.reason_codes, offer.reason_en, offer.reason_zh = explain(offer, tokens, ctx.catalog)


STEPS: dict[str, Callable[[Context], None]] = {
    "eligibility": eligibility, "scoring": scoring, "similar_boost": similar_boost,
    "contact_policy": contact_policy, "arbitration": arbitration, "reasons": reasons,
}

# Behaviour tokens that explain a family, with the sentence to say.
_TOKEN_REASONS: tuple[tuple[str, tuple[str, ...], str, str, str], ...] = (
    ("hotline:loan_inquiry", ("loan",), "asked_about_loans",
     "You asked us about a loan recently; this one fits what you described.", "您最近咨询过贷款，这款产品符合您的需求。"),
    ("hotline:mortgage_inquiry", ("loan", "insurance"), "asked_about_mortgage",
     "You asked about a mortgage; customers buying a home often choose this.", "您咨询过房贷，购房客户常选择这款产品。"),
    ("hotline:wealth_inquiry", ("wealth", "fund", "cd"), "asked_about_wealth",
     "You asked about wealth management; this matches your risk level.", "您咨询过理财，这款产品与您的风险等级相符。"),
    ("hotline:fund_inquiry", ("fund",), "asked_about_funds",
     "You asked about funds; this one suits your risk level.", "您咨询过基金，这款产品适合您的风险等级。"),
    ("hotline:insurance_inquiry", ("insurance",), "asked_about_insurance",
     "You asked about insurance; this plan covers what most families need.", "您咨询过保险，这份保障满足多数家庭的需要。"),
    ("dep:large_inflow", ("time_deposit", "cd", "wealth", "fund", "gold"), "large_inflow",
     "A large sum arrived in your account; it could earn more here.", "您账户近期有大额资金入账，放在这里收益更好。"),
    ("dep:salary", ("credit_card", "fund", "service"), "salary_credit",
     "Your salary is paid here; this makes the most of it.", "您的工资由我行代发，这款产品能让工资更好地为您服务。"),
    ("dep:pension", ("time_deposit", "insurance", "service"), "pension_credit",
     "Your pension is paid here; this keeps it safe and growing.", "您的养老金由我行代发，这款产品稳健增值。"),
    ("pos:hotel_5star", ("credit_card", "wealth"), "premium_spend",
     "You often stay at five-star hotels; this card's benefits suit you.", "您常入住五星级酒店，这张卡的权益很适合您。"),
    ("pos:travel", ("credit_card", "insurance"), "travel_spend",
     "You travel often; this gives you more on every trip.", "您经常出行，这款产品让每次旅行更超值。"),
    ("pos:abroad", ("credit_card", "fund"), "spends_abroad",
     "You pay abroad often; this saves you fees.", "您常在境外消费，这款产品可以节省手续费。"),
)


def explain(offer: Offer, tokens: Mapping[str, float], catalog: Catalog) -> tuple[list[str], str, str]:
    """Reason codes and one sentence (en, zh) a teller or agent can say."""
    p = offer.product
    if offer.because_of and offer.similar_boost > 0:
        bought = catalog.get(offer.because_of) if offer.because_of in catalog else None
        name_en = bought.name if bought else offer.because_of
        name_zh = bought.name_zh if bought else offer.because_of
        return (["similar_after_purchase"],
                f"You recently opened the {name_en}; customers who did often add the {p.name}.",
                f"您最近开通了{name_zh}，同样的客户常会再选择{p.name_zh}。")
    best = None
    for token, families, code, en, zh in _TOKEN_REASONS:
        weight = tokens.get(token, 0.0)
        if p.family in families and weight > 0 and (best is None or weight > best[0]):
            best = (weight, code, en, zh)
    if best:
        return [best[1]], best[2], best[3]
    return (["popular_for_customers_like_you"],
            f"Customers like you often choose the {p.name}. {p.pitch_en}",
            f"与您情况相似的客户常选择{p.name_zh}。{p.pitch_zh}")


def _day(at_s: float) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(at_s))


def decide(state: CustomerState, model: RankingModel, catalog: Catalog, policy: Policy,
           channel: str, now_s: float, limit: int) -> Decision:
    """Run the chain and return at most ``limit`` offers, best first."""
    ctx = Context(state, model, catalog, policy, channel, now_s)
    for name in policy.chain:
        STEPS[name](ctx)
        ctx.decision.rules_applied.append(name)
    ranked = sorted(ctx.candidates.values(), key=lambda o: (-o.score, o.product.product_id))
    ctx.decision.offers = ranked[:limit]
    return ctx.decision


def fallback(catalog: Catalog, channel: str, limit: int) -> Decision:
    """Safe, broadly suitable offers for when the customer's state or the model is unavailable."""
    offers = []
    for pid in SAFE_FALLBACK:
        if pid in catalog and channel in catalog.get(pid).channels:
            product = catalog.get(pid)
            offers.append(Offer(product, 0.0, 0.0, 0.0, None, ["fallback_safe_offer"],
                                f"{product.pitch_en}", f"{product.pitch_zh}"))
    return Decision(offers[:limit], ["fallback"], degraded=True)


def tier_rank(tier: str) -> int:
    return VALUE_TIERS.index(tier)
