"""The values the decisioning steps pass along: a candidate ``Offer``, the ``Decision`` being
built, and the ``Context`` one request's chain works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from domain.catalog import Catalog, Product
from domain.features import FeatureParams, tokens_at
from domain.learning import Evidence
from decisioning.experiment import NO_LOOP, TREATMENT, Arm, LoopParams, generator
from decisioning.policy import Policy
from decisioning.scores import RankingModel
from domain.state import CustomerState


@dataclass
class Offer:
    """One candidate product. ``propensity`` in [0, 1] (the model's chance of taking it);
    ``similar_boost`` >= 0; ``score`` is the arbitrated priority (higher first). ``reason_facts``
    are the customer's facts at the decision time that made ``reason_codes`` true (name -> a JSON
    scalar, e.g. ``{"large_inflow_recent": True, "large_inflow_days_ago": 3}``); None until the
    ``reasons`` step ran."""

    product: Product
    propensity: float
    similar_boost: float
    score: float
    because_of: str | None
    reason_codes: list[str]
    reason_en: str = ""
    reason_zh: str = ""
    reason_facts: dict[str, Any] | None = None
    moved_in_by_boost: bool = False  # set by ``select``: in the list only thanks to the similar boost
    #: Set by ``scoring`` for a product the model was not trained on: where its cold-start
    #: propensity came from (``"family"`` or ``"catalog"``, see ``scoring``); None: the model's own.
    cold_start_from: str | None = None
    #: Set by ``calibration`` when online evidence or exploration changed what the offer is ranked
    #: by: propensity x the posterior mean of the ratio observed / expected, or a Thompson draw
    #: of it; None: the model's propensity.
    calibrated: float | None = None
    #: Set by ``calibration`` on an explore channel: (shape, scale) of the Gamma posterior of the
    #: calibrated value that ``calibrated`` was drawn from.
    posterior: tuple[float, float] | None = None
    #: The probability with which the policy showed this offer at its position (set by ``select``):
    #: 1.0 for a deterministic ranking, 1/n for the control arm's uniform draw from n, a Monte
    #: Carlo estimate for a Thompson-sampled ranking.
    probability: float = 1.0


@dataclass
class Decision:
    """What the chain decided: offers best first, the steps that ran, and why others were left out."""

    offers: list[Offer]
    rules_applied: list[str]
    degraded: bool = False
    service_action: str | None = None  # a key of reasons.SERVICE_ACTIONS, e.g. "resolve_complaint"
    excluded: dict[str, str] = field(default_factory=dict)  # product id -> rule that excluded it
    max_offers: int | None = None  # set by the contact policy when a daily cap leaves room for fewer
    arm: Arm = TREATMENT  # the customer's experiment arm (``experiment.arm_of``)
    policy_version: str = ""  # ``Policy.version`` of the policy decided with


@dataclass
class Context:
    """One request's working set. ``now_s`` is the decision time, UTC epoch seconds; ``params`` the
    fold's parameters the state was made with (its base currency and large-inflow threshold);
    ``evidence`` the online evidence (``adapters.keys.learn_key``'s fields -> ``Evidence``);
    ``seed`` the request's randomness (``rng`` is made from it when a step first draws)."""

    state: CustomerState
    model: RankingModel
    catalog: Catalog
    policy: Policy
    channel: str
    now_s: float
    limit: int = 3
    candidates: dict[str, Offer] = field(default_factory=dict)
    decision: Decision = field(default_factory=lambda: Decision([], []))
    loop: LoopParams = NO_LOOP
    evidence: Mapping[str, Evidence] = field(default_factory=dict)
    seed: int = 0
    arm: Arm = TREATMENT
    _tokens: dict[str, float] | None = field(default=None, repr=False)
    params: FeatureParams = field(default_factory=FeatureParams)
    _rng: np.random.Generator | None = field(default=None, repr=False)

    @property
    def rng(self) -> np.random.Generator:
        """The request's generator, seeded with ``seed`` on first use (a deterministic ranking
        never pays for it; ``experiment.generator``: valid while this ranking runs)."""
        if self._rng is None:
            self._rng = generator(self.seed)
        return self._rng

    @property
    def tokens(self) -> dict[str, float]:
        """The customer's behaviour tokens at ``now_s`` (scoring and reasons both read them; made once)."""
        if self._tokens is None:
            self._tokens = tokens_at(self.state, self.now_s)
        return self._tokens

    def exclude(self, product_id: str, rule: str) -> None:
        self.candidates.pop(product_id, None)
        self.decision.excluded[product_id] = rule
