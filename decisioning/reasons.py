"""Reasons: every offer carries reason codes, one sentence in English and Chinese that the teller
or agent reads aloud, and the facts that made it true; plus talking points for the call centre and
the service-action texts.

A reason is said only when it is true for this customer at the decision time. Each code declares
its condition over the customer's state and ``now_s`` (``STATE_CONDITIONS`` and the product-level
ones below), and each sentence names the products for which it is true (an annuity is not "more
on every trip"). The facts that satisfied the condition are recorded on the offer
(``Offer.reason_facts``) and shown by the API next to the sentence.

| code | condition at ``now_s`` (state fields) | products |
| --- | --- | --- |
| ``similar_after_purchase`` | the similar-after-purchase boost of this product is > 0 and weighted > 0, it moved the product into the list (``select``: not kept without it), ``because_of`` is a catalog product in ``recent_purchases`` bought 0-90 days ago | the boosted product |
| ``asked_about_loans`` | ``hotline_intents["loan_inquiry"]`` decayed to now >= 0.5 | loans |
| ``asked_about_mortgage`` | ``hotline_intents["mortgage_inquiry"]`` >= 0.5 | mortgage, home contents insurance |
| ``asked_about_wealth`` | ``hotline_intents["wealth_inquiry"]`` >= 0.5 | wealth products |
| ``asked_about_funds`` | ``hotline_intents["fund_inquiry"]`` >= 0.5 | funds |
| ``asked_about_insurance`` | ``hotline_intents["insurance_inquiry"]`` >= 0.5 | insurance |
| ``large_inflow`` | ``last_large_inflow_at_s`` (one credit >= ``FeatureParams.large_inflow_minor``, 50,000 CNY by default, not salary or pension) 0-30 days ago | deposits, CDs and R1-R2 wealth and funds |
| ``salary_credit`` | ``last_salary_at_s`` 0-45 days ago | time deposits, fund SIP, utility auto-pay, personal pension account |
| ``pension_credit`` | ``last_pension_at_s`` 0-45 days ago | time and notice deposits, CDs |
| ``premium_spend`` | token ``pos:hotel_5star`` decayed to now >= 2 (two or more card payments at five-star hotels) | platinum card (hotel privileges) |
| ``travel_spend`` | token ``pos:travel`` >= 2 and travel card spend > 0 | travel card (miles), platinum card (travel insurance), accident insurance |
| ``spends_abroad`` | token ``pos:abroad`` >= 2 | travel card (waives foreign fees) |
| ``risk_unknown_conservative`` | no ``risk_tolerance`` on record: eligibility let only R1 products through (the decision's ``rules_applied`` names the rule too) | deposits, CDs, wealth, funds, gold |
| ``within_risk_tolerance`` | ``risk_tolerance`` on record and the product's risk level <= it | deposits, CDs, wealth, funds, gold |
| ``open_to_you`` | the product passed eligibility (channel, age, minimum assets, risk, tier, not held) | any product offered |
| ``cold_start`` | nothing known: no event folded in, no profile (``fallback.knows_nothing``) | the safe cold-start products |
| ``new_product`` | (added to the code said) the model was not trained on the product, launched after it; its propensity is its family's mean (``scoring``) | a product the model does not know |

Decayed weights use ``FeatureParams()`` half-lives (hotline 30 days, tokens 90 days), as the
scoring does. The first true line in the order above is said (one reason per offer).

When no behaviour reason holds, the engine says what it knows for certain rather than a claim
about other customers. The ranking is the model's propensity folded in from this customer's own
holdings and tokens (``recommender.model``); its per-value-tier popularity serves only a customer
none of whose features the model knows, and the chain cannot see which path served. So "popular
with customers of your age group / value tier" or "customers like you" is never said. Instead:
``within_risk_tolerance`` ("within the risk level of your suitability assessment"), true from
the profile, for investment products; else ``open_to_you`` ("you can apply for this" for loans and
cards, which still need approval; "one of the products you can take up with us" otherwise), true
because eligibility let the product through. A customer the bank knows nothing about gets the
cold-start offer (``fallback.cold_start``): low-risk, no credit, and a sentence that says so.
No amounts or personal data appear in the sentences. Facts that are amounts (``*_minor``) are in
minor units of the bank's base currency, which the fact ``currency`` names (``FeatureParams.rates``);
so are the minimums of the talking points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from domain.catalog import Catalog, Product
from domain.features import DAY_S, FeatureParams, decay_factor
from schemas.currencies import minor_unit_exponent
from domain.state import CustomerState
from decisioning.context import Context, Offer
from decisioning.scoring import similar_weight

#: What to do instead of selling; code -> (en, zh).
SERVICE_ACTIONS: dict[str, tuple[str, str]] = {
    "resolve_complaint": (
        "Open complaint: do not sell. Apologise, resolve the complaint or hand over to complaint handling.",
        "客户有未解决的投诉：请勿营销。先致歉并解决投诉，或转交投诉处理。",
    ),
    "address_satisfaction": (
        "Frequent complaints: do not sell today. Address the customer's satisfaction first; "
        "ask whether the earlier complaints were settled to their liking.",
        "客户多次投诉：今天请勿营销。先关注客户满意度，询问此前的投诉是否已妥善解决。",
    ),
}

#: A large inflow, a salary or a pension credit counts as recent for this long.
LARGE_INFLOW_RECENT_S = 30 * DAY_S
SALARY_RECENT_S = 45 * DAY_S
PENSION_RECENT_S = 45 * DAY_S
#: "You asked us about ...": the intent's decayed call count (half-life 30 days) at least this,
#: i.e. one call within the last 30 days, or more calls before.
ASKED_MIN_WEIGHT = 0.5
#: "You often ...": the decayed count of such card payments (half-life 90 days) at least this;
#: every payment adds at most 1, so it takes two or more.
OFTEN_MIN_WEIGHT = 2.0
#: "You recently opened ...": the purchase at most this long before the decision.
RECENT_PURCHASE_S = 90 * DAY_S
#: Families whose risk level (R1-R5) is an investment risk the suitability assessment covers.
RISK_RATED_FAMILIES = frozenset({"deposit", "time_deposit", "cd", "wealth", "fund", "gold"})
CREDIT_FAMILIES = frozenset({"loan", "credit_card"})

_PARAMS = FeatureParams()

Facts = dict[str, Any]
#: A state-level condition: (state, now_s, tokens decayed to now_s) -> the facts that make it true, or None.
StateCondition = Callable[[CustomerState, float, Mapping[str, float]], "Facts | None"]


def _recent(at_s: float, now_s: float, within_s: float) -> int | None:
    """Whole days since ``at_s`` if it lies in ``[now_s - within_s, now_s]``, else None."""
    if at_s <= 0 or not 0 <= now_s - at_s < within_s:
        return None
    return int((now_s - at_s) // DAY_S)


def _large_inflow(state: CustomerState, now_s: float, tokens: Mapping[str, float]) -> Facts | None:
    days = _recent(state.last_large_inflow_at_s, now_s, LARGE_INFLOW_RECENT_S)
    if days is None:
        return None
    # The threshold the fold used is the process's (``explain`` puts it in, with the currency).
    return {"large_inflow_recent": True, "large_inflow_days_ago": days, "large_inflow_min_minor": None}


def _salary(state: CustomerState, now_s: float, tokens: Mapping[str, float]) -> Facts | None:
    days = _recent(state.last_salary_at_s, now_s, SALARY_RECENT_S)
    return None if days is None else {"salary_credit_recent": True, "salary_days_ago": days}


def _pension(state: CustomerState, now_s: float, tokens: Mapping[str, float]) -> Facts | None:
    days = _recent(state.last_pension_at_s, now_s, PENSION_RECENT_S)
    return None if days is None else {"pension_credit_recent": True, "pension_days_ago": days}


def intent_weight(state: CustomerState, intent: str, now_s: float) -> float:
    """The decayed count of hotline calls with ``intent`` at ``now_s``."""
    weight = state.hotline_intents.get(intent, 0.0)
    return weight * decay_factor(now_s - state.as_of_s, _PARAMS.hotline_half_life_days) if weight else 0.0


def _asked(intent: str) -> StateCondition:
    def condition(state: CustomerState, now_s: float, tokens: Mapping[str, float]) -> Facts | None:
        weight = intent_weight(state, intent, now_s)
        return {"hotline_intent": intent, "intent_weight": round(weight, 3)} if weight >= ASKED_MIN_WEIGHT else None
    return condition


def _often(token: str, spend_category: str | None = None) -> StateCondition:
    def condition(state: CustomerState, now_s: float, tokens: Mapping[str, float]) -> Facts | None:
        weight = tokens.get(token, 0.0)
        if weight < OFTEN_MIN_WEIGHT:
            return None
        facts: Facts = {"card_payments": token, "payments_weight": round(weight, 3)}
        if spend_category is not None:
            spend = state.pos_spend.get(spend_category, 0.0) * decay_factor(
                now_s - state.as_of_s, _PARAMS.spend_half_life_days)
            if spend <= 0:
                return None
            facts[f"{spend_category}_spend_minor"] = int(spend)
        return facts
    return condition


#: code -> its condition over the customer's state at the decision time (behaviour reasons).
STATE_CONDITIONS: dict[str, StateCondition] = {
    "asked_about_loans": _asked("loan_inquiry"),
    "asked_about_mortgage": _asked("mortgage_inquiry"),
    "asked_about_wealth": _asked("wealth_inquiry"),
    "asked_about_funds": _asked("fund_inquiry"),
    "asked_about_insurance": _asked("insurance_inquiry"),
    "large_inflow": _large_inflow,
    "salary_credit": _salary,
    "pension_credit": _pension,
    "premium_spend": _often("pos:hotel_5star"),
    "travel_spend": _often("pos:travel", "travel"),
    "spends_abroad": _often("pos:abroad"),
}


@dataclass(frozen=True)
class Line:
    """A sentence for ``code``, true for the products in ``products`` whenever the code's condition holds."""

    code: str
    products: frozenset[str]
    en: str
    zh: str


