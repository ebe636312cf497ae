"""Off-policy evaluation: a candidate policy's acceptance rate estimated from logged decisions,
and the lift of the treatment arm over the control arm.

The unit is one shown offer: a logged decision ``i`` showed product ``a`` at rank ``r`` with
the probability ``p`` the logging policy had of showing ``a`` at ``r`` (``OfferedItem.probability``:
1.0 for a deterministic ranking, ``1/n`` for the control arm's uniform choice among ``n``
eligible products, less than 1 under exploration), and the customer accepted it (``y = 1``) or
not (declined, ignored or no answer: ``y = 0``). A target policy ``pi`` fills the same slots
(same customer state, channel and number of offers); ``pi(a | x, r)`` is its probability of
showing ``a`` at ``r`` (for a deterministic ranking: 1 where its rank-``r`` product is ``a``,
else 0). With ``w = pi / p``:

    IPS    V = (1/n) sum w y                                   unbiased when p > 0 wherever pi > 0
    SNIPS  V = sum w y / sum w                                 biased O(1/n), lower variance
    DR     V = (1/n) sum [ q(x, pi) + w (y - q(x, a)) ]        q: a reward model (here the
                                                               candidate's own propensities)

Intervals are 95 % normal approximations: IPS and DR from the standard error of their per-unit
terms, SNIPS by the delta method for a ratio (``sum w^2 (y - V)^2 / (sum w)^2``). The logging
policy's observed rate is the plain mean of ``y`` with the same normal interval.

Support: IPS can only credit a target where the logger gave it a chance. The treatment arm ranks
deterministically (``p = 1``), so a candidate that differs from the serving ranking is seen on
treatment decisions only where both agree; the control arm (a uniform random eligible offer)
and mobile exploration are what give it support elsewhere. ``evaluate`` reports how many units
the target agreed with (``matched``) and the effective sample size ``(sum w)^2 / sum w^2``.

Two checks that the logging is right (``bench/loop.py`` runs both on a simulated log):

- the mean importance weight ``(1/n) sum pi / p`` of any target the logger gave support to is 1
  in expectation, whatever the customers answered (``OpeReport.mean_weight``, with its interval):
  a logged probability that is not the one the policy drew with moves it away from 1;
- the IPS estimate of the serving ranking covers the treatment arm's observed rate, on each
  customer's **first** logged decision (``first_decisions``). Later decisions are not comparable
  across arms: a treatment customer has already been offered (and bought, or declined and been
  held back from) the products the ranking puts first, a control customer has not, so the
  serving ranking replayed on control customers' later states sells more than it does to the
  treated ones (measured: twice as much on a 12-day simulated run) without any error in the log.

``relative_lift`` is the treatment arm's relative lift over control, ``(p_t - p_c) / p_c``, with
a delta-method standard error: ``se^2 = var_t / p_c^2 + p_t^2 var_c / p_c^4`` where
``var = p (1 - p) / n`` (the arms are independent samples). The 95 % interval is the delta
method's on the log of the ratio, ``log(p_t / p_c) ± 1.96 sqrt(var_t / p_t^2 + var_c / p_c^2)``,
taken back (``exp(.) - 1``): with few control successes the linear interval ``lift ± 1.96 se``
reaches below -100 %, this one stays above it and is wider upwards. The one computation is
``recommender.lift.lift_interval``, which the effectiveness report uses too.

Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Iterable, Mapping, Sequence

import numpy as np

from decisioning.chain import rank
from domain.features import FeatureParams, apply
from domain.state import CustomerState
from recommender.lift import lift_interval

#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """An estimated acceptance rate (0..1) with its 95 % interval; ``n`` units behind it."""

    value: float
    low: float
    high: float
    se: float
    n: int

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


def _normal(terms: np.ndarray) -> Estimate:
    n = int(terms.size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, 0)
    value = float(terms.mean())
    se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return Estimate(value, value - Z95 * se, value + Z95 * se, se, n)


def _arrays(rewards: Sequence[float], logged_p: Sequence[float],
            target_p: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(rewards, dtype=np.float64)
    p = np.asarray(logged_p, dtype=np.float64)
    pi = np.asarray(target_p, dtype=np.float64)
    if not (y.shape == p.shape == pi.shape) or y.ndim != 1:
        raise ValueError("rewards, logged and target probabilities must be 1-d arrays of one length")
    if np.any((p <= 0) | (p > 1)) or np.any((pi < 0) | (pi > 1)):
        raise ValueError("logged probabilities must be in (0, 1] and target probabilities in [0, 1]")
    return y, p, pi


def observed(rewards: Sequence[float]) -> Estimate:
    """The logging policy's own rate: the mean reward, normal 95 % interval."""
    return _normal(np.asarray(rewards, dtype=np.float64))


