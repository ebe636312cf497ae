"""Request and response bodies of the offer API (the public contract, see docs/API.md)."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import (
    CUSTOMER_ID_PATTERN,
    DECISION_ID_PATTERN,
    MAX_AMOUNT_MINOR,
    PRODUCT_ID_PATTERN,
    Currency,
    DeclineReason,
    OfferChannel,
    Outcome,
    TxnKind,
    TxnPurpose,
)


class Text(BaseModel):
    en: str
    zh: str


class OfferOut(BaseModel):
    product_id: str
    name: str
    name_zh: str
    family: str
    rank: int
    score: float
    propensity: float
    reason_codes: list[str]
    reason: Text
    reason_facts: dict[str, bool | int | float | str | None] = Field(
        default_factory=dict, description="the customer's facts at the decision time that make the reason true, "
        "e.g. {\"large_inflow_recent\": true, \"large_inflow_days_ago\": 3}; empty when the reason states none")
    pitch: Text
    talking_points: list[Text]
    creative_id: str | None = None


class ServiceAction(BaseModel):
    code: str
    en: str
    zh: str


class OfferResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "decision_id": "d-4a9bc35e5a46c9290000000000000000", "customer_id": "C000000042", "channel": "teller",
        "model_version": "20250301T020000Z-3f9a1c", "arm": "treatment", "degraded": False, "service_action": None,
        "offers": [{
            "product_id": "payroll_service", "name": "Payroll account service", "name_zh": "代发工资",
            "family": "service", "rank": 1, "score": 0.654, "propensity": 0.5, "reason_codes": ["salary_credit"],
            "reason": {"en": "Your salary is paid here; this makes the most of it.",
                       "zh": "您的工资由我行代发，这款产品能让工资更好地为您服务。"},
            "pitch": {"en": "Have your salary paid here and get fee waivers and preferential loan rates.",
                      "zh": "工资代发到本行，享手续费减免和贷款利率优惠。"},
            "talking_points": [], "creative_id": None}]}]})

    decision_id: str
    customer_id: str
    channel: OfferChannel
    model_version: str
    arm: Literal["treatment", "control"] = Field(
        description="the customer's experiment arm this month: `treatment` (ranked offers) or `control` (offers "
        "drawn at random from those the bank's rules allow, or none; see docs/LOOP.md). For the touchpoint's "
        "analytics (measuring the offers' lift), not for the customer or the agent")
    degraded: bool
    offers: list[OfferOut]
    service_action: ServiceAction | None = None


class Slot(BaseModel):
    slot: int
    product_id: str
    creative_id: str
    title: Text
    reason: Text


class SlotsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "decision_id": "d-4a9bc35e5a46c9290000000000000000", "customer_id": "C000000042",
        "model_version": "20250301T020000Z-3f9a1c", "arm": "treatment", "degraded": False,
        "slots": [{"slot": 1, "product_id": "personal_pension_account", "creative_id": "mob-personal_pension_account-1",
                   "title": {"en": "Personal pension account", "zh": "个人养老金账户"},
                   "reason": {"en": "Your salary is paid here; this makes the most of it.",
                              "zh": "您的工资由我行代发，这款产品能让工资更好地为您服务。"}}]}]})

    decision_id: str
    customer_id: str
    model_version: str
    arm: Literal["treatment", "control"] = Field(
        description="the customer's experiment arm this month: `treatment` (ranked offers) or `control` (offers "
        "drawn at random from those the bank's rules allow, or none; see docs/LOOP.md). For the touchpoint's "
        "analytics (measuring the offers' lift), not for the customer or the agent")
    degraded: bool
    slots: list[Slot]


class Transaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: TxnKind
    amount_minor: int = Field(ge=1, le=MAX_AMOUNT_MINOR, description="integer minor units of currency (fen for CNY, "
                              "cents for EUR, yen for JPY)")
    currency: Currency | None = Field(default=None, description="ISO 4217 code; default the bank's base currency "
                                      "(NBO_MONEY__BASE_CURRENCY)")
    purpose: TxnPurpose = TxnPurpose.CASH


class TellerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "customer_id": "C000000042", "terminal_id": "T001",
        "transaction": {"kind": "deposit", "amount_minor": 500000, "currency": "CNY", "purpose": "cash"}}]})

    customer_id: str = Field(pattern=CUSTOMER_ID_PATTERN)
    transaction: Transaction
    terminal_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,16}$")


class _OutcomeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(pattern=DECISION_ID_PATTERN, description="the decision_id of the offer response")
    customer_id: str = Field(pattern=CUSTOMER_ID_PATTERN)
    product_id: str = Field(pattern=PRODUCT_ID_PATTERN, description="a product_id from that response")
    channel: OfferChannel


class DeclinedOutcome(_OutcomeBase):
    """The customer said no; the reason sets how long the product is held back."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "decision_id": "d-4a9bc35e5a46c9290000000000000000", "customer_id": "C000000042", "product_id": "payroll_service",
        "channel": "teller", "outcome": "declined", "decline_reason": "too_expensive"}]})

    outcome: Literal[Outcome.DECLINED]
    decline_reason: DeclineReason