def _ids(*product_ids: str) -> frozenset[str]:
    return frozenset(product_ids)


_LOANS = _ids("consumer_loan", "car_loan", "mortgage", "home_equity_loan", "small_business_loan", "agri_loan")
_WEALTH = _ids("wealth_r1", "wealth_r2", "wealth_r3", "wealth_r4", "wealth_r5")
_FUNDS = _ids("money_market_fund", "bond_fund", "mixed_fund", "equity_fund", "index_fund", "qdii_fund", "fund_sip")
_INSURANCE = _ids("protection_insurance", "annuity_insurance", "home_insurance", "accident_insurance",
                  "whole_life_insurance")
_TIME_DEPOSITS = _ids("time_deposit_3m", "time_deposit_1y", "time_deposit_3y")
_CDS = _ids("large_cd", "large_cd_3y")

#: Behaviour lines in the order they are preferred.
LINES: tuple[Line, ...] = (
    Line("asked_about_loans", _LOANS,
         "You asked us about a loan; this is a loan you can apply for.", "您咨询过贷款，这是您可以申请的一款贷款。"),
    Line("asked_about_mortgage", _ids("mortgage"),
         "You asked us about a mortgage; this is our home loan.", "您咨询过房贷，这是我行的个人住房贷款。"),
    Line("asked_about_mortgage", _ids("home_insurance"),
         "You asked us about a mortgage; this insures a home and its contents.", "您咨询过房贷，这款保险保障房屋及家财。"),
    Line("asked_about_wealth", _WEALTH,
         "You asked us about wealth management; this is one of our wealth products.",
         "您咨询过理财，这是我行的一款理财产品。"),
    Line("asked_about_funds", _FUNDS, "You asked us about funds; this is one of our funds.",
         "您咨询过基金，这是我行代销的一只基金。"),
    Line("asked_about_insurance", _INSURANCE, "You asked us about insurance; this is one of our insurance plans.",
         "您咨询过保险，这是我行代理的一款保险。"),
    Line("large_inflow", _TIME_DEPOSITS | _CDS | _ids("notice_deposit", "wealth_r1", "wealth_r2", "money_market_fund",
                                                      "bond_fund"),
         "A large sum arrived in your account recently; this could earn more on it than a current account.",
         "您账户近期有一笔大额资金入账，这款产品的收益可能高于活期存款。"),
    Line("salary_credit", _TIME_DEPOSITS,
         "Your salary is paid into your account here; a time deposit earns more on what you set aside.",
         "您的工资发放到我行账户，把暂时不用的部分存成定期，收益更高。"),
    Line("salary_credit", _ids("fund_sip"),
         "Your salary is paid into your account here; this invests a fixed part of it every month.",
         "您的工资发放到我行账户，基金定投每月定额投资其中一部分。"),
    Line("salary_credit", _ids("utility_autopay"),
         "Your salary is paid into your account here; your bills can be paid from it automatically.",
         "您的工资发放到我行账户，水电燃气费可从中自动代扣。"),
    Line("salary_credit", _ids("personal_pension_account"),
         "Your salary is paid into your account here; this sets part of it aside for retirement.",
         "您的工资发放到我行账户，个人养老金账户可将其中一部分存起来养老。"),
    Line("pension_credit", _TIME_DEPOSITS | _CDS | _ids("notice_deposit"),
         "Your pension is paid into your account here; a deposit keeps it safe and earns interest.",
         "您的养老金发放到我行账户，存款安全并且有利息收益。"),
    Line("premium_spend", _ids("credit_card_platinum"),
         "You often pay at five-star hotels with your card; this card comes with hotel privileges.",
         "您常在五星级酒店用卡消费，这张卡享有酒店礼遇。"),
    Line("travel_spend", _ids("credit_card_travel"),
         "You often pay for travel with your card; this card earns airline miles on every purchase.",
         "您常用卡支付出行费用，这张卡每笔消费都可累积航空里程。"),
    Line("travel_spend", _ids("credit_card_platinum"),
         "You often pay for travel with your card; this card includes travel insurance.",
         "您常用卡支付出行费用，这张卡附带航空意外险。"),
    Line("travel_spend", _ids("accident_insurance"),
         "You often pay for travel with your card; this covers accidents when you travel too.",
         "您常用卡支付出行费用，这款保险也保障出行中的意外。"),
    Line("spends_abroad", _ids("credit_card_travel"),
         "You often pay abroad with your card; this card waives foreign transaction fees.",
         "您常在境外用卡消费，这张卡免收境外交易手续费。"),
)
assert all(line.code in STATE_CONDITIONS for line in LINES)
#: The codes whose facts hold an amount in minor units (``large_inflow_min_minor``, ``travel_spend_minor``).
_AMOUNT_CODES = frozenset({"large_inflow", "travel_spend"})

