"""The decisioning chain: an ordered list of named, pure steps (``Policy.chain``).

``rank(state, model, catalog, policy, channel, now_s, limit) -> Decision`` (alias ``decide``)
runs, by default:

1. ``eligibility``    — not held (unless multi-hold), age, minimum assets, risk level not above the
                        customer's tolerance, tier fit, channel allowed;
2. ``scoring``        — the model's live propensity for each product;
3. ``similar_boost``  — plus the fading "similar after purchase" boost;
4. ``contact_policy`` — reason-dependent cool-down after a decline, daily caps per channel and in
                        total, no selling during an open complaint or to segment G (a service
                        action instead);
5. ``arbitration``    — priority = propensity x value x channel fit x business lever;
6. ``select``         — keep the best ``limit`` (fewer if a daily cap leaves less room);
7. ``reasons``        — reason codes, a sentence in English and Chinese and the facts that make
                        it true for this customer (for those kept; see ``reasons.py``).

``fallback`` (in ``fallback.py``) gives safe offers marked ``degraded`` when there is no state or
no model. A customer the bank knows nothing about (no event, no profile) gets ``cold_start``
offers instead of the chain: low-risk, no credit, nothing personal claimed. Each step is ``step(ctx) -> None`` on a ``Context``; steps are looked up by name, so a
policy file can reorder or leave one out. Time comes in as ``now_s`` (UTC epoch seconds);
nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from typing import Callable

from domain.catalog import Catalog
from domain.features import FeatureParams
from decisioning.arbitration import arbitration
from decisioning.context import Context, Decision, Offer
from decisioning.eligibility import eligibility
from decisioning.contact import contact_policy
from decisioning.fallback import cold_start, knows_nothing
from decisioning.policy import STEP_NAMES, Policy
from decisioning.reasons import reasons
from decisioning.scoring import scoring, similar_boost, similar_weight
from decisioning.scores import RankingModel
from domain.state import CustomerState


def select(ctx: Context) -> None:
    """Keep the best ``ctx.limit`` candidates (ties: product id), so later steps work on few.

    A kept offer that would not have been kept without the similar-after-purchase boost is
    marked ``moved_in_by_boost``: only then does its reason name the purchase (the boost
    multiplies the priority, so dividing it out gives the priority without it)."""
    limit = ctx.limit
    if ctx.decision.max_offers is not None:
        limit = min(limit, ctx.decision.max_offers)
    ranked = sorted(ctx.candidates.values(), key=lambda o: (-o.score, o.product.product_id))
    kept = ranked[:limit]
    if any(o.similar_boost > 0 for o in kept):
        weight = similar_weight(ctx.model, ctx.policy)
        if weight > 0:
            def unboosted(o: Offer) -> tuple[float, str]:
                return -o.score / (1.0 + weight * o.similar_boost), o.product.product_id

            kept_anyway = {o.product.product_id for o in sorted(ranked, key=unboosted)[:limit]}
            for o in kept:
                o.moved_in_by_boost = o.similar_boost > 0 and o.product.product_id not in kept_anyway
    ctx.candidates = {o.product.product_id: o for o in kept}


STEPS: dict[str, Callable[[Context], None]] = {
    "eligibility": eligibility, "scoring": scoring, "similar_boost": similar_boost,
    "contact_policy": contact_policy, "arbitration": arbitration, "select": select, "reasons": reasons,
}
assert tuple(STEPS) == STEP_NAMES, "a new step is named in policy.STEP_NAMES too (the policy file's vocabulary)"


def rank(state: CustomerState, model: RankingModel, catalog: Catalog, policy: Policy,
         channel: str, now_s: float, limit: int, params: FeatureParams | None = None) -> Decision:
    """Run the chain; at most ``limit`` offers (fewer if a daily cap leaves less room), best first.
    Ties break on product id, so the same input always gives the same answer. A customer the bank
    knows nothing about gets the cold-start offers (``fallback.cold_start``). ``params``: the fold's
    parameters the state was made with (default ``FeatureParams()``: CNY)."""
    if not state.events_applied and knows_nothing(state):
        return cold_start(state, catalog, channel, limit)
    ctx = Context(state, model, catalog, policy, channel, now_s, limit)
    if params is not None:
        ctx.params = params
    for name in policy.chain:
        STEPS[name](ctx)
        ctx.decision.rules_applied.append(name)
    select(ctx)  # a chain without "select" still answers with at most ``limit``
    ctx.decision.offers = sorted(ctx.candidates.values(), key=lambda o: (-o.score, o.product.product_id))
    return ctx.decision


decide = rank
