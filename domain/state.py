"""The customer state the stream workers keep in Redis and the offer service ranks from.

``CustomerState`` is a plain, JSON-serialisable value. The stream side builds it with the pure
functions in ``domain.features``; the offer service reads it and never writes it (except
for folding a teller's in-hand transaction into a *copy* before scoring).

Times are UTC epoch seconds (float) so the value round-trips through JSON without loss.
Decayed quantities are stored with the time they were last brought up to date (``as_of_s``);
read them through ``domain.features`` helpers that decay them to a given ``now``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Holding:
    """A product the customer holds. ``usage`` is a decayed count of uses (card swipes, SIP debits)."""

    count: int = 1
    first_at_s: float = 0.0
    last_at_s: float = 0.0
    usage: float = 0.0


@dataclass
class ContactRecord:
    """Offer contact history for one product."""

    last_offered_at_s: float = 0.0
    last_declined_at_s: float = 0.0
    last_decline_reason: str | None = None
    declines: int = 0
    accepts: int = 0
    shown: int = 0
    last_outcome: str | None = None
    last_outcome_at_s: float = 0.0
    last_accepted_at_s: float = 0.0  # the newest "accepted" outcome (the contact policy holds the product back)


@dataclass
class CustomerState:
    customer_id: str
    as_of_s: float = 0.0  # time of the newest event folded in
    events_applied: int = 0

    # Master data (from CustomerProfileUpdated); None until a profile event arrived.
    birth_year: int | None = None
    risk_tolerance: int | None = None
    employment: str | None = None
    income_band: str | None = None  # schemas.events.IncomeBand value; None: not declared (or an older state)
    profile_at_s: float = 0.0

    # Deposits and withdrawals.
    balance_minor: int = 0
    last_balance_at_s: float = 0.0
    invested_minor: int = 0  # sum of amounts put into deposits, funds, wealth, gold, annuities
    inflow_minor: float = 0.0  # decayed sum of credits
    outflow_minor: float = 0.0  # decayed sum of debits
    last_salary_at_s: float = 0.0
    last_pension_at_s: float = 0.0
    last_large_inflow_at_s: float = 0.0
    # The newest deposits and withdrawals, newest first: [at_s, kind, amount_minor, channel].
    recent_transactions: list[list[Any]] = field(default_factory=list)
    # Exact money in and out per UTC day, for windowed totals: "YYYY-MM-DD" ->
    # [credits_minor, debits_minor], for the FLOW_DAYS_KEPT days up to the day of ``as_of_s``.
    daily_flows: dict[str, list[int]] = field(default_factory=dict)
    # Credits and debits are in ``daily_flows`` from this time on (epoch s); 0.0 = from the
    # customer's first event. A state written before ``daily_flows`` existed decodes with the
    # time of its newest event here: its earlier money movements were never bucketed.
    daily_flows_from_s: float = 0.0

    # Card spend: merchant category -> decayed amount (minor units); highest hotel tier seen.
    pos_spend: dict[str, float] = field(default_factory=dict)
    max_hotel_stars: int = 0
    card_use: float = 0.0  # decayed count of card payments (token half-life): usage of the cards held

    # Hotline: intent -> decayed count; complaint handling and satisfaction in [-1, 1].
    hotline_intents: dict[str, float] = field(default_factory=dict)
    open_complaint: bool = False
    complaints: int = 0
    last_complaint_at_s: float = 0.0
    satisfaction: float = 0.0

    # Products: held products and the most recent purchases, newest first: [product_id, at_s].
    holdings: dict[str, Holding] = field(default_factory=dict)
    recent_purchases: list[list[Any]] = field(default_factory=list)
    purchases: int = 0

    # Offer contact history per product, and per-day contact counts {"YYYY-MM-DD|channel": n}.
    contacts: dict[str, ContactRecord] = field(default_factory=dict)
    daily_contacts: dict[str, int] = field(default_factory=dict)

    # The closed loop (domain.attribution): offers shown, product -> touches
    # [decision_id, shown_at_s | None, channel, arm, model_version, segment, answers, ignored, order_at_s];
    # recent purchases, product -> [event_id, at_s, channel, decision_id, shown_at_s, accepted];
    # when the next touch turns ignored or one of them leaves the window (0.0: none).
    touches: dict[str, list[list[Any]]] = field(default_factory=dict)
    bought: dict[str, list[list[Any]]] = field(default_factory=dict)
    loop_due_s: float = 0.0

    # Behaviour tokens for the model, e.g. "pos:hotel_5star" -> decayed weight.
    tokens: dict[str, float] = field(default_factory=dict)

    # Derived segments (recomputed on every update).
    value_tier: str = "mass"  # mass | affluent | high_net_worth | private
    vs_segment: str = "C"  # value x satisfaction class A..G, see docs/FEATURES.md

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CustomerState":
        """The inverse of ``to_dict``; missing fields (older writers) take their defaults and
        unknown ones (newer writers) are ignored."""
        data = dict(data)
        if "daily_flows" not in data and data.get("events_applied"):
            data["daily_flows_from_s"] = float(data.get("as_of_s", 0.0))
        data["holdings"] = {k: _record(Holding, v) for k, v in data.get("holdings", {}).items()}
        data["contacts"] = {k: _record(ContactRecord, v) for k, v in data.get("contacts", {}).items()}
        if data.keys() == _STATE_FIELDS:  # the common case: same version as this code, no checks
            state = cls.__new__(cls)
            state.__dict__.update(data)
            return state
        return cls(**{k: v for k, v in data.items() if k in _STATE_FIELDS})


def _record(kind: type, values: dict[str, Any]) -> Any:
    record = kind.__new__(kind)
    if values.keys() == kind.__dataclass_fields__.keys():
        record.__dict__.update(values)
        return record
    return kind(**{k: v for k, v in values.items() if k in kind.__dataclass_fields__})


_STATE_FIELDS = CustomerState.__dataclass_fields__.keys()