def ips(rewards: Sequence[float], logged_p: Sequence[float], target_p: Sequence[float]) -> Estimate:
    """Inverse propensity scoring: mean of ``(pi / p) y`` (module docstring)."""
    y, p, pi = _arrays(rewards, logged_p, target_p)
    return _normal(pi / p * y)


def snips(rewards: Sequence[float], logged_p: Sequence[float], target_p: Sequence[float]) -> Estimate:
    """Self-normalised IPS: ``sum w y / sum w``, delta-method interval. NaN when no unit has ``w > 0``."""
    y, p, pi = _arrays(rewards, logged_p, target_p)
    w = pi / p
    total = float(w.sum())
    if total <= 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, int(y.size))
    value = float((w * y).sum() / total)
    se = float(math.sqrt((w**2 * (y - value) ** 2).sum()) / total)
    return Estimate(value, value - Z95 * se, value + Z95 * se, se, int(y.size))


def doubly_robust(rewards: Sequence[float], logged_p: Sequence[float], target_p: Sequence[float],
                  q_logged: Sequence[float], q_target: Sequence[float]) -> Estimate:
    """Doubly robust: the reward model's value of the target's choice (``q_target``, the expected
    reward of what ``pi`` shows in the unit's slot) plus the IPS-weighted residual of the logged
    action (``y - q_logged``). Unbiased if either the probabilities or the reward model are right."""
    y, p, pi = _arrays(rewards, logged_p, target_p)
    ql = np.asarray(q_logged, dtype=np.float64)
    qt = np.asarray(q_target, dtype=np.float64)
    if ql.shape != y.shape or qt.shape != y.shape:
        raise ValueError("q_logged and q_target must have one value per unit")
    return _normal(qt + pi / p * (y - ql))


def effective_sample_size(logged_p: Sequence[float], target_p: Sequence[float]) -> float:
    """``(sum w)^2 / sum w^2``: how many units the weighted estimate is worth."""
    w = np.asarray(target_p, dtype=np.float64) / np.asarray(logged_p, dtype=np.float64)
    sq = float((w**2).sum())
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