_LINES_BY_PRODUCT: dict[str, tuple[Line, ...]] = {
    pid: tuple(line for line in LINES if pid in line.products) for pid in set().union(*(l.products for l in LINES))
}

RISK_UNKNOWN = ("Your risk tolerance has not been assessed yet, so we suggest only our lowest-risk (R1) products; "
                "this is one of them.",
                "您尚未完成风险测评，因此我们只为您推荐最低风险（R1）的产品，这是其中之一。")

COLD_START = ("We have no record of your banking with us yet, so this is a simple, low-risk (R1) product.",
              "我行尚无您的业务记录，因此为您推荐这款简单、低风险（R1）的产品。")


def reasons(ctx: Context) -> None:
    # State-level conditions are evaluated at most once per request; "_boost_applies" too.
    found: dict[str, Any] = {"_boost_applies": similar_weight(ctx.model, ctx.policy) > 0}
    for offer in ctx.candidates.values():
        offer.reason_codes, offer.reason_en, offer.reason_zh, offer.reason_facts = explain(offer, ctx, found)


def explain(offer: Offer, ctx: Context, found: dict[str, Any] | None = None
            ) -> tuple[list[str], str, str, Facts]:
    """(reason codes, sentence en, sentence zh, facts) for ``offer`` in ``ctx``: the first line
    whose condition holds for the customer at ``ctx.now_s`` and that is true for the product; else
    the neutral line. The pitch is not repeated here: the offer carries it separately.

    A product the model was not trained on (``offer.cold_start_from`` set by ``scoring``) also
    carries the code ``new_product`` and the facts ``new_product: true`` and ``propensity_from``
    (``family_mean`` or ``catalog_mean``): its rank comes from other products, not from evidence
    about this one."""
    codes, en, zh, facts = _explain(offer, ctx, found)
    if codes[0] in _AMOUNT_CODES:  # facts with an amount (*_minor) say its currency
        facts = {**facts, "currency": ctx.params.rates.base}
        if codes[0] == "large_inflow":
            facts["large_inflow_min_minor"] = ctx.params.large_inflow_minor
    if offer.cold_start_from is not None:
        codes = [*codes, "new_product"]
        facts = {**facts, "new_product": True, "propensity_from": f"{offer.cold_start_from}_mean"}
    return codes, en, zh, facts


