"""Online evidence of acceptance: decayed counts of answers to offers, per product (and segment).

The stream adds each answer (accepted / declined / ignored) to an ``Evidence`` value together
with the model's propensity for the answered offer (``expected``: the sum of those propensities
is how many acceptances the model foresaw), in the fields ``evidence_fields`` names: the
product, the product in the customer's segment, the product on the channel, and all products
(on the channel). The decisioning chain calibrates multiplicatively: a ratio observed / expected
has the Gamma posterior

    shape = starting_evidence + accepts
    rate  = starting_evidence / prior_mean + expected

(``ratio_posterior``), and a customer's calibrated propensity is their model propensity times the
product's ratio. Every customer's propensity for a product moves by the same factor, so each
customer's own ranking among products the answers agree with is kept, while a product customers
accept less (or more) than the model foresaw moves down (or up) for everybody
(``decisioning.calibration`` has the levels and why).

Old answers weigh less: the counts halve every ``half_life_days`` (the same decay as the
customer features: an answer older than ``as_of_s`` is added already decayed by its age, so
folding the same answers in any order gives the same evidence, up to float rounding).

Times are UTC epoch seconds. Pure: no I/O, no clock. Stored in Redis by the stream
(``adapters.keys.learn_key``) as JSON ``[accepts, others, as_of_s, expected]``; a value of the
older form ``[accepts, others, as_of_s]`` has no ``expected`` (None): it informs no ratio, and
the stream starts such a field afresh at its next answer.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_S = 86_400.0
#: The evidence field of all products together (product ids are ``[a-z][a-z0-9_]*``).
ALL_PRODUCTS = "*"


def evidence_fields(product_id: str, segment: str, channel: str) -> tuple[str, ...]:
    """The evidence fields one answer adds to: the product over all customers, in the customer's
    segment, on the channel it was shown on; all products, and all products on the channel."""
    return (product_id, f"{product_id}|{segment}", f"{product_id}@{channel}", ALL_PRODUCTS, f"{ALL_PRODUCTS}@{channel}")


@dataclass(frozen=True)
class Evidence:
    """Decayed answer counts as of ``as_of_s``: ``accepts``, ``others`` (declined or ignored) and
    ``expected`` (the model propensities of the answered offers, summed; None: a value stored
    before it was kept, which informs no ratio)."""

    accepts: float = 0.0
    others: float = 0.0
    as_of_s: float = 0.0
    expected: float | None = 0.0

    @property
    def answers(self) -> float:
        return self.accepts + self.others

    def to_json(self) -> list[float]:
        if self.expected is None:
            return [self.accepts, self.others, self.as_of_s]
        return [self.accepts, self.others, self.as_of_s, self.expected]

    @classmethod
    def from_json(cls, value: list[float]) -> "Evidence":
        if len(value) == 3:
            accepts, others, as_of_s = value
            return cls(float(accepts), float(others), float(as_of_s), None)
        accepts, others, as_of_s, expected = value
        return cls(float(accepts), float(others), float(as_of_s), float(expected))


def _factor(elapsed_s: float, half_life_days: float) -> float:
    return 1.0 if elapsed_s <= 0 else 0.5 ** (elapsed_s / (half_life_days * DAY_S))


def decayed_to(evidence: Evidence, now_s: float, half_life_days: float) -> Evidence:
    """The evidence seen from ``now_s`` (never moved backwards in time)."""
    if now_s <= evidence.as_of_s:
        return evidence
    f = _factor(now_s - evidence.as_of_s, half_life_days)
    expected = None if evidence.expected is None else evidence.expected * f
    return Evidence(evidence.accepts * f, evidence.others * f, now_s, expected)


def add_answer(evidence: Evidence, accepted: bool, expected: float, at_s: float, half_life_days: float) -> Evidence:
    """``evidence`` with one answer given at ``at_s`` to an offer the model gave ``expected``
    (its propensity) added; a late answer counts already decayed. Evidence without ``expected``
    (the older stored form) starts afresh."""
    if evidence.expected is None:
        evidence = Evidence()
    current = decayed_to(evidence, at_s, half_life_days)
    weight = _factor(current.as_of_s - at_s, half_life_days)
    assert current.expected is not None
    accepts = current.accepts + weight if accepted else current.accepts
    others = current.others if accepted else current.others + weight
    return Evidence(accepts, others, current.as_of_s, current.expected + weight * expected)


def ratio_posterior(evidence: Evidence | None, prior_mean: float, starting_evidence: float) -> tuple[float, float]:
    """(shape, rate) of the Gamma posterior of the ratio observed / expected acceptances: a
    Gamma(``starting_evidence``, ``starting_evidence`` / ``prior_mean``) prior (mean
    ``prior_mean``, worth ``starting_evidence`` acceptances) updated by the decayed accepts
    (Poisson counts) over the decayed expected. Evidence None or without ``expected``: the prior."""
    shape, rate = starting_evidence, starting_evidence / prior_mean
    if evidence is None or evidence.expected is None:
        return shape, rate
    return shape + evidence.accepts, rate + evidence.expected


def ratio(evidence: Evidence | None, prior_mean: float, starting_evidence: float) -> float:
    """The posterior mean of ``ratio_posterior``."""
    shape, rate = ratio_posterior(evidence, prior_mean, starting_evidence)
    return shape / rate