# ---- logs -> units ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One shown offer of a logged decision: the logged ``product_id`` at ``rank`` on ``channel``
    in ``arm``, its logged ``probability``, and whether it was accepted."""

    decision_id: str
    customer_id: str
    channel: str
    arm: str
    rank: int
    product_id: str
    probability: float
    accepted: bool
    at_s: float


def units_from_logs(decisions: Iterable[Mapping], outcomes: Iterable[Mapping]) -> list[Unit]:
    """Shown offers from decision records (``OfferDecisionMade`` as dicts) joined with outcome
    records (``OfferOutcomeRecorded`` as dicts) on (decision_id, product_id): accepted if any
    outcome for that offer was ``accepted``. Degraded decisions (fallback offers, not the policy's
    choice) and offers without a logged probability (records written before it existed) are left
    out; the caller can count them (``len(decisions)`` against the units)."""
    accepted = {(o["decision_id"], o["product_id"]) for o in outcomes if o.get("outcome") == "accepted"}
    units: list[Unit] = []
    for d in decisions:
        if d.get("degraded"):
            continue
        at_s = _epoch_s(d["occurred_at"])
        for offer in d.get("offers", ()):
            probability = offer.get("probability")
            if probability is None or not probability > 0:
                continue
            units.append(Unit(d["decision_id"], d["customer_id"], d["channel"], d.get("arm", "treatment"),
                              int(offer["rank"]), offer["product_id"], float(probability),
                              (d["decision_id"], offer["product_id"]) in accepted, at_s))
    return units


def _epoch_s(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class TargetSlate:
    """What a target policy shows for one logged decision: ``products`` best first (its rank-r
    product is ``products[r-1]``), and its reward model's expected acceptance of any product
    (``q``; missing products count 0)."""

    products: tuple[str, ...]
    q: Mapping[str, float]


@dataclass(frozen=True)
class OpeReport:
    """The logging policy's observed rate and a target's IPS, SNIPS and DR estimates, per shown offer."""

    units: int
    decisions: int
    matched: int
    effective_n: float
    observed: Estimate
    ips: Estimate
    snips: Estimate
    dr: Estimate | None
    by_arm: dict[str, Estimate]
    mean_weight: Estimate  # (1/n) sum pi / p: 1 in expectation when the logged probabilities are right

    def to_json(self) -> dict:
        return {"units": self.units, "decisions": self.decisions, "matched": self.matched,
                "effective_n": self.effective_n, "mean_weight": self.mean_weight.to_json(),
                "observed": self.observed.to_json(), "ips": self.ips.to_json(),
                "snips": self.snips.to_json(), "dr": self.dr.to_json() if self.dr else None,
                "observed_by_arm": {arm: e.to_json() for arm, e in self.by_arm.items()}}


def evaluate(units: Sequence[Unit], slates: Mapping[str, TargetSlate]) -> OpeReport:
    """IPS, SNIPS and DR of the deterministic target whose slate for each decision is
    ``slates[decision_id]`` (a decision without a slate: the target shows nothing there, weight 0).
    DR uses the slates' ``q``; it is left out (None) when no slate carries one."""
    y = np.array([u.accepted for u in units], dtype=np.float64)
    p = np.array([u.probability for u in units], dtype=np.float64)
    pi = np.zeros(len(units))
    q_logged = np.zeros(len(units))
    q_target = np.zeros(len(units))
    has_q = False
    for k, u in enumerate(units):
        slate = slates.get(u.decision_id)
        if slate is None:
            continue
        if len(slate.products) >= u.rank:
            chosen = slate.products[u.rank - 1]
            pi[k] = 1.0 if chosen == u.product_id else 0.0
            q_target[k] = float(slate.q.get(chosen, 0.0))
        q_logged[k] = float(slate.q.get(u.product_id, 0.0))
        has_q = has_q or bool(slate.q)
    by_arm = {arm: observed(y[[u.arm == arm for u in units]]) for arm in sorted({u.arm for u in units})}
    return OpeReport(
        units=len(units), decisions=len({u.decision_id for u in units}), matched=int(pi.sum()),
        effective_n=effective_sample_size(p, pi), observed=observed(y), ips=ips(y, p, pi), snips=snips(y, p, pi),
        dr=doubly_robust(y, p, pi, q_logged, q_target) if has_q else None, by_arm=by_arm,
        mean_weight=_normal(pi / p))


def first_decisions(units: Sequence[Unit]) -> list[Unit]:
    """The units of each customer's first logged decision (earliest ``at_s``, then decision id):
    where the arms' customers still have the same history (module docstring)."""
    first: dict[str, tuple[float, str]] = {}
    for u in units:
        key = (u.at_s, u.decision_id)
        if u.customer_id not in first or key < first[u.customer_id]:
            first[u.customer_id] = key
    return [u for u in units if first[u.customer_id][1] == u.decision_id]


