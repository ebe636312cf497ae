"""Ranking models: what the decisioning chain asks for a customer's propensity per product.

Every model answers ``score(held, tokens, recent_purchases, now_s, segment) -> Scores``:

- ``held``: product id -> confidence weight of products the customer holds;
- ``tokens``: behaviour token -> decayed weight (``recommender.features.tokens_at``);
- ``recent_purchases``: ``(product_id, at_s)`` newest first, for "similar after purchase";
- ``now_s``: the decision time (UTC epoch seconds); ``segment``: the value tier, for cold start.

``Scores`` holds, in catalog order, ``propensity`` (what the model believes, in [0, 1]),
``similar_boost`` (fades with time since the purchase that triggered it) and ``because_of``
(that purchase's product id, for the reason text). Pure numpy; no I/O.

``PriorModel`` needs no training: a static prior by product family, so the service can rank
before any model was trained. Trained models live in ``recommender.training``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import numpy as np

from recommender.catalog import Catalog

DAY_S = 86_400.0

#: Rough share of customers holding each family in a Chinese retail bank, for the prior.
FAMILY_PRIOR: dict[str, float] = {
    "service": 0.5, "deposit": 0.4, "time_deposit": 0.25, "credit_card": 0.2, "fund": 0.12,
    "wealth": 0.1, "insurance": 0.08, "cd": 0.06, "gold": 0.04, "loan": 0.05,
}


@dataclass(frozen=True)
class Scores:
    product_ids: tuple[str, ...]
    propensity: np.ndarray  # float [P]
    similar_boost: np.ndarray  # float [P]
    because_of: tuple[str | None, ...]  # [P]

    def as_dict(self) -> dict[str, tuple[float, float, str | None]]:
        return {pid: (float(self.propensity[i]), float(self.similar_boost[i]), self.because_of[i])
                for i, pid in enumerate(self.product_ids)}


class RankingModel(Protocol):
    version: str
    product_ids: tuple[str, ...]

    def score(self, held: Mapping[str, float], tokens: Mapping[str, float],
              recent_purchases: Sequence[tuple[str, float]], now_s: float, segment: str | None) -> Scores: ...


class PriorModel:
    """Ranks by a static family prior; the model of last resort. Version ``popularity``."""

    version = "popularity"

    def __init__(self, catalog: Catalog) -> None:
        self.product_ids = catalog.ids
        prior = np.array([FAMILY_PRIOR.get(p.family, 0.05) for p in catalog.products], dtype=np.float64)
        # Within a family, prefer the product with the lower entry bar.
        bar = np.array([p.min_assets_minor for p in catalog.products], dtype=np.float64)
        self._propensity = prior / (1.0 + np.log1p(bar / 1e6))

    def score(self, held: Mapping[str, float], tokens: Mapping[str, float],
              recent_purchases: Sequence[tuple[str, float]], now_s: float, segment: str | None) -> Scores:
        n = len(self.product_ids)
        return Scores(self.product_ids, self._propensity.copy(), np.zeros(n), (None,) * n)
