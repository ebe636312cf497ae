"""The event contract: the facts the bank's systems emit, as typed, frozen models.

Every event shares one envelope:

- ``event_id``: unique per fact; a producer that re-sends the same fact re-sends the same id
  (consumers drop duplicates by it). Pattern ``EVENT_ID_PATTERN``.
- ``schema_version``: the contract version the producer wrote (``SCHEMA_VERSION``).
- ``customer_id``: a pseudonymous customer token, never a name, phone or card number.
  Pattern ``CUSTOMER_ID_PATTERN``: 1 to 64 letters, digits, ``-``, ``_``, ``.`` or ``:``; an id
  holding a Luhn-valid 13-19 digit run (a card number) is refused; a bank may narrow the rule
  with its own pattern (``schemas.rules.ContractRules``, passed as the validation context).
- ``occurred_at``: when the fact happened, timezone-aware (naive timestamps are refused), not
  before the rules' earliest time (default 2000-01-01) nor more than 24 h ahead.
- ``source``: the system that emitted it (``core_banking``, ``cti``, ``card_switch``, ...).
- ``type``: the discriminator that says which fact this is.

Money is always integer minor units of the event's ``currency`` (any ISO 4217 code with a minor
unit: fen for CNY, cents for USD, yen for JPY, fils for BHD) in ``*_minor`` fields. Consumers
convert amounts into the bank's base currency (``domain.money``) before features see them.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.currencies import CURRENCY_PATTERN, MINOR_UNIT_EXPONENTS, currency_refusal
from schemas.rules import (
    CONTEXT_KEY,
    CUSTOMER_ID_PATTERN,
    DEFAULT_EARLIEST_OCCURRED_AT,
    DEFAULT_RULES,
    LATEST_KEY,
    MAX_CLOCK_SKEW,
    UTC,
)

SCHEMA_VERSION = 1
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{7,63}$"
PRODUCT_ID_PATTERN = r"^[a-z][a-z0-9_]{1,47}$"
DECISION_ID_PATTERN = r"^d-[A-Za-z0-9_-]{6,60}$"
CARD_TOKEN_PATTERN = r"^tok_[A-Za-z0-9]{8,40}$"
SOURCE_PATTERN = r"^[a-z][a-z0-9_.-]{1,31}$"

#: The largest amount in minor units of any currency: 10^14 (a trillion CNY, or about six billion
#: USD in IDR, whose amounts run to 10^12 minor units for a car); anything above is a data error.
#: With the balance bound (10x) it stays an exact integer in a float64 or a JavaScript number.
MAX_AMOUNT_MINOR = 10**14
#: Timestamps before this are refused as corrupt unless the rules set another earliest time.
EARLIEST_OCCURRED_AT = DEFAULT_EARLIEST_OCCURRED_AT
#: How far in the future a producer's clock may be before an event is refused (seconds).
MAX_CLOCK_SKEW_S = int(MAX_CLOCK_SKEW.total_seconds())


def _iso_currency(code: str) -> str:
    if code in MINOR_UNIT_EXPONENTS:  # the common case, without a call
        return code
    refused = currency_refusal(code)
    if refused is not None:
        raise ValueError(refused)
    return code


#: An ISO 4217 alphabetic code of a currency with a minor unit (``schemas.currencies``).
Currency = Annotated[str, Field(pattern=CURRENCY_PATTERN, description="ISO 4217 currency code with a minor unit, "
                                "e.g. CNY, USD, JPY, BHD; the amounts are in its minor units",
                                json_schema_extra={"enum": sorted(MINOR_UNIT_EXPONENTS)}),
                     AfterValidator(_iso_currency)]

AmountMinor = Annotated[int, Field(ge=1, le=MAX_AMOUNT_MINOR, strict=True)]
CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]
ProductId = Annotated[str, Field(pattern=PRODUCT_ID_PATTERN)]
DecisionId = Annotated[str, Field(pattern=DECISION_ID_PATTERN)]


class TxnKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"


class TxnChannel(StrEnum):
    COUNTER = "counter"
    ATM = "atm"
    MOBILE = "mobile"
    TRANSFER = "transfer"


class TxnPurpose(StrEnum):
    """What the core banking transaction code says the movement was for."""

    SALARY = "salary"
    PENSION = "pension"
    CASH = "cash"
    TRANSFER = "transfer"
    BILL_PAYMENT = "bill_payment"
    LOAN_REPAYMENT = "loan_repayment"
    INVESTMENT = "investment"
    OTHER = "other"


class HotlineIntent(StrEnum):
    BALANCE_QUERY = "balance_query"
    LOST_CARD = "lost_card"
    CARD_LIMIT = "card_limit"
    LOAN_INQUIRY = "loan_inquiry"
    MORTGAGE_INQUIRY = "mortgage_inquiry"
    WEALTH_INQUIRY = "wealth_inquiry"
    FUND_INQUIRY = "fund_inquiry"
    INSURANCE_INQUIRY = "insurance_inquiry"
    COMPLAINT = "complaint"
    TRANSFER_HELP = "transfer_help"
    OTHER = "other"


class MerchantCategory(StrEnum):
    GROCERIES = "groceries"
    DINING = "dining"
    TRAVEL = "travel"
    HOTEL = "hotel"
    LUXURY = "luxury"
    FUEL = "fuel"
    ELECTRONICS = "electronics"
    EDUCATION = "education"
    HEALTHCARE = "healthcare"
    UTILITIES = "utilities"
    ENTERTAINMENT = "entertainment"
    ONLINE_RETAIL = "online_retail"
    OTHER = "other"


class PurchaseChannel(StrEnum):
    BRANCH = "branch"
    CALL_CENTRE = "call_centre"
    MOBILE = "mobile"
    ONLINE = "online"
    RELATIONSHIP_MANAGER = "relationship_manager"


class OfferChannel(StrEnum):
    """The touchpoints that ask for offers."""

    TELLER = "teller"
    CALL_CENTRE = "call_centre"
    MOBILE = "mobile"


class Outcome(StrEnum):
    SHOWN = "shown"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IGNORED = "ignored"


class DeclineReason(StrEnum):
    NOT_INTERESTED = "not_interested"
    HAS_IT_ELSEWHERE = "has_it_elsewhere"
    TOO_EXPENSIVE = "too_expensive"
    BAD_TIMING = "bad_timing"
    NEEDS_ADVICE = "needs_advice"
    COMPLAINT = "complaint"
    OTHER = "other"


# ISO 18245 merchant category codes -> the categories features and the model use.
_MCC_RANGES: tuple[tuple[int, int, MerchantCategory], ...] = (
    (3000, 3299, MerchantCategory.TRAVEL),  # airlines
    (3351, 3441, MerchantCategory.TRAVEL),  # car rental
    (3501, 3999, MerchantCategory.HOTEL),  # hotel chains
    (4011, 4789, MerchantCategory.TRAVEL),
    (4900, 4900, MerchantCategory.UTILITIES),
    (5411, 5411, MerchantCategory.GROCERIES),
    (5422, 5499, MerchantCategory.GROCERIES),
    (5541, 5542, MerchantCategory.FUEL),
    (5732, 5732, MerchantCategory.ELECTRONICS),
    (5812, 5814, MerchantCategory.DINING),
    (5094, 5094, MerchantCategory.LUXURY),  # jewellery, watches (wholesale)
    (5944, 5944, MerchantCategory.LUXURY),  # jewellery, watches
    (5681, 5681, MerchantCategory.LUXURY),  # furriers
    (5311, 5311, MerchantCategory.OTHER),
    (5960, 5969, MerchantCategory.ONLINE_RETAIL),
    (5999, 5999, MerchantCategory.ONLINE_RETAIL),
    (7011, 7011, MerchantCategory.HOTEL),
    (7832, 7999, MerchantCategory.ENTERTAINMENT),
    (8011, 8099, MerchantCategory.HEALTHCARE),
    (8211, 8299, MerchantCategory.EDUCATION),
)


def _mcc_table() -> tuple[MerchantCategory, ...]:
    """The category of every code 0000-9999 (the first range that holds a code wins)."""
    table = [MerchantCategory.OTHER] * 10_000
    for low, high, category in reversed(_MCC_RANGES):
        table[low:high + 1] = [category] * (high + 1 - low)
    return tuple(table)


_MCC_TABLE = _mcc_table()


def merchant_category_for_mcc(mcc: str) -> MerchantCategory:
    """The merchant category for a 4-digit MCC; ``other`` when the code is not mapped."""
    return _MCC_TABLE[int(mcc)]


def _category_of_the_mcc(data: dict[str, object]) -> MerchantCategory:
    # The default of CardPaymentMade.merchant_category: pydantic calls it with the fields validated
    # so far (mcc among them: it comes first), and only when all of them are valid.
    return _MCC_TABLE[int(data["mcc"])]  # type: ignore[call-overload]


class Event(BaseModel):
    """The common envelope; never instantiated itself."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_id: str = Field(pattern=EVENT_ID_PATTERN,
                          description="Unique per fact; a re-sent fact keeps its id (consumers drop duplicates by it).")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version the producer wrote.")
    customer_id: CustomerId = Field(description="Pseudonymous customer token (never a name, phone or card number): "
                                    "1-64 letters, digits, - _ . :; an id holding a Luhn-valid 13-19 digit run is "
                                    "refused as a card number; the bank may narrow it with its own pattern.")
    occurred_at: AwareDatetime = Field(
        description="When the fact happened: ISO 8601 with a time zone, not before the earliest time accepted "
                    "(2000-01-01 unless the bank sets another), at most 24 h ahead.")
    source: str = Field(pattern=SOURCE_PATTERN, description="Emitting system, e.g. core_banking, cti, card_switch.")

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_text_or_datetime(cls, value: object) -> object:
        # Epoch numbers are ambiguous (seconds? milliseconds?) and easy to send by mistake.
        if isinstance(value, (bool, int, float)):
            raise ValueError("occurred_at must be an ISO 8601 time with a zone, e.g. 2026-01-01T08:00:00Z")
        return value

    @field_validator("customer_id")
    @classmethod
    def _bank_customer_id(cls, value: str, info: ValidationInfo) -> str:
        context = info.context
        rules = context.get(CONTEXT_KEY, DEFAULT_RULES) if context.__class__ is dict else DEFAULT_RULES
        if rules.narrows_customer_ids:
            refused = rules.customer_id_narrowing(value)
            if refused is not None:
                raise ValueError(refused)
        return value

    @field_validator("occurred_at")
    @classmethod
    def _plausible_time(cls, value: datetime, info: ValidationInfo) -> datetime:
        # The bounds are in pydantic's own UTC (``UTC``), the zone a validated "...Z" time carries,
        # so the common comparisons need no UTC offsets. The latest time comes with the context
        # when a caller checks many events at once (``ContractRules.context_at``): one clock read.
        context = info.context
        if context.__class__ is dict:
            rules = context.get(CONTEXT_KEY, DEFAULT_RULES)
            latest = context.get(LATEST_KEY)
        else:
            rules, latest = DEFAULT_RULES, None
        if value < rules.earliest_utc:
            raise ValueError(rules.occurred_at_refusal(value))
        if latest is None:
            latest = datetime.now(UTC) + MAX_CLOCK_SKEW
        if value > latest:
            raise ValueError("occurred_at is more than 24 h in the future; check the producer clock")
        return value