def _explain(offer: Offer, ctx: Context, found: dict[str, Any] | None) -> tuple[list[str], str, str, Facts]:
    p = offer.product
    if found is None:
        found = {"_boost_applies": similar_weight(ctx.model, ctx.policy) > 0}
    facts = similar_after_purchase_facts(offer, ctx, found["_boost_applies"]) if offer.because_of else None
    if facts is not None:
        bought = ctx.catalog.get(facts["purchased_product_id"])
        return (["similar_after_purchase"],
                f"You recently opened our {in_sentence(bought.name)}; other customers who hold it also hold our "
                f"{in_sentence(p.name)}.",
                f"您最近开通了{bought.name_zh}，持有该产品的其他客户也持有{p.name_zh}。", facts)
    for line in _LINES_BY_PRODUCT.get(p.product_id, ()):
        if line.code not in found:
            found[line.code] = STATE_CONDITIONS[line.code](ctx.state, ctx.now_s, ctx.tokens)
        facts = found[line.code]
        if facts is not None:
            return [line.code], line.en, line.zh, facts
    facts = risk_unknown_facts(p, ctx.state)
    if facts is not None:
        return [RISK_UNKNOWN_CODE], RISK_UNKNOWN[0], RISK_UNKNOWN[1], facts
    facts = risk_fit_facts(p, ctx.state)
    if facts is not None:
        tolerance = facts["risk_tolerance"]
        return (["within_risk_tolerance"],
                f"It is within the risk level of your suitability assessment (up to R{tolerance}).",
                f"该产品在您风险测评结果允许的范围内（R{tolerance}及以下）。", facts)
    if p.family in CREDIT_FAMILIES:
        return ["open_to_you"], "You can apply for this with us.", "您可以向我行申请办理。", {}
    return ["open_to_you"], "This is one of the products you can take up with us.", "这是您可以在我行办理的产品之一。", {}


