"""The simulated customers' side of the closed loop: who comes to which touchpoint on a simulated
day, how they answer the offers they are shown, and the sale an acceptance turns into.

- Teller: every counter deposit or withdrawal of the day (the simulator's ``DepositPosted`` with
  channel ``counter``) is a customer at the counter, with that transaction in hand.
- Call centre: every hotline call of the day (``HotlineCallEnded``) is a customer on the line,
  at the time the call ended.
- Mobile: each customer holding ``mobile_banking`` opens the app on a day with probability
  ``mobile_rate``, at a uniform time between 07:00 and 23:00 UTC.

Answers come from the truth: the customer's true propensity now (``Simulator.propensity``, the
chance to buy within 14 days, without the planted drift) through ``bank.draw_offer_response`` (an
offer on a channel pulls the purchase forward by ``bank.CHANNEL_LIFT``), times the product's
appeal (``Simulator.appeal_at``: a drift that halves a product's appeal halves the chance its
offers are accepted). Each shown offer gets its own answer. An accepted offer is a sale: a
``ProductPurchased`` naming the decision, applied to the simulator's state
(``Simulator.record_purchases``) so the customer holds the product from then on.

``drift_recovery_hours`` measures how fast a ranking's top offers follow a planted drift
(``scale_appeal``), ``multiplier_follow_hours`` how fast a learned multiplier of a product does.

Pure and seeded: no I/O, no clock; the caller passes the random generator and the times.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

import numpy as np
import orjson

from schemas.events import ProductPurchased
from simulator.bank import DAY_S, T_DEPOSIT, T_HOTLINE, EventBatch, Simulator, draw_offer_response, offer_accept_chance

VISIT_CHANNELS = ("teller", "call_centre", "mobile")
#: The purchase channel a sale made on an offer channel is booked on.
SALE_CHANNEL = {"teller": "branch", "call_centre": "call_centre", "mobile": "mobile"}
_SALE_SOURCE = {"teller": "core_banking", "call_centre": "cti", "mobile": "mobile_banking"}
DEFAULT_MOBILE_RATE = 0.3


@dataclass(frozen=True)
class Visit:
    """A customer at a touchpoint: row ``customer`` (``customer_id``), ``channel``, at ``at_s``
    (simulated UTC epoch seconds); a teller visit carries the transaction in hand
    (``{"kind", "amount_minor", "currency", "purpose"}``, the offer API's ``Transaction``)."""

    customer: int
    customer_id: str
    channel: str
    at_s: int
    transaction: dict | None = None


@dataclass(frozen=True)
class Answer:
    """What the customer did with one shown offer: ``accepted``, ``declined`` (with a reason) or
    ``ignored``; the true propensity (without the drift) it was drawn from, and ``chance``, the
    probability that this offer was accepted (``bank.offer_accept_chance``: the true propensity
    through the channel's pull, times the appeal, capped), which a bench can average instead of
    the outcomes to compare two rankings without the noise of the draws."""

    product_id: str
    outcome: str
    decline_reason: str | None
    true_propensity: float
    chance: float


def day_visits(sim: Simulator, batch: EventBatch, day: int, rng: np.random.Generator,
               mobile_rate: float = DEFAULT_MOBILE_RATE) -> list[Visit]:
    """The visits of simulated ``day`` (0 = the first), from that day's event ``batch``
    (``Simulator.step``) and ``mobile_rate``; in time order (ties: customer, channel)."""
    if not 0.0 <= mobile_rate <= 1.0:
        raise ValueError("mobile_rate must be in [0, 1]")
    visits: list[Visit] = []
    for k in np.nonzero((batch.types == T_DEPOSIT) | (batch.types == T_HOTLINE))[0].tolist():
        event = orjson.loads(batch.records[k])
        at_s = int(datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp())
        row = int(batch.customers[k])
        if event["type"] == "deposit" and event["channel"] == "counter":
            visits.append(Visit(row, event["customer_id"], "teller", at_s, {
                "kind": event["kind"], "amount_minor": event["amount_minor"], "currency": event["currency"],
                "purpose": event["purpose"]}))
        elif event["type"] == "hotline":
            visits.append(Visit(row, event["customer_id"], "call_centre", at_s + int(event["duration_s"])))
    app = sim.idx.get("mobile_banking", -1)
    users = np.nonzero(sim.held[:, app])[0] if app >= 0 else np.arange(sim.n)
    # two draws for every customer, app user or not: whether and when a customer opens the app
    # does not depend on who else holds the app (two runs of one seed keep the same visits)
    draw = rng.random((2, sim.n))
    opened = users[draw[0, users] < mobile_rate]
    day_s = sim.start_s + day * DAY_S
    times = day_s + 7 * 3600 + np.floor(draw[1, opened] * 16 * 3600).astype(np.int64)
    visits += [Visit(int(c), f"C{int(c):09d}", "mobile", int(t)) for c, t in zip(opened.tolist(), times.tolist())]
    visits.sort(key=lambda v: (v.at_s, v.customer, v.channel))
    return visits


def answer_offers(sim: Simulator, customer: int, channel: str, product_ids: Sequence[str],
                  rng: np.random.Generator, day: int | None = None,
                  visit_key: Sequence[int] | None = None) -> list[Answer]:
    """Each shown product's answer, drawn from the customer's true propensity now (without the
    drift) times the product's appeal on simulated ``day`` (the visit's; default ``sim.day``, the
    day the next ``step`` simulates). A product the simulator does not know (not in its catalog)
    has propensity 0: it is never accepted.

    ``visit_key`` (integers naming the visit, e.g. seed, customer, time, channel): common random
    numbers. Each product's answer is drawn from its own generator seeded by the key and the
    product, not from ``rng``, so the same offer at the same visit gets the same answer in any
    run: two policies run on the same traffic then differ only where their offers differ."""
    truth = sim.propensity(np.array([customer]), drift=False)[0]
    appeal = sim.appeal_at(sim.day if day is None else day)
    answers = []
    for pid in product_ids:
        j = sim.catalog.index.get(pid)
        p = float(truth[j]) if j is not None else 0.0
        draws = rng if visit_key is None else np.random.default_rng([*visit_key, len(sim.catalog) if j is None else j])
        factor = float(appeal[j]) if j is not None else 1.0
        outcome, reason = draw_offer_response(p, channel, draws, factor)
        answers.append(Answer(pid, outcome, reason, p, offer_accept_chance(p, channel, factor)))
    return answers


def sale_event(sim: Simulator, customer: int, product_id: str, decision_id: str, channel: str,
               occurred_at: datetime, rng: np.random.Generator) -> ProductPurchased:
    """The purchase an accepted offer turns into, and the simulator's state updated with it."""
    j = sim.catalog.index[product_id]
    amount = int(sim.purchase_amounts(np.array([customer]), np.array([j]), rng)[0])
    sim.record_purchases(np.array([customer]), np.array([j]))
    digest = hashlib.sha256(f"{decision_id}|{product_id}".encode()).hexdigest()[:32]
    return ProductPurchased(
        event_id=f"sale-{digest}", customer_id=f"C{customer:09d}", occurred_at=occurred_at.astimezone(timezone.utc),
        source=_SALE_SOURCE[channel], product_id=product_id, amount_minor=amount, channel=SALE_CHANNEL[channel],
        decision_id=decision_id)


def drift_recovery_hours(hours: Sequence[float], is_target: Sequence[bool], drift_hour: float,
                         window: int = 200, tail: int | None = None,
                         baseline: tuple[Sequence[float], Sequence[bool]] | None = None) -> float | None:
    """Simulated hours from ``drift_hour`` until a ranking follows a drift: the target product's
    share of top offers (the product whose appeal rose; for one whose appeal fell, pass "not that
    product"), over the ranking's last ``window`` decisions, first reaches half way from its level
    before the drift to its new level (over its last ``tail`` decisions; default: the later half of
    those after the drift, as the new level can fade again when the customers who wanted the
    product have bought it or declined it).

    ``baseline`` (hours, is_target of a ranking that learns nothing, run on the same traffic): the
    share is taken as the difference from the baseline's share over its last ``window`` decisions
    at the same hour (before the drift: all of each; at the end: the last ``tail`` of each). What
    moves both rankings alike (the target's share rising as customers' purchases and declines'
    cool-downs use other products up) is then taken out, and what is left is what the ranking
    learned. ``hours`` and ``is_target`` are per decision, in time order. None when the share (or
    the difference) did not rise beyond twice its sampling noise, or there are too few decisions."""
    t = np.asarray(hours, dtype=np.float64)
    x = np.asarray(is_target, dtype=np.float64)
    before, after, t_after = x[t < drift_hour], x[t >= drift_hour], t[t >= drift_hour]
    tail = tail or len(after) // 2
    if len(before) < window or len(after) < window + tail:
        return None

    def level(share: np.ndarray, n: int) -> tuple[float, float]:
        mean = float(share.mean()) if n else 0.0
        return mean, mean * (1 - mean) / n if n else 0.0

    (b_mean, b_var), (a_mean, a_var) = level(before, len(before)), level(after[-tail:], tail)
    rolling = np.convolve(after, np.ones(window) / window, mode="valid")  # rolling[k] covers after[k:k+window]
    at = t_after[window - 1:]  # the hour each rolling share is reached
    if baseline is not None:
        bt = np.asarray(baseline[0], dtype=np.float64)
        bx = np.asarray(baseline[1], dtype=np.float64)
        b_before, b_after = bx[bt < drift_hour], bx[bt >= drift_hour]
        b_tail = min(len(b_after), round(tail * len(b_after) / len(after)))  # the same stretch of time
        if len(b_before) < window or len(b_after) < window + b_tail:
            return None
        (bb_mean, bb_var), (ba_mean, ba_var) = level(b_before, len(b_before)), level(b_after[-b_tail:], b_tail)
        b_mean, b_var, a_mean, a_var = b_mean - bb_mean, b_var + bb_var, a_mean - ba_mean, a_var + ba_var
        sums = np.concatenate(([0.0], np.cumsum(bx)))
        seen = np.searchsorted(bt, at, side="right")  # baseline decisions up to each hour
        ok = seen >= window
        rolling, at = rolling[ok], at[ok]
        seen = seen[ok]
        rolling = rolling - (sums[seen] - sums[seen - window]) / window
    if a_mean - b_mean <= 2 * np.sqrt(a_var + b_var):  # no rise beyond sampling noise: it did not follow
        return None
    reached = np.nonzero(rolling >= b_mean + (a_mean - b_mean) / 2)[0]
    if not len(reached):
        return None
    return float(at[reached[0]] - drift_hour)


def multiplier_follow_hours(hours: Sequence[float], values: Sequence[float], drift_hour: float,
                            factor: float) -> float | None:
    """Simulated hours from ``drift_hour`` until a learned multiplier of a product whose appeal
    was multiplied by ``factor`` has moved half way there on the log scale: its first value at or
    beyond (in the drift's direction) its last value before the drift x sqrt(``factor``).
    ``hours`` and ``values`` are snapshots in time order. None when it never got there, or there
    is no snapshot before the drift."""
    t = np.asarray(hours, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    before = np.nonzero(t < drift_hour)[0]
    if not len(before) or factor == 1.0:
        return None
    target = v[before[-1]] * np.sqrt(factor)
    after = t >= drift_hour
    crossed = after & ((v >= target) if factor > 1 else (v <= target))
    reached = np.nonzero(crossed)[0]
    return float(t[reached[0]] - drift_hour) if len(reached) else None
