"""Pure feature functions: ``apply(state, event, params) -> state``. No I/O, no clock reads.

Every decayed quantity is kept "as of" ``state.as_of_s`` (the newest event time folded in).
An event newer than ``as_of_s`` first decays the whole state forward to its time; an event that
arrives late (other topics are not ordered against each other) adds its contribution already
decayed by its age. So folding the same events in any order of independent streams gives the
same state, up to float rounding.

Times are UTC epoch seconds; amounts are integer minor units of the bank's base currency
(``FeatureParams.rates.base``, default CNY: fen): events in another currency are converted by
``domain.money.in_base_currency`` before they are folded. See docs/FEATURES.md.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass
from typing import Iterable

from domain import attribution
from domain.attribution import LoopFacts, LoopParams
from domain.catalog import value_tier_for_assets
from domain.money import CNY_ONLY, ExchangeRates
from domain.state import ContactRecord, CustomerState, Holding
from schemas.events import (
    CardPaymentMade,
    CustomerProfileUpdated,
    DepositPosted,
    Event,
    HotlineCallEnded,
    OfferDecisionMade,
    OfferOutcomeRecorded,
    ProductPurchased,
)

DAY_S = 86_400.0
#: A single credit at or above this (50,000 CNY, in base-currency minor units) is a large inflow
#: by default (``FeatureParams.large_inflow_minor``, ``NBO_MONEY__LARGE_INFLOW_MINOR``).
LARGE_INFLOW_MINOR = 5_000_000
#: Recent purchases kept for "similar after purchase".
RECENT_PURCHASES_KEPT = 5
RECENT_TRANSACTIONS_KEPT = 5
#: Daily contact counters kept (days).
DAILY_CONTACT_DAYS_KEPT = 3
#: UTC days of exact money in and out kept (``daily_flows``), the newest event's day included:
#: enough for "the last 30 days" at any time from the newest event on.
FLOW_DAYS_KEPT = 30
#: Tokens whose weight decays below this are dropped.
TOKEN_FLOOR = 0.01
#: Families whose purchase amount counts towards assets with the bank.
ASSET_FAMILIES_PREFIXES = ("time_deposit", "large_cd", "wealth_", "money_market", "bond_fund", "mixed_fund",
                           "equity_fund", "index_fund", "qdii_fund", "gold_", "annuity", "whole_life")


@dataclass(frozen=True)
class FeatureParams:
    """The fold's parameters; the stream, the API and training use the same ones
    (``bootstrap.feature_params``). ``large_inflow_minor`` is in minor units of ``rates.base``;
    ``rates`` converts event amounts into it (``domain.money``; default: every amount is CNY)."""

    inflow_half_life_days: float = 30.0
    spend_half_life_days: float = 60.0
    hotline_half_life_days: float = 30.0
    token_half_life_days: float = 90.0
    large_inflow_minor: int = LARGE_INFLOW_MINOR
    rates: ExchangeRates = CNY_ONLY
    #: The closed loop (``domain.attribution``): NBO_LOOP__ATTRIBUTION_DAYS, NBO_LOOP__IGNORED_AFTER_S.
    attribution_days: float = 30.0
    ignored_after_s: float = 86_400.0

    @functools.cached_property
    def loop(self) -> LoopParams:
        return LoopParams(self.attribution_days, self.ignored_after_s)


def decay_factor(elapsed_s: float, half_life_days: float) -> float:
    """``0.5 ** (elapsed / half_life)``; 1.0 for no or negative elapsed time."""
    if elapsed_s <= 0:
        return 1.0
    return 0.5 ** (elapsed_s / (half_life_days * DAY_S))


def decayed(value: float, as_of_s: float, now_s: float, half_life_days: float) -> float:
    """A value recorded at ``as_of_s`` seen from ``now_s``."""
    return value * decay_factor(now_s - as_of_s, half_life_days)


def _decay_map(values: dict[str, float], factor: float) -> dict[str, float]:
    # No pruning here: the key sets are bounded by the event enums, and pruning would make the
    # state depend on the arrival order of events from different topics.
    return {k: v * factor for k, v in values.items()}


def _advance(state: CustomerState, to_s: float, params: FeatureParams) -> None:
    """Decay every decayed quantity from ``state.as_of_s`` to ``to_s`` (in place)."""
    elapsed = to_s - state.as_of_s
    if state.as_of_s == 0.0 or elapsed <= 0:
        state.as_of_s = max(state.as_of_s, to_s)
        return
    if state.daily_flows and to_s // DAY_S != state.as_of_s // DAY_S:  # a new UTC day
        first_kept = _utc_date(int(to_s // DAY_S) - FLOW_DAYS_KEPT + 1)
        if min(state.daily_flows) < first_kept:  # ISO dates: text order is time order
            state.daily_flows = {k: v for k, v in state.daily_flows.items() if k >= first_kept}
    inflow = decay_factor(elapsed, params.inflow_half_life_days)
    state.inflow_minor *= inflow
    state.outflow_minor *= inflow
    state.pos_spend = _decay_map(state.pos_spend, decay_factor(elapsed, params.spend_half_life_days))
    state.hotline_intents = _decay_map(state.hotline_intents, decay_factor(elapsed, params.hotline_half_life_days))
    token = decay_factor(elapsed, params.token_half_life_days)
    state.tokens = _decay_map(state.tokens, token)
    state.card_use *= token
    state.as_of_s = to_s


def _add(mapping: dict[str, float], key: str, amount: float) -> None:
    mapping[key] = mapping.get(key, 0.0) + amount


def clone(state: CustomerState) -> CustomerState:
    """A copy that shares nothing mutable with ``state``, faster than ``copy.deepcopy``.

    ``holdings`` and ``contacts`` records are shared and copied on write by the handlers that
    change them (``_held`` / ``_contact``); ``recent_purchases`` and ``recent_transactions`` are replaced, never mutated."""
    new = CustomerState.__new__(CustomerState)
    new.__dict__.update(state.__dict__)
    new.pos_spend = dict(state.pos_spend)
    new.hotline_intents = dict(state.hotline_intents)
    new.tokens = dict(state.tokens)
    new.daily_contacts = dict(state.daily_contacts)
    new.daily_flows = dict(state.daily_flows)
    new.holdings = dict(state.holdings)
    new.contacts = dict(state.contacts)
    new.touches = dict(state.touches)
    new.bought = dict(state.bought)
    return new


def apply(state: CustomerState, event: Event, params: FeatureParams = FeatureParams(),
          facts: LoopFacts | None = None) -> CustomerState:
    """Fold one event into a copy of ``state`` and return the copy; the closed loop's facts
    (``domain.attribution``) are appended to ``facts`` when given (the state is the same either way)."""
    new = clone(state)
    _apply_in_place(new, event, params, LoopFacts() if facts is None else facts)
    return new


def apply_all(state: CustomerState, events: Iterable[Event], params: FeatureParams = FeatureParams(),
              facts: LoopFacts | None = None) -> CustomerState:
    """Fold events in order into one copy of ``state`` (same result as repeated ``apply``)."""
    new = clone(state)
    sink = LoopFacts() if facts is None else facts
    for event in events:
        _apply_in_place(new, event, params, sink)
    return new


def _apply_in_place(new: CustomerState, event: Event, params: FeatureParams, facts: LoopFacts) -> None:
    at_s = event.occurred_at.timestamp()
    _advance(new, at_s, params)
    # A late event's contributions are decayed by how far it lies behind the state.
    age_s = new.as_of_s - at_s
    kind = type(event)
    handler = _HANDLERS.get(kind)
    if handler is not None:
        handler(new, event, at_s, age_s, params)
    new.events_applied += 1
    _derive_segments(new)
    loop = _LOOP_HANDLERS.get(kind)  # after the segments: a touch keeps the customer's segment
    if loop is not None:
        loop(new, event, at_s, params.loop, facts)
    elif new.loop_due_s:
        attribution.after_event(new, params.loop, facts)


def _on_deposit(s: CustomerState, e: DepositPosted, at_s: float, age_s: float, p: FeatureParams) -> None:
    if at_s >= s.last_balance_at_s:
        s.balance_minor = e.balance_after_minor
        s.last_balance_at_s = at_s
    w_money = decay_factor(age_s, p.inflow_half_life_days)
    w_token = decay_factor(age_s, p.token_half_life_days)
    day = int(at_s // DAY_S)
    if day > int(s.as_of_s // DAY_S) - FLOW_DAYS_KEPT:  # else too late for any window still kept
        key = _utc_date(day)
        flows = s.daily_flows.get(key)
        credit, debit = flows if flows is not None else (0, 0)
        # A new list: the old one may be shared with the state this one was cloned from.
        s.daily_flows[key] = [credit + e.amount_minor, debit] if e.kind == "deposit" else [credit, debit + e.amount_minor]
    if e.kind == "deposit":
        s.inflow_minor += e.amount_minor * w_money
        if e.purpose == "salary":
            s.last_salary_at_s = max(s.last_salary_at_s, at_s)
            _add(s.tokens, "dep:salary", w_token)
        elif e.purpose == "pension":
            s.last_pension_at_s = max(s.last_pension_at_s, at_s)
            _add(s.tokens, "dep:pension", w_token)
        if e.amount_minor >= p.large_inflow_minor and e.purpose not in ("salary", "pension"):
            s.last_large_inflow_at_s = max(s.last_large_inflow_at_s, at_s)
            _add(s.tokens, "dep:large_inflow", w_token)
    else:
        s.outflow_minor += e.amount_minor * w_money
        if e.purpose == "loan_repayment":
            _add(s.tokens, "dep:loan_repayment", w_token)
        elif e.amount_minor >= p.large_inflow_minor:
            _add(s.tokens, "dep:large_outflow", w_token)
    # The newest few, whatever order they arrive in: sorted on the whole record, then cut.
    recent = [*s.recent_transactions, [at_s, str(e.kind), e.amount_minor, str(e.channel)]]
    recent.sort(reverse=True)
    s.recent_transactions = recent[:RECENT_TRANSACTIONS_KEPT]


def _on_pos(s: CustomerState, e: CardPaymentMade, at_s: float, age_s: float, p: FeatureParams) -> None:
    category = str(e.merchant_category)
    _add(s.pos_spend, category, e.amount_minor * decay_factor(age_s, p.spend_half_life_days))
    w = decay_factor(age_s, p.token_half_life_days)
    _add(s.tokens, f"pos:{category}", w)
    if e.hotel_stars:
        s.max_hotel_stars = max(s.max_hotel_stars, e.hotel_stars)
        if e.hotel_stars >= 4:
            _add(s.tokens, f"pos:hotel_{e.hotel_stars}star", w)
    if e.luxury:
        _add(s.tokens, "pos:luxury", w)
    if e.country != "CN":
        _add(s.tokens, "pos:abroad", w)
    # Card usage is the frequency-of-use signal for the card products held; kept apart from the
    # holdings so that it does not depend on whether the purchase event was folded in first.
    s.card_use += w


def _on_hotline(s: CustomerState, e: HotlineCallEnded, at_s: float, age_s: float, p: FeatureParams) -> None:
    intent = str(e.intent)
    _add(s.hotline_intents, intent, decay_factor(age_s, p.hotline_half_life_days))
    _add(s.tokens, f"hotline:{intent}", decay_factor(age_s, p.token_half_life_days))
    # Satisfaction: an exponential moving average of call sentiment.
    s.satisfaction = round(0.7 * s.satisfaction + 0.3 * e.sentiment, 6)
    if e.intent == "complaint":
        s.complaints += 1
        if at_s >= s.last_complaint_at_s:  # the newest complaint call says whether it is still open
            s.last_complaint_at_s = at_s
            s.open_complaint = not e.resolved


def _on_purchase(s: CustomerState, e: ProductPurchased, at_s: float, age_s: float, p: FeatureParams) -> None:
    held = s.holdings.get(e.product_id)
    if held is None:
        s.holdings[e.product_id] = Holding(count=1, first_at_s=at_s, last_at_s=at_s, usage=0.0)
    else:  # a new record: the old one may be shared with the state this one was cloned from
        s.holdings[e.product_id] = Holding(count=held.count + 1, first_at_s=min(held.first_at_s, at_s),
                                           last_at_s=max(held.last_at_s, at_s), usage=held.usage)
    if e.product_id.startswith(ASSET_FAMILIES_PREFIXES):
        s.invested_minor += e.amount_minor
    s.purchases += 1
    recent = [r for r in s.recent_purchases if r[0] != e.product_id] + [[e.product_id, at_s]]
    recent.sort(key=lambda r: r[1], reverse=True)
    s.recent_purchases = recent[:RECENT_PURCHASES_KEPT]


def _on_outcome(s: CustomerState, e: OfferOutcomeRecorded, at_s: float, age_s: float, p: FeatureParams) -> None:
    old = s.contacts.get(e.product_id)
    # A new record: the old one may be shared with the state this one was cloned from.
    record = copy.copy(old) if old is not None else ContactRecord()
    s.contacts[e.product_id] = record
    outcome = str(e.outcome)
    if outcome == "shown":
        record.shown += 1
        record.last_offered_at_s = max(record.last_offered_at_s, at_s)
        day = _day(at_s)
        key = f"{day}|{e.channel}"
        s.daily_contacts[key] = s.daily_contacts.get(key, 0) + 1
        s.daily_contacts = {k: v for k, v in s.daily_contacts.items()
                            if k.split("|")[0] >= _day(at_s - DAILY_CONTACT_DAYS_KEPT * DAY_S)}
    elif outcome == "accepted":
        record.accepts += 1
        record.last_accepted_at_s = max(record.last_accepted_at_s, at_s)
    elif outcome == "declined":
        record.declines += 1
        if at_s >= record.last_declined_at_s:
            record.last_declined_at_s = at_s
            record.last_decline_reason = str(e.decline_reason)
    record.last_outcome = outcome
    record.last_outcome_at_s = max(record.last_outcome_at_s, at_s)


def _on_profile(s: CustomerState, e: CustomerProfileUpdated, at_s: float, age_s: float, p: FeatureParams) -> None:
    if at_s >= s.profile_at_s:
        s.profile_at_s = at_s
        s.birth_year = e.birth_year
        s.risk_tolerance = e.risk_tolerance
        s.employment = str(e.employment)
        s.income_band = str(e.income_band) if e.income_band is not None else None


def _on_decision(s: CustomerState, e: OfferDecisionMade, at_s: float, age_s: float, p: FeatureParams) -> None:
    """A decision changes only the closed loop's part of the state (``domain.attribution``)."""