def similar_after_purchase_facts(offer: Offer, ctx: Context, weighted: bool = True) -> Facts | None:
    """The purchase behind ``offer``'s similar-after-purchase boost, when the boost applies (> 0,
    and ``weighted``: the chain's similar weight > 0) and the purchase is a catalog product in the
    customer's recent purchases, bought at most ``RECENT_PURCHASE_S`` before ``ctx.now_s``; else None."""
    bought = offer.because_of
    if not weighted or not bought or offer.similar_boost <= 0 or not offer.moved_in_by_boost \
            or bought == offer.product.product_id or bought not in ctx.catalog:
        return None
    for pid, at_s in ctx.state.recent_purchases:
        if pid == bought:
            days = _recent(float(at_s), ctx.now_s, RECENT_PURCHASE_S) if at_s else None
            if days is None:
                return None
            return {"purchased_product_id": bought, "purchased_days_ago": days,
                    "similar_boost": round(offer.similar_boost, 4), "moved_into_list_by_boost": True}
    return None


RISK_UNKNOWN_CODE = "risk_unknown_conservative"


def risk_unknown_facts(product: Product, state: CustomerState) -> Facts | None:
    """For an investment product offered to a customer with no risk tolerance on record (so only
    R1 passed eligibility): the facts that say so; else None."""
    if state.risk_tolerance is not None or product.family not in RISK_RATED_FAMILIES:
        return None
    return {"risk_tolerance_assessed": False, "product_risk_level": product.risk_level}


