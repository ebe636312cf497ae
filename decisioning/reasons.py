"""Reasons: every offer carries reason codes and one sentence, in English and Chinese, that the
teller or agent can say; plus talking points for the call centre and the service-action text.

The reason is, in order of preference: the purchase that triggered "similar after purchase";
the strongest behaviour token that explains the product's family (a loan inquiry on the hotline,
a large inflow, five-star hotel spend, ...); else "customers like you". No amounts or personal
data appear in the text, only the customer's own recent behaviour in general words.
"""

from __future__ import annotations

from typing import Mapping

from domain.catalog import Catalog, Product
from decisioning.context import Context, Offer

#: What to do instead of selling; code -> (en, zh).
SERVICE_ACTIONS: dict[str, tuple[str, str]] = {
    "resolve_complaint": (
        "Open complaint: do not sell. Apologise, resolve the complaint or hand over to complaint handling.",
        "客户有未解决的投诉：请勿营销。先致歉并解决投诉，或转交投诉处理。",
    ),
}


def reasons(ctx: Context) -> None:
    for offer in ctx.candidates.values():
        offer.reason_codes, offer.reason_en, offer.reason_zh = explain(offer, ctx.tokens, ctx.catalog)


def talking_points(product: Product) -> list[tuple[str, str]]:
    """Lines for the agent, (en, zh): the pitch, and a risk reminder for R3 and above."""
    points = [(product.pitch_en, product.pitch_zh)]
    if product.risk_level >= 3:
        points.append((f"Risk level R{product.risk_level}: confirm the customer understands the risk.",
                       f"风险等级R{product.risk_level}：请确认客户了解产品风险。"))
    if product.min_assets_minor > 0:
        points.append((f"Minimum {product.min_assets_minor // 100:,} CNY; the customer qualifies.",
                       f"起购金额{product.min_assets_minor // 100:,}元，客户符合条件。"))
    return points


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
    """Reason codes and one sentence (en, zh) a teller or agent can say. The pitch is not repeated
    here: the offer carries it separately."""
    p = offer.product
    if offer.because_of and offer.similar_boost > 0:
        bought = catalog.get(offer.because_of) if offer.because_of in catalog else None
        name_en = in_sentence(bought.name) if bought else offer.because_of
        name_zh = bought.name_zh if bought else offer.because_of
        return (["similar_after_purchase"],
                f"You recently opened our {name_en}; customers who did often add our {in_sentence(p.name)}.",
                f"您最近开通了{name_zh}，同样的客户常会再选择{p.name_zh}。")
    best = None
    for token, families, code, en, zh in _TOKEN_REASONS:
        weight = tokens.get(token, 0.0)
        if p.family in families and weight > 0 and (best is None or weight > best[0]):
            best = (weight, code, en, zh)
    if best:
        return [best[1]], best[2], best[3]
    return (["popular_for_customers_like_you"],
            f"Customers like you often choose our {in_sentence(p.name)}.",
            f"与您情况相似的客户常选择{p.name_zh}。")


def in_sentence(name: str) -> str:
    """A product name as it reads inside a sentence: "Mobile banking" -> "mobile banking";
    names that start with an acronym or a figure ("QDII global fund", "1-year ...") stay."""
    return name[0].lower() + name[1:] if len(name) > 1 and name[1].islower() else name