class DepositPosted(Event):
    """A deposit or withdrawal was posted to a customer's account."""

    type: Literal["deposit"] = "deposit"
    kind: TxnKind
    amount_minor: AmountMinor = Field(description="Amount moved, integer minor units of currency, 1 .. 10^14.")
    currency: Currency = "CNY"
    channel: TxnChannel
    purpose: TxnPurpose = TxnPurpose.OTHER
    branch_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,16}$",
                                  description="Branch of the counter or ATM; null for transfers and mobile.")
    balance_after_minor: int = Field(ge=-MAX_AMOUNT_MINOR, le=10 * MAX_AMOUNT_MINOR, strict=True,
                                     description="Account balance after posting, minor units of currency (may be "
                                                 "negative on an overdraft).")


class HotlineCallEnded(Event):
    """A call to the 95599 hotline ended; the CTI reports its intent and how it went."""

    type: Literal["hotline"] = "hotline"
    intent: HotlineIntent
    duration_s: int = Field(ge=0, le=36_000, strict=True, description="Call length in seconds, at most 10 h.")
    resolved: bool = Field(strict=True, description="Whether the agent closed the customer's issue on the call.")
    sentiment: float = Field(ge=-1.0, le=1.0, strict=True,
                             description="Speech-analytics sentiment, -1 (angry) to 1 (delighted).")

    @field_validator("sentiment")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("sentiment must be a finite number in [-1, 1]")
        return value