def risk_fit_facts(product: Product, state: CustomerState) -> Facts | None:
    """The customer's assessed risk tolerance and the product's risk level, when the product is an
    investment within it; else None (no tolerance on record, or not risk-rated)."""
    tolerance = state.risk_tolerance
    if tolerance is None or product.family not in RISK_RATED_FAMILIES or product.risk_level > tolerance:
        return None
    return {"risk_tolerance": tolerance, "product_risk_level": product.risk_level}


def talking_points(product: Product, assets_minor: int | None = None,
                   currency: str = "CNY") -> list[tuple[str, str]]:
    """Lines for the agent, (en, zh): the pitch, a risk reminder for R3 and above, and the minimum
    amount (the catalog's minimum assets, in minor units of the base ``currency``). ``assets_minor``
    (the customer's assets with the bank, same units), when given, says whether they clear the
    minimum; without it the line asks the agent to check."""
    points = [(product.pitch_en, product.pitch_zh)]
    if product.risk_level >= 3:
        points.append((f"Risk level R{product.risk_level}: confirm the customer understands the risk.",
                       f"风险等级R{product.risk_level}：请确认客户了解产品风险。"))
    if product.min_assets_minor > 0:
        en, zh = money_text(product.min_assets_minor, currency)
        if assets_minor is None:
            points.append((f"Minimum {en}: check the customer's funds before the sale.",
                           f"起购金额{zh}：办理前请确认客户资金。"))
        elif assets_minor >= product.min_assets_minor:
            points.append((f"Minimum {en}; the customer's assets with us clear it.",
                           f"起购金额{zh}；客户在我行的资产已达到。"))
        else:
            points.append((f"Minimum {en}; the customer's assets with us are below it.",
                           f"起购金额{zh}；客户在我行的资产未达到。"))
    return points


def money_text(amount_minor: int, currency: str) -> tuple[str, str]:
    """(en, zh) of a whole amount of minor units of ``currency`` in major units, cut to whole
    units: ``("50,000 CNY", "50,000元")``, ``("500 EUR", "500 EUR")``."""
    whole = f"{amount_minor // 10 ** minor_unit_exponent(currency):,}"
    return f"{whole} {currency}", (f"{whole}元" if currency == "CNY" else f"{whole} {currency}")


def in_sentence(name: str) -> str:
    """A product name as it reads inside a sentence: "Mobile banking" -> "mobile banking";
    names that start with an acronym or a figure ("QDII global fund", "1-year ...") stay."""
    return name[0].lower() + name[1:] if len(name) > 1 and name[1].islower() else name
