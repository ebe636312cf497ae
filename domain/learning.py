"""Online evidence of acceptance: decayed counts of answers to offers, per product (and segment).

The stream adds each answer (accepted / declined / ignored) to an ``Evidence`` value; the
decisioning chain turns the evidence plus the model's own propensity into a Beta posterior:

    alpha = propensity * starting_evidence + accepts
    beta  = (1 - propensity) * starting_evidence + others

so a product nobody has answered yet ranks by the model alone, and every answer moves it.
Old answers weigh less: both counts halve every ``half_life_days`` (the same decay as the
customer features: an answer older than ``as_of_s`` is added already decayed by its age, so
folding the same answers in any order gives the same evidence, up to float rounding).

Times are UTC epoch seconds. Pure: no I/O, no clock. Stored in Redis by the stream
(``adapters.keys.learn_key``) as JSON ``[accepts, others, as_of_s]``.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_S = 86_400.0


@dataclass(frozen=True)
class Evidence:
    """Decayed answer counts as of ``as_of_s``: ``accepts`` and ``others`` (declined or ignored)."""

    accepts: float = 0.0
    others: float = 0.0
    as_of_s: float = 0.0

    def to_json(self) -> list[float]:
        return [self.accepts, self.others, self.as_of_s]

    @classmethod
    def from_json(cls, value: list[float]) -> "Evidence":
        accepts, others, as_of_s = value
        return cls(float(accepts), float(others), float(as_of_s))


def _factor(elapsed_s: float, half_life_days: float) -> float:
    return 1.0 if elapsed_s <= 0 else 0.5 ** (elapsed_s / (half_life_days * DAY_S))


def decayed_to(evidence: Evidence, now_s: float, half_life_days: float) -> Evidence:
    """The evidence seen from ``now_s`` (never moved backwards in time)."""
    if now_s <= evidence.as_of_s:
        return evidence
    f = _factor(now_s - evidence.as_of_s, half_life_days)
    return Evidence(evidence.accepts * f, evidence.others * f, now_s)


def add_answer(evidence: Evidence, accepted: bool, at_s: float, half_life_days: float) -> Evidence:
    """``evidence`` with one answer given at ``at_s`` added (a late answer counts already decayed)."""
    current = decayed_to(evidence, at_s, half_life_days)
    weight = _factor(current.as_of_s - at_s, half_life_days)
    if accepted:
        return Evidence(current.accepts + weight, current.others, current.as_of_s)
    return Evidence(current.accepts, current.others + weight, current.as_of_s)


def posterior(evidence: Evidence, propensity: float, starting_evidence: float) -> tuple[float, float]:
    """Beta(alpha, beta) of acceptance for one customer and product: the model's ``propensity``
    (clipped into (0, 1)) worth ``starting_evidence`` answers, plus the decayed answers."""
    p = min(max(propensity, 1e-6), 1.0 - 1e-6)
    return p * starting_evidence + evidence.accepts, (1.0 - p) * starting_evidence + evidence.others