_HANDLERS = {
    DepositPosted: _on_deposit,
    CardPaymentMade: _on_pos,
    HotlineCallEnded: _on_hotline,
    ProductPurchased: _on_purchase,
    OfferOutcomeRecorded: _on_outcome,
    CustomerProfileUpdated: _on_profile,
    OfferDecisionMade: _on_decision,
}

#: The closed loop's part of the fold (``domain.attribution``); after any other event only the
#: check for overdue answers runs.
_LOOP_HANDLERS = {
    OfferDecisionMade: attribution.on_decision,
    OfferOutcomeRecorded: attribution.on_outcome,
    ProductPurchased: attribution.on_purchase,
}


def _day(at_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at_s))


@functools.lru_cache(maxsize=4096)
def _utc_date(day: int) -> str:
    """``YYYY-MM-DD`` of a UTC day counted from the epoch (cached: a pure function of ``day``)."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY_S))


def flows_in_window(state: CustomerState, now_s: float, days: int = FLOW_DAYS_KEPT) -> tuple[int, int]:
    """Money in and out (credits, debits; minor units) over the last ``days`` UTC days at
    ``now_s``: the day of ``now_s`` and the ``days - 1`` before it, exact sums of the amounts.
    ``days`` is at most ``FLOW_DAYS_KEPT``. Movements before ``state.daily_flows_from_s`` are
    not in them (see ``flows_window_start_s``)."""
    if days > FLOW_DAYS_KEPT:
        raise ValueError(f"days={days}: at most {FLOW_DAYS_KEPT} days of money movements are kept")
    last = int(now_s // DAY_S)
    first, last_date = _utc_date(last - days + 1), _utc_date(last)
    credits = debits = 0
    for key, (credit, debit) in state.daily_flows.items():
        if first <= key <= last_date:
            credits += credit
            debits += debit
    return credits, debits


def flows_window_start_s(now_s: float, days: int = FLOW_DAYS_KEPT) -> float:
    """The start (UTC midnight, epoch s) of the ``days``-day window of ``flows_in_window``."""
    return (int(now_s // DAY_S) - days + 1) * DAY_S


def assets_minor(state: CustomerState) -> int:
    """Assets with the bank: the account balance plus what was put into deposits and investments."""
    return max(0, state.balance_minor) + state.invested_minor


def age_at(state: CustomerState, now_s: float) -> int | None:
    if state.birth_year is None:
        return None
    return time.gmtime(now_s).tm_year - state.birth_year


def tokens_at(state: CustomerState, now_s: float, params: FeatureParams = FeatureParams()) -> dict[str, float]:
    """The behaviour tokens decayed to ``now_s``, plus static tokens from master data."""
    factor = decay_factor(now_s - state.as_of_s, params.token_half_life_days)
    tokens = {k: v * factor for k, v in state.tokens.items() if v * factor >= TOKEN_FLOOR}
    if state.employment:
        tokens[f"emp:{state.employment}"] = 1.0
    age = age_at(state, now_s)
    if age is not None:
        tokens[f"age:{_age_band(age)}"] = 1.0
    if state.income_band:
        tokens[f"inc:{state.income_band}"] = 1.0
    tokens[f"tier:{state.value_tier}"] = 1.0
    return tokens


def _age_band(age: int) -> str:
    for limit, band in ((25, "18-25"), (35, "26-35"), (45, "36-45"), (55, "46-55"), (65, "56-65")):
        if age <= limit:
            return band
    return "66+"


def is_card_product(product_id: str) -> bool:
    return product_id.startswith("credit_card") or product_id == "debit_card"


def holdings_weights(state: CustomerState, now_s: float | None = None,
                     params: FeatureParams = FeatureParams()) -> dict[str, float]:
    """Products held with a confidence weight: 1 per holding, +0.5 per extra holding, plus
    log-scaled usage (card payments count as usage of the cards held). ``now_s`` decays usage
    to that time (default: as of the state's newest event)."""
    factor = 1.0 if now_s is None else decay_factor(now_s - state.as_of_s, params.token_half_life_days)
    weights = {}
    for pid, h in state.holdings.items():
        usage = h.usage + (state.card_use if is_card_product(pid) else 0.0)
        weights[pid] = 1.0 + math.log1p(usage * factor) + 0.5 * (h.count - 1)
    return weights


#: What the bank does with each value x satisfaction class (docs/FEATURES.md).
VS_STRATEGIES: dict[str, tuple[str, str]] = {
    "A": ("High value and satisfied: serve one-to-one, offer premium products.", "高价值且满意：一对一服务，推荐高端产品。"),
    "B": ("High value, neutral: deepen the relationship with advice.", "高价值、满意度一般：以专业建议加深关系。"),
    "C": ("High value but dissatisfied: retain first, call back personally.", "高价值但不满意：先挽留，专人回访。"),
    "D": ("Mass and satisfied: grow with digital and simple products.", "大众且满意：以线上和简单产品培育。"),
    "E": ("Mass, neutral: standard offers on the customer's own channels.", "大众、满意度一般：在常用渠道做标准推荐。"),
    "F": ("Mass and dissatisfied: service first, no selling pressure.", "大众且不满意：先服务，不施加销售压力。"),
    "G": ("Buys a lot but complains: fix the complaint before selling anything.", "购买多但常投诉：先解决投诉，再谈销售。"),
}


def _derive_segments(s: CustomerState) -> None:
    s.value_tier = value_tier_for_assets(assets_minor(s))
    high_value = s.value_tier != "mass"
    dissatisfied = s.open_complaint or s.satisfaction < -0.2
    if s.purchases >= 4 and (s.open_complaint or s.complaints >= 2):
        s.vs_segment = "G"
    elif high_value:
        s.vs_segment = "A" if s.satisfaction >= 0.2 and not dissatisfied else "C" if dissatisfied else "B"
    else:
        s.vs_segment = "D" if s.satisfaction >= 0.2 and not dissatisfied else "F" if dissatisfied else "E"
