"""The stream side of the closed loop, pure: which offers a customer was shown, what they
answered, which purchases those offers converted, and the facts the worker writes elsewhere.

Folded from ``domain.features.apply`` for three event types (see docs/LOOP.md, "Stream side"):

- ``offer_decision``: every offer of the decision is a *touch*: product -> (decision id, shown at,
  channel, arm, model version, the customer's vs segment when the decision was folded).
- ``offer_outcome`` ``accepted`` / ``declined`` / ``ignored``: an *answer* to the touch of its
  (decision, product); an answer whose decision has not been folded yet keeps a placeholder
  touch that the decision fills in when it arrives (topics are not ordered against each other).
- ``purchase``: a *conversion* when the product was shown within ``attribution_days`` before it,
  attributed to the last touch (greatest shown-at, then decision id; last touch on any channel).

A touch with no answer is *ignored* once the customer's newest event (any topic) is more than
``ignored_after_s`` past the showing; an answer that arrives later retracts that.

The fold returns facts alongside the state (``LoopFacts``):

- ``counts``: (UTC day of the showing, counter field, delta) for the live effectiveness counters,
  filed under the day the offer was shown (a cohort: a later answer or purchase adds to the day
  of its showing). Field ``<product>|<channel>|<segment>|<arm>|<measure>|<model version>``,
  measures ``shows``, ``accepted``, ``declined:<reason>``, ``ignored``, ``conversions``,
  ``conversions_accepted`` (converted and accepted at the touchpoint).
- ``answers``: (evidence field, accepted, expected, at_s, sign) for the online evidence
  (``domain.learning``), for ``<product>``, ``<product>|<segment>``, ``<product>@<channel>``,
  ``*`` and ``*@<channel>`` (all products; ``domain.learning.evidence_fields``);
  ``expected`` is the model propensity the decision record logged for the answered offer; sign
  -1 retracts. An answer counts once its decision is folded (the propensity is known then); a
  touch kept before the propensity was (a state written by an older worker) adds none.
- ``conversions``: ``Conversion`` records; the same purchase may be recorded again when a
  decision folded late moves its attribution to a later touch, or an acceptance arrives for its
  touch: the newest by (shown_at, decision_id, accepted) wins.

Every retraction pairs with an earlier addition, so whatever order one customer's topics
interleave in, the sums of the facts are the same once the same events are folded (up to float
rounding; within the bounds below). Times are UTC epoch seconds. No I/O, no clock.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from domain.learning import evidence_fields
from schemas.events import OfferDecisionMade, OfferOutcomeRecorded, ProductPurchased

DAY_S = 86_400.0
#: Touches kept per product and in all (the newest by shown-at); purchases kept per product.
TOUCHES_PER_PRODUCT = 4
TOUCHES_KEPT = 24
PURCHASES_PER_PRODUCT = 4
#: Touches and purchases are kept for the attribution window plus this (late events).
LATE_S = DAY_S

# A touch: [decision_id, shown_at_s | None, channel, arm | None, model_version | None,
#           segment | None, answers [[measure, at_s], ...], ignored (implicitly), order_at_s,
#           propensity | None]
# shown_at_s is None for a placeholder (an answer whose decision is not folded yet); propensity
# (the model's, as the decision logged it) is None until then, and missing from touches kept
# before it was (nine items: they add no evidence).
DECISION, SHOWN_AT, CHANNEL, ARM, MODEL, SEGMENT, ANSWERS, IGNORED, ORDER_AT, PROPENSITY = range(10)
# A purchase: [event_id, at_s, purchase channel, decision_id | None, shown_at_s | None, accepted]
P_EVENT, P_AT, P_CHANNEL, P_DECISION, P_SHOWN_AT, P_ACCEPTED = range(6)


@dataclass(frozen=True)
class LoopParams:
    attribution_days: float = 30.0
    ignored_after_s: float = 86_400.0


@dataclass(frozen=True)
class Conversion:
    """A purchase attributed to the last touch that showed its product (JSON form: ``to_json``,
    the ``schemas.conversions.ConversionAttributed`` record)."""

    customer_id: str
    purchase_event_id: str
    product_id: str
    purchased_at_s: float
    purchase_channel: str
    decision_id: str
    channel: str
    arm: str
    model_version: str
    segment: str
    shown_at_s: float
    accepted_at_touchpoint: bool

    @property
    def conversion_id(self) -> str:
        return conversion_id(self.purchase_event_id)

    @property
    def days_after_shown(self) -> float:
        return round((self.purchased_at_s - self.shown_at_s) / DAY_S, 6)

    def to_json(self) -> dict[str, Any]:
        return {
            "conversion_id": self.conversion_id, "schema_version": 1, "customer_id": self.customer_id,
            "purchase_event_id": self.purchase_event_id, "product_id": self.product_id,
            "purchased_at": _iso(self.purchased_at_s), "purchase_channel": self.purchase_channel,
            "decision_id": self.decision_id, "channel": self.channel, "arm": self.arm,
            "model_version": self.model_version, "segment": self.segment, "shown_at": _iso(self.shown_at_s),
            "days_after_shown": self.days_after_shown, "accepted_at_touchpoint": self.accepted_at_touchpoint,
        }


def conversion_id(purchase_event_id: str) -> str:
    """The conversion's id: a function of the purchase alone, so every record of one purchase
    (a re-sent one, a later attribution) carries the same id."""
    return "cv-" + hashlib.sha256(purchase_event_id.encode()).hexdigest()[:32]


@dataclass
class LoopFacts:
    """What one fold produced besides the state (see the module docstring)."""

    counts: list[tuple[str, str, int]] = field(default_factory=list)
    answers: list[tuple[str, bool, float, float, int]] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.counts or self.answers or self.conversions)

    def count(self, touch: list[Any], product_id: str, measure: str, delta: int) -> None:
        day = _day(touch[SHOWN_AT])
        self.counts.append((day, counter_field(product_id, touch[CHANNEL], touch[SEGMENT], touch[ARM], measure,
                                               touch[MODEL]), delta))

    def answer(self, touch: list[Any], product_id: str, accepted: bool, at_s: float, sign: int) -> None:
        """The evidence of one answer to ``touch`` (none for a touch without a propensity)."""
        expected = _propensity(touch)
        if expected is None:
            return
        for name in evidence_fields(product_id, touch[SEGMENT], touch[CHANNEL]):
            self.answers.append((name, accepted, expected, at_s, sign))


def counter_field(product_id: str, channel: str, segment: str, arm: str, measure: str, model_version: str) -> str:
    """The counter's hash field; the model version goes last, so it may hold any character."""
    return f"{product_id}|{channel}|{segment}|{arm}|{measure}|{model_version}"


