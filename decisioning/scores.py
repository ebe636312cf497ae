"""What the decisioning chain needs of a ranking model (the port ``RankingModel``) and what it
gets back (``ScoredProducts``). ``recommender.model.NboModel`` is the implementation; tests use
tiny hand-made models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class ScoredProducts:
    """Per product, in catalog order (``product_ids``): ``propensity`` in [0, 1],
    ``similar_boost`` >= 0 (fades with time since the purchase that triggered it),
    ``because_of`` (that purchase's product id, or None) and ``score`` (the ranking blend)."""

    product_ids: tuple[str, ...]
    propensity: np.ndarray  # float64 [P]
    similar_boost: np.ndarray  # float64 [P]
    because_of: tuple[str | None, ...]  # [P]
    score: np.ndarray  # float64 [P]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            pid: {"propensity": float(self.propensity[i]), "similar_boost": float(self.similar_boost[i]),
                  "because_of": self.because_of[i], "score": float(self.score[i])}
            for i, pid in enumerate(self.product_ids)
        }

    def top(self, k: int) -> list[str]:
        """The ``k`` best product ids by ``score`` (ties: catalog order)."""
        order = np.argsort(-self.score, kind="stable")[:k]
        return [self.product_ids[i] for i in order]


#: Older name, kept for callers written against it.
Scores = ScoredProducts


class RankingModel(Protocol):
    """``version`` names the trained artifact; ``product_ids`` is the order of every score array;
    ``similar_weight`` (>= 0) is the weight of "similar after purchase" the model was tuned and
    saved with: the chain's ``similar_boost`` step ranks with it (``score`` uses it too).

    ``informed``: product id -> how much that product's propensity is the model's own evidence,
    in [0, 1] (0: the model knows nothing beyond the product's popularity; ``NboModel``: the
    shrinkage weight n / (n + k) of its n labelled purchases); None when the model does not say
    (every propensity counts as informed). Read it through ``informed_weights``: a model written
    before the attribute existed has none."""

    version: str
    product_ids: tuple[str, ...]
    informed: Mapping[str, float] | None

    @property
    def similar_weight(self) -> float: ...

    def score(self, held: Mapping[str, float], tokens: Mapping[str, float],
              recent_purchases: Sequence[tuple[str, float]], now_s: float,
              segment: str | None) -> ScoredProducts: ...


def informed_weights(model: RankingModel) -> Mapping[str, float] | None:
    """The model's ``informed`` map (product id -> [0, 1]), or None when it has none: a model
    without the attribute, or one whose propensities are all its own."""
    return getattr(model, "informed", None)
