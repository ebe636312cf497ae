"""Scoring: the model's live propensity for each candidate (the customer's current state folded
in on this request), then the fading "similar after purchase" boost, weighted by the model's own
tuned ``similar_weight`` (what ``nbo tune`` / ``nbo train --params`` chose) unless the policy pins
one (``Policy.similar_weight_override``).

A product the model was not trained on (launched after it, see ``NBO_CATALOG__PATH`` and
docs/CATALOG.md) has no score of its own. It gets a cold-start propensity: the mean of this
customer's propensities for the other products of its family that the model knows and the
catalog still sells, leaving out those scored 0 because the customer holds them
(``cold_start_from = "family"``); with none, the same mean over every such product
(``"catalog"``); with none at all, 0. No similar-after-purchase boost and no ``because_of``: the
model has no evidence about the product itself, so the reasons step names it ``new_product`` and
says nothing personal about it."""

from __future__ import annotations

from functools import lru_cache

from decisioning.context import Context, Offer
from decisioning.memo import Memo
from decisioning.policy import Policy
from decisioning.scores import RankingModel
from domain.catalog import Catalog
from domain.features import holdings_weights


def scoring(ctx: Context) -> None:
    state = ctx.state
    scores = ctx.model.score(
        holdings_weights(state), ctx.tokens,
        [(p, float(t)) for p, t in state.recent_purchases], ctx.now_s, state.value_tier,
    )
    index = _positions(scores.product_ids)
    propensity, boost = scores.propensity.tolist(), scores.similar_boost.tolist()  # Python floats, once
    because_of = scores.because_of
    unknown: list[Offer] | None = None
    for pid, offer in ctx.candidates.items():
        i = index.get(pid)
        if i is None:  # a product the model was not trained on: cold start, below
            if unknown is None:
                unknown = []
            unknown.append(offer)
            continue
        offer.propensity = offer.score = propensity[i]
        offer.similar_boost = boost[i]
        offer.because_of = because_of[i]
    if unknown is not None:
        cold_start_scores(unknown, propensity, scores.product_ids, ctx.catalog)


def cold_start_scores(offers: list[Offer], propensity: list[float], product_ids: tuple[str, ...],
                      catalog: Catalog) -> None:
    """Give each offer of a product the model does not know the cold-start propensity (module
    docstring): ``propensity`` is the model's, in ``product_ids`` order, for this customer."""
    by_family, known = _known_positions(catalog, product_ids)
    everything: list[float] | None = None  # made only for a family the model knows no product of
    for offer in offers:
        values = [p for p in [propensity[i] for i in by_family.get(offer.product.family, ())] if p > 0]
        offer.cold_start_from = "family"
        if not values:
            if everything is None:
                everything = [p for p in [propensity[i] for i in known] if p > 0]
            values, offer.cold_start_from = everything, "catalog"
        offer.propensity = offer.score = sum(values) / len(values) if values else 0.0
        offer.similar_boost, offer.because_of = 0.0, None


def _known_positions(catalog: Catalog, product_ids: tuple[str, ...]) -> tuple[dict[str, list[int]], list[int]]:
    """(family -> positions in ``product_ids`` of the catalog's products of that family, all those
    positions): the products both the model and the catalog have. Made once per catalog and model."""
    def compute() -> tuple[dict[str, list[int]], list[int]]:
        by_family: dict[str, list[int]] = {}
        known: list[int] = []
        for i, pid in enumerate(product_ids):
            if pid in catalog:
                by_family.setdefault(catalog.get(pid).family, []).append(i)
                known.append(i)
        return by_family, known
    return _KNOWN.get((catalog, product_ids), (), compute)


_KNOWN: Memo[tuple[dict[str, list[int]], list[int]]] = Memo(max_entries=64)


@lru_cache(maxsize=8)
def _positions(product_ids: tuple[str, ...]) -> dict[str, int]:
    """Product id -> position in a model's score arrays (a model has one order; made once)."""
    return {pid: i for i, pid in enumerate(product_ids)}


def similar_weight(model: RankingModel, policy: Policy) -> float:
    """The weight of "similar after purchase" that serves: the model's tuned one, unless
    marketing pinned one in the policy file (``similar_weight_override``, off by default)."""
    override = policy.similar_weight_override
    return model.similar_weight if override is None else override


def similar_boost(ctx: Context) -> None:
    """score = propensity x (1 + similar_weight x boost), with ``similar_weight(model, policy)``
    (the calibrated propensity when a policy orders ``calibration`` before this step)."""
    weight = similar_weight(ctx.model, ctx.policy)
    for offer in ctx.candidates.values():
        if offer.similar_boost > 0:
            base = offer.propensity if offer.calibrated is None else offer.calibrated
            offer.score = base * (1.0 + weight * offer.similar_boost)