def parse_counter_field(text: str) -> tuple[str, str, str, str, str, str]:
    """(product, channel, segment, arm, measure, model version) of ``counter_field``."""
    product_id, channel, segment, arm, measure, model_version = text.split("|", 5)
    return product_id, channel, segment, arm, measure, model_version


# --- the fold's hooks ----------------------------------------------------------------------------

def on_decision(s: Any, e: OfferDecisionMade, at_s: float, p: LoopParams, facts: LoopFacts) -> None:
    for offer in e.offers:
        pid = offer.product_id
        touches = [list(t) for t in s.touches.get(pid, ())]
        touch = _find(touches, e.decision_id)
        if touch is None:
            touch = [e.decision_id, None, str(e.channel), None, None, None, [], False, at_s, None]
            touches.append(touch)
        elif touch[SHOWN_AT] is not None:  # the same product twice in one decision
            continue
        touch[SHOWN_AT], touch[CHANNEL], touch[ARM], touch[MODEL] = at_s, str(e.channel), e.arm, e.model_version
        touch[SEGMENT], touch[ORDER_AT] = s.vs_segment, at_s
        if len(touch) > PROPENSITY:  # (a placeholder an older worker kept has counted its answers)
            touch[PROPENSITY] = float(offer.propensity)
        facts.count(touch, pid, "shows", 1)
        for measure, answered_at in touch[ANSWERS]:  # answers that arrived before their decision
            facts.count(touch, pid, measure, 1)
            facts.answer(touch, pid, measure == "accepted", answered_at, 1)
        s.touches[pid] = touches
        _attribute_late(s, pid, touch, p, facts)
    _prune(s, p)
    _expire(s, p, facts)