def replay_slates(events: Iterable, decisions: Iterable[Mapping], model, catalog, policy,
                  params=None, limit: int = 50) -> dict[str, TargetSlate]:
    """The slate a model would have shown for each logged decision, ranked by the decisioning
    chain (``decisioning.rank``) on the customer's state at the decision time: the fold
    (``domain.features.apply``) of that customer's ``events`` (``schemas.events`` models: the
    history, the bank's events and the offer outcomes) that occurred at or before the decision's
    ``occurred_at``. ``q`` is the model's propensity of every product the chain kept (up to
    ``limit``); the slate is its first ``len(offers)`` products, as the logged decision showed.
    Returns ``{decision_id: TargetSlate}``; degraded decisions have none."""
    params = params or FeatureParams()
    # Reasons do not change the order; the replay does not need their text.
    policy = replace(policy, chain=tuple(step for step in policy.chain if step != "reasons"))
    wanted = [d for d in decisions if not d.get("degraded")]
    customers = {d["customer_id"] for d in wanted}
    timeline: list[tuple[float, int, int, object]] = []
    for k, event in enumerate(events):
        if event.customer_id in customers and event.type != "offer_decision":
            timeline.append((event.occurred_at.timestamp(), 0, k, event))
    for k, d in enumerate(wanted):
        timeline.append((_epoch_s(d["occurred_at"]), 1, k, d))  # events at the same instant come first
    timeline.sort(key=lambda item: item[:3])
    states: dict[str, CustomerState] = {}
    slates: dict[str, TargetSlate] = {}
    for at_s, kind, _, item in timeline:
        if kind == 0:
            cid = item.customer_id  # type: ignore[attr-defined]
            states[cid] = apply(states.get(cid) or CustomerState(cid), item, params)  # type: ignore[arg-type]
            continue
        d = item  # type: ignore[assignment]
        state = states.get(d["customer_id"]) or CustomerState(d["customer_id"])  # type: ignore[index]
        decision = rank(state, model, catalog, policy, d["channel"], at_s, limit)  # type: ignore[index]
        ranked = tuple(o.product.product_id for o in decision.offers)
        shown = len(d.get("offers", ()))  # type: ignore[union-attr]
        slates[d["decision_id"]] = TargetSlate(ranked[:shown], {  # type: ignore[index]
            o.product.product_id: float(o.propensity) for o in decision.offers})
    return slates


def target_probabilities(units: Sequence[Unit], slates: Mapping[str, TargetSlate]) -> np.ndarray:
    """pi per unit: 1 where the target's slate shows the unit's product at the unit's rank."""
    pi = np.zeros(len(units))
    for k, u in enumerate(units):
        slate = slates.get(u.decision_id)
        if slate is not None and len(slate.products) >= u.rank and slate.products[u.rank - 1] == u.product_id:
            pi[k] = 1.0
    return pi


def ips_difference(units: Sequence[Unit], candidate: Mapping[str, TargetSlate],
                   serving: Mapping[str, TargetSlate]) -> Estimate:
    """IPS of the ``candidate`` slates minus IPS of the ``serving`` ones on the same units, paired
    (per-unit terms ``(pi_c - pi_s) / p * y``, normal interval). Both are replayed on the same
    states, so what lifts both alike (the control customers' later states, module docstring)
    cancels, and where the two agree the terms are 0."""
    y, p, pi_c = _arrays([u.accepted for u in units], [u.probability for u in units],
                         target_probabilities(units, candidate))
    return _normal((pi_c - target_probabilities(units, serving)) / p * y)


def not_worse(difference: Estimate, margin: float) -> bool:
    """The promotion check: the candidate's IPS minus the serving model's on the same log
    (``ips_difference``) has a lower bound no lower than ``-margin``."""
    return math.isfinite(difference.low) and difference.low >= -margin


# ---- lift --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lift:
    """Relative lift of treatment over control, ``(p_t - p_c) / p_c``; ``se`` its delta-method
    standard error, ``low``..``high`` the 95 % interval (delta method on the log scale)."""

    treatment_rate: float
    control_rate: float
    lift: float
    se: float
    low: float
    high: float
    treatment_n: int
    control_n: int

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def relative_lift(treatment_successes: int, treatment_n: int, control_successes: int, control_n: int) -> Lift:
    """The lift of the treatment rate over the control rate and its interval
    (``recommender.lift.lift_interval``, the effectiveness report's too). NaN when an arm has no
    trials or the control rate is 0; no interval (NaN) without a treatment success."""
    pt = treatment_successes / treatment_n if treatment_n else math.nan
    pc = control_successes / control_n if control_n else math.nan
    if not (treatment_n and control_n) or pc == 0:
        return Lift(pt, pc, math.nan, math.nan, math.nan, math.nan, treatment_n, control_n)
    found = lift_interval(treatment_successes, treatment_n, control_successes, control_n)
    if found is None:  # no treatment success: the lift is -100 %, the log scale has no interval
        return Lift(pt, pc, -1.0, 0.0, math.nan, math.nan, treatment_n, control_n)
    return Lift(pt, pc, found.lift, found.se, found.low, found.high, treatment_n, control_n)