def _merchant_category_listed_as_required(schema: dict[str, object]) -> None:
    # The published schema asks producers for merchant_category (the model derives it from the mcc
    # when one leaves it out): keep it in "required", in field order, as before it had a default.
    required = schema.setdefault("required", [])
    assert isinstance(required, list)
    if "merchant_category" not in required:
        required.insert(required.index("mcc") + 1 if "mcc" in required else len(required), "merchant_category")


class CardPaymentMade(Event):
    """A card payment at a POS terminal or online merchant; the card is a token, never a PAN."""

    type: Literal["pos"] = "pos"
    card_token: str = Field(pattern=CARD_TOKEN_PATTERN, description="Token of the card; never the card number.")
    mcc: str = Field(pattern=r"^[0-9]{4}$", description="ISO 18245 merchant category code.")
    merchant_category: MerchantCategory = Field(
        default_factory=_category_of_the_mcc,
        description="Derived from mcc (merchant_category_for_mcc) when a producer leaves it out.")
    hotel_stars: int = Field(default=0, ge=0, le=5, strict=True, description="Hotel star level; 0 if not a hotel.")
    luxury: bool = Field(default=False, strict=True, description="Luxury merchant (jewellery, 5-star hotel, ...).")
    amount_minor: AmountMinor
    currency: Currency = "CNY"
    online: bool = Field(default=False, strict=True, description="Card not present (e-commerce).")
    country: str = Field(default="CN", pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 merchant country.")

    model_config = ConfigDict(json_schema_extra=_merchant_category_listed_as_required)


class ProductPurchased(Event):
    """A product was opened or bought, whether or not an offer led to it."""

    type: Literal["purchase"] = "purchase"
    product_id: ProductId = Field(description="Catalog product id (domain/data/catalog.csv).")
    amount_minor: int = Field(default=0, ge=0, le=MAX_AMOUNT_MINOR, strict=True,
                              description="Amount invested, deposited or lent, minor units; 0 for cards and services.")
    currency: Currency = "CNY"
    channel: PurchaseChannel
    decision_id: DecisionId | None = Field(default=None, description="The offer decision this purchase answers, if any.")


class OfferOutcomeRecorded(Event):
    """What the customer did with an offer a touchpoint showed."""

    type: Literal["offer_outcome"] = "offer_outcome"
    decision_id: DecisionId
    product_id: ProductId
    channel: OfferChannel
    outcome: Outcome
    decline_reason: DeclineReason | None = None

    @model_validator(mode="after")
    def _reason_only_for_decline(self) -> "OfferOutcomeRecorded":
        if self.outcome is Outcome.DECLINED and self.decline_reason is None:
            raise ValueError("decline_reason is required when outcome is 'declined'")
        if self.outcome is not Outcome.DECLINED and self.decline_reason is not None:
            raise ValueError("decline_reason is only allowed when outcome is 'declined'")
        return self


class EmploymentType(StrEnum):
    SALARIED = "salaried"
    SELF_EMPLOYED = "self_employed"
    BUSINESS_OWNER = "business_owner"
    RETIRED = "retired"
    FARMER = "farmer"
    STUDENT = "student"
    OTHER = "other"


class IncomeBand(StrEnum):
    """The customer's declared income, in five bands of the bank's own definition (e.g. the
    quintiles of declared income among its customers, or the bands of its KYC form), lowest first.
    Bank-neutral on purpose: no amounts or currency in the contract."""

    LOW = "low"
    LOWER_MIDDLE = "lower_middle"
    MIDDLE = "middle"
    UPPER_MIDDLE = "upper_middle"
    HIGH = "high"


class CustomerProfileUpdated(Event):
    """Master data from core banking (KYC) changed: age, risk tolerance, employment, income band.

    Each event is the whole profile as it stands: a field left out or null is not known (any more).

    ``risk_tolerance`` is the result of the suitability questionnaire, 1 (conservative, C1)
    to 5 (aggressive, C5); a product of risk level R(n) may be offered only when n <= it. Null
    (not assessed): only R1 products are offered. ``birth_year`` null (not on record): products
    for particular ages (an age band narrower than the catalog's widest) are not offered.
    """

    type: Literal["profile"] = "profile"
    birth_year: int | None = Field(default=None, ge=1900, le=2100, strict=True,
                                   description="Year of birth; null when not on record.")
    risk_tolerance: int | None = Field(default=None, ge=1, le=5, strict=True,
                                       description="Suitability assessment 1 (C1) .. 5 (C5); null when not assessed.")
    employment: EmploymentType = EmploymentType.OTHER
    city_tier: int = Field(default=2, ge=1, le=4, strict=True)
    income_band: IncomeBand | None = Field(default=None, description="Declared income band (the bank's five bands, "
                                           "lowest first); null when not declared.")


#: A value of ``OfferedItem.reason_facts``: a flag, a count, an amount in minor units, a weight or a name.
FactValue = Union[bool, int, float, Annotated[str, Field(max_length=64)], None]


class OfferedItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    product_id: ProductId
    rank: int = Field(ge=1, le=50)
    score: float
    propensity: float = Field(ge=0.0)
    reason_codes: tuple[Annotated[str, Field(max_length=64)], ...] = Field(default=(), max_length=16)
    #: The customer's facts that made the reason true at the decision time (name -> JSON scalar);
    #: optional with a default, so records written before it still decode.
    reason_facts: dict[Annotated[str, Field(max_length=64)], FactValue] = Field(default_factory=dict, max_length=16)
    #: The probability with which the deciding policy showed this offer at this rank (1.0 when it
    #: exploits without exploring; less under exploration or a control arm's random choice), so
    #: off-policy estimators can weigh logged decisions. None on records written before it existed.
    probability: float | None = Field(default=None, ge=0.0, le=1.0)


class OfferDecisionMade(Event):
    """The audit record the offer service writes for every decision it makes."""

    type: Literal["offer_decision"] = "offer_decision"
    decision_id: DecisionId
    channel: OfferChannel
    offers: tuple[OfferedItem, ...] = Field(max_length=50)
    rules_applied: tuple[Annotated[str, Field(max_length=64)], ...] = Field(default=(), max_length=64)
    model_version: str = Field(max_length=64)
    #: The customer's experiment arm at the decision time: ``treatment`` (ranked offers) or
    #: ``control`` (a random eligible offer, or none; see docs/LOOP.md).
    arm: Literal["treatment", "control"] = "treatment"
    #: The marketing policy (levers file) version the decision was made under.
    policy_version: str = Field(default="", max_length=64)
    degraded: bool = False
    latency_ms: float = Field(default=0.0, ge=0.0)


AnyEvent = Annotated[
    Union[
        DepositPosted,
        HotlineCallEnded,
        CardPaymentMade,
        ProductPurchased,
        OfferOutcomeRecorded,
        OfferDecisionMade,
        CustomerProfileUpdated,
    ],
    Field(discriminator="type"),
]

EVENT_TYPES: dict[str, type[Event]] = {
    "deposit": DepositPosted,
    "hotline": HotlineCallEnded,
    "pos": CardPaymentMade,
    "purchase": ProductPurchased,
    "offer_outcome": OfferOutcomeRecorded,
    "offer_decision": OfferDecisionMade,
    "profile": CustomerProfileUpdated,
}