def on_outcome(s: Any, e: OfferOutcomeRecorded, at_s: float, p: LoopParams, facts: LoopFacts) -> None:
    outcome = str(e.outcome)
    if outcome == "shown":
        after_event(s, p, facts)
        return
    measure = f"declined:{e.decline_reason}" if outcome == "declined" else outcome
    accepted = outcome == "accepted"
    pid = e.product_id
    touches = [list(t) for t in s.touches.get(pid, ())]
    touch = _find(touches, e.decision_id)
    if touch is None:
        touch = [e.decision_id, None, str(e.channel), None, None, None, [], False, at_s, None]
        touches.append(touch)
    if touch[IGNORED]:  # an answer after all: the implicit "ignored" is withdrawn
        touch[IGNORED] = False
        facts.count(touch, pid, "ignored", -1)
        facts.answer(touch, pid, False, touch[SHOWN_AT] + p.ignored_after_s, -1)
    touch[ANSWERS] = [*touch[ANSWERS], [measure, at_s]]
    if touch[SHOWN_AT] is not None:  # else counted when the decision is folded
        facts.count(touch, pid, measure, 1)
        facts.answer(touch, pid, accepted, at_s, 1)
    s.touches[pid] = touches
    if accepted and touch[SHOWN_AT] is not None:
        bought = s.bought.get(pid)
        if bought:
            entries = [list(b) for b in bought]
            for entry in entries:
                if entry[P_DECISION] == e.decision_id and not entry[P_ACCEPTED]:
                    _attribute(s, pid, entry, touch, facts, old=touch)
            s.bought[pid] = entries
    _prune(s, p)
    _refresh_due(s, p)
    after_event(s, p, facts)


def on_purchase(s: Any, e: ProductPurchased, at_s: float, p: LoopParams, facts: LoopFacts) -> None:
    pid = e.product_id
    entry: list[Any] = [e.event_id, at_s, str(e.channel), None, None, False]
    best = None
    window_s = p.attribution_days * DAY_S
    for touch in s.touches.get(pid, ()):
        shown = touch[SHOWN_AT]
        if shown is not None and shown <= at_s <= shown + window_s and (
                best is None or (shown, touch[DECISION]) > (best[SHOWN_AT], best[DECISION])):
            best = touch
    if best is not None:
        _attribute(s, pid, entry, best, facts, old=None)
    bought = [*(list(b) for b in s.bought.get(pid, ())), entry]
    bought.sort(key=lambda b: (b[P_AT], b[P_EVENT]))
    s.bought[pid] = bought[-PURCHASES_PER_PRODUCT:]
    _prune(s, p)
    _refresh_due(s, p)
    after_event(s, p, facts)


def after_event(s: Any, p: LoopParams, facts: LoopFacts) -> None:
    """Every event: touches whose answer is overdue at the customer's newest event time are
    ignored, and touches and purchases past the window dropped (``loop_due_s`` says when the
    next one is due, so this is one comparison for most events)."""
    if s.loop_due_s and s.as_of_s > s.loop_due_s:
        _prune(s, p)
        _expire(s, p, facts)


# --- helpers -------------------------------------------------------------------------------------

def _find(touches: list[list[Any]], decision_id: str) -> list[Any] | None:
    for touch in touches:
        if touch[DECISION] == decision_id:
            return touch
    return None


def _accepted(touch: list[Any]) -> bool:
    return any(measure == "accepted" for measure, _ in touch[ANSWERS])


def _attribute(s: Any, pid: str, entry: list[Any], touch: list[Any], facts: LoopFacts,
               old: list[Any] | None) -> None:
    """Attribute the purchase ``entry`` (in place) to ``touch``; ``old`` is the touch it was
    attributed to (its counts are withdrawn)."""
    if old is not None:
        facts.count(old, pid, "conversions", -1)
        if entry[P_ACCEPTED]:
            facts.count(old, pid, "conversions_accepted", -1)
    accepted = _accepted(touch)
    entry[P_DECISION], entry[P_SHOWN_AT], entry[P_ACCEPTED] = touch[DECISION], touch[SHOWN_AT], accepted
    facts.count(touch, pid, "conversions", 1)
    if accepted:
        facts.count(touch, pid, "conversions_accepted", 1)
    facts.conversions.append(Conversion(
        customer_id=s.customer_id, purchase_event_id=entry[P_EVENT], product_id=pid, purchased_at_s=entry[P_AT],
        purchase_channel=entry[P_CHANNEL], decision_id=touch[DECISION], channel=touch[CHANNEL], arm=touch[ARM],
        model_version=touch[MODEL], segment=touch[SEGMENT], shown_at_s=touch[SHOWN_AT],
        accepted_at_touchpoint=accepted))


def _attribute_late(s: Any, pid: str, touch: list[Any], p: LoopParams, facts: LoopFacts) -> None:
    """A decision folded after purchases it may have led to: move their attribution to it if it
    is the later touch."""
    bought = s.bought.get(pid)
    if not bought:
        return
    shown, window_s = touch[SHOWN_AT], p.attribution_days * DAY_S
    entries = [list(b) for b in bought]
    touches = s.touches[pid]
    for entry in entries:
        if not shown <= entry[P_AT] <= shown + window_s:
            continue
        if entry[P_DECISION] is None:
            _attribute(s, pid, entry, touch, facts, old=None)
        elif (shown, touch[DECISION]) > (entry[P_SHOWN_AT], entry[P_DECISION]):
            old = _find(touches, entry[P_DECISION])
            if old is not None:  # else dropped by the bounds: the attribution stays
                _attribute(s, pid, entry, touch, facts, old=old)
    s.bought[pid] = entries