class OtherOutcome(_OutcomeBase):
    """Shown, accepted or ignored: no decline reason."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "decision_id": "d-4a9bc35e5a46c9290000000000000000", "customer_id": "C000000042", "product_id": "payroll_service",
        "channel": "teller", "outcome": "accepted"}]})

    outcome: Literal[Outcome.SHOWN, Outcome.ACCEPTED, Outcome.IGNORED]
    decline_reason: None = Field(default=None, description="only for outcome 'declined'")


OutcomeRequest = Union[DeclinedOutcome, OtherOutcome]


class OutcomeAck(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "recorded", "event_id": "oc-85f70cecd9a1413c5b546faad0bc4e10"}]})

    status: Literal["recorded"]
    event_id: str


class SpendCategory(BaseModel):
    category: str
    amount_minor: int


class IntentWeight(BaseModel):
    intent: str
    weight: float


class Behaviour(BaseModel):
    balance_minor: int = Field(description="minor units of the base currency (see the profile's currency)")
    inflow_30d_minor: int = Field(description="credits over the last 30 UTC days (today and the 29 days "
                                  "before), the exact sum of the amounts, minor units of the base currency")
    outflow_30d_minor: int = Field(description="debits over the same 30 days, exact sum, minor units of the "
                                   "base currency")
    flows_counted_from: str = Field(description="ISO 8601, UTC: the two totals count money movements from "
                                    "this time on: the window's first midnight, or later when the state's "
                                    "per-day record of this customer began later")
    flows_complete: bool = Field(description="true when flows_counted_from is the window's first midnight "
                                 "(the totals cover all 30 days)")
    salary_credit: bool = Field(description="a salary credit within the last 45 days")
    large_inflow_recent: bool = Field(description="a single non-salary credit of at least large_inflow_min_minor "
                                      "within the last 30 days")
    large_inflow_min_minor: int = Field(description="the large-inflow threshold, minor units of the base currency "
                                        "(NBO_MONEY__LARGE_INFLOW_MINOR; 5,000,000 = 50,000 CNY by default)")
    top_spend_categories: list[SpendCategory]
    max_hotel_stars: int
    recent_hotline_intents: list[IntentWeight]
    open_complaint: bool
    satisfaction: float | None = Field(description="moving average of hotline call sentiment, -1 (very "
                                       "unhappy) to 1 (very happy); null before the first call")


class TransactionOut(BaseModel):
    at: str = Field(description="ISO 8601, UTC")
    kind: TxnKind
    amount_minor: int
    channel: str


class PurchaseOut(BaseModel):
    product_id: str
    name: str
    name_zh: str
    at: str = Field(description="ISO 8601, UTC")


class HoldingOut(BaseModel):
    product_id: str
    name: str
    name_zh: str
    count: int


class ContactOut(BaseModel):
    product_id: str
    last_outcome: str | None
    decline_reason: str | None
    at: str | None


class Money(BaseModel):
    code: str = Field(description="ISO 4217 code of the bank's base currency: every *_minor amount of the profile "
                      "is in its minor units")
    minor_unit_exponent: int = Field(description="decimals of its minor unit: amount = *_minor / 10^exponent "
                                     "(2 for CNY, 0 for JPY, 3 for BHD)")


class ProfileNote(BaseModel):
    code: str = Field(description="risk_unknown_conservative | birth_year_unknown: the eligibility rule in force "
                      "for what is not on record")
    en: str
    zh: str


class ProfileResponse(BaseModel):
    customer_id: str
    known: bool = Field(description="the bank has history of this customer (a deposit, card payment, "
                        "hotline call, purchase or profile); false: no segment, offers suit most customers")
    age: int | None
    risk_tolerance: int | None = Field(description="the customer's risk tolerance 1..5, shown as C1..C5; a "
                                       "product of risk level R1..R5 up to the same number suits; null: "
                                       "not assessed")
    risk_tolerance_label: Text | None = Field(description='e.g. "C3 balanced"; null when not assessed')
    employment: str | None
    income_band: str | None = Field(description="declared income band: low | lower_middle | middle | upper_middle "
                                    "| high (the bank's own five bands); null: not declared")
    currency: Money = Field(description="the base currency of the amounts")
    profile_notes: list[ProfileNote] = Field(description="what is not on record and what the offers do about it "
                                             "(e.g. only R1 products without a risk assessment); empty when "
                                             "nothing is missing or the customer is not known")
    value_tier: str | None = Field(description="mass | affluent | high_net_worth | private; null when not known")
    vs_segment: str | None = Field(description="value x satisfaction class A..G; null when not known "
                                   "(not enough history)")
    segment_label: Text = Field(description="what the class means, e.g. \"High value, dissatisfied\", or "
                                "\"Not enough history\" when vs_segment is null")
    strategy: Text | None = Field(description="what the bank does with this class; null when not known")
    behaviour: Behaviour
    holdings: list[HoldingOut]
    recent_transactions: list[TransactionOut]
    recent_purchases: list[PurchaseOut]
    contact_history: list[ContactOut]


class Problem(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"detail": "customer_id: customer_id looks like a payment card number (13-19 digits passing the Luhn "
                   "check): that is personal data; send the bank's tokenised customer id instead"}]})

    detail: str