def _expire(s: Any, p: LoopParams, facts: LoopFacts) -> None:
    for pid, touches in list(s.touches.items()):
        changed = None
        for i, touch in enumerate(touches):
            shown = touch[SHOWN_AT]
            if (shown is not None and not touch[IGNORED] and not touch[ANSWERS]
                    and s.as_of_s > shown + p.ignored_after_s):
                if changed is None:
                    changed = [list(t) for t in touches]
                changed[i][IGNORED] = True
                facts.count(changed[i], pid, "ignored", 1)
                facts.answer(changed[i], pid, False, shown + p.ignored_after_s, 1)
        if changed is not None:
            s.touches[pid] = changed
    _refresh_due(s, p)


def _refresh_due(s: Any, p: LoopParams) -> None:
    keep_s = p.attribution_days * DAY_S + LATE_S
    due = [t[SHOWN_AT] + p.ignored_after_s for ts in s.touches.values() for t in ts
           if t[SHOWN_AT] is not None and not t[IGNORED] and not t[ANSWERS]]
    due += [t[ORDER_AT] + keep_s for ts in s.touches.values() for t in ts]
    due += [b[P_AT] + keep_s for bs in s.bought.values() for b in bs]
    s.loop_due_s = min(due) if due else 0.0


def _prune(s: Any, p: LoopParams) -> None:
    """Drop touches and purchases past the attribution window (plus ``LATE_S``), then the oldest
    touches past the bounds."""
    horizon = s.as_of_s - p.attribution_days * DAY_S - LATE_S
    kept: dict[str, list[list[Any]]] = {}
    total = 0
    for pid, touches in s.touches.items():
        # in (order_at, decision) order, so the state does not depend on arrival order
        fresh = sorted((t for t in touches if t[ORDER_AT] >= horizon), key=_touch_order)[-TOUCHES_PER_PRODUCT:]
        if fresh:
            kept[pid] = fresh
            total += len(fresh)
    if total > TOUCHES_KEPT:
        ranked = sorted(((t[ORDER_AT], t[DECISION], pid) for pid, ts in kept.items() for t in ts), reverse=True)
        keep = {(pid, d) for _, d, pid in ranked[:TOUCHES_KEPT]}
        kept = {pid: ts2 for pid, ts in kept.items() if (ts2 := [t for t in ts if (pid, t[DECISION]) in keep])}
    s.touches = kept
    if s.bought:
        s.bought = {pid: b2 for pid, b in s.bought.items() if (b2 := [x for x in b if x[P_AT] >= horizon])}


def _propensity(touch: list[Any]) -> float | None:
    return touch[PROPENSITY] if len(touch) > PROPENSITY and touch[SHOWN_AT] is not None else None


def _touch_order(touch: list[Any]) -> tuple[float, str]:
    return touch[ORDER_AT], touch[DECISION]


def _day(at_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at_s))


def _iso(at_s: float) -> str:
    return datetime.fromtimestamp(at_s, timezone.utc).isoformat().replace("+00:00", "Z")


def add_signed(evidence: list[float] | None, accepted: bool, expected: float, at_s: float, sign: int,
               half_life_days: float) -> list[float]:
    """``domain.learning.add_answer`` with a sign (-1 withdraws an answer added before), on the
    stored form ``[accepts, others, as_of_s, expected]``; what the Redis script computes, in
    Python. A value of the older form ``[accepts, others, as_of_s]`` starts afresh."""
    if evidence is None or len(evidence) < 4:
        accepts, others, as_of_s, total = 0.0, 0.0, 0.0, 0.0
    else:
        accepts, others, as_of_s, total = evidence
    half_life_s = half_life_days * DAY_S
    if at_s > as_of_s:
        factor = 0.5 ** ((at_s - as_of_s) / half_life_s)
        accepts, others, total, as_of_s = accepts * factor, others * factor, total * factor, at_s
    weight = float(sign) if as_of_s <= at_s else sign * 0.5 ** ((as_of_s - at_s) / half_life_s)
    if accepted:
        accepts += weight
    else:
        others += weight
    return [accepts, others, as_of_s, total + weight * expected]
