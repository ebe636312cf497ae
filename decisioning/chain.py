"""The decisioning chain: an ordered list of named, pure steps (``Policy.chain``).

``rank(state, model, catalog, policy, channel, now_s, limit) -> Decision`` (alias ``decide``)
runs, by default:

1. ``eligibility``    — not held (unless multi-hold), age, minimum assets, risk level not above the
                        customer's tolerance, tier fit, channel allowed;
2. ``scoring``        — the model's live propensity for each product;
3. ``similar_boost``  — plus the fading "similar after purchase" boost;
4. ``calibration``    — the propensity corrected by the online evidence (posterior mean), or a
                        Thompson sample of it on an explore channel (``calibration.py``);
5. ``contact_policy`` — reason-dependent cool-down after a decline, daily caps per channel and in
                        total, no selling during an open complaint or to segment G (a service
                        action instead);
6. ``arbitration``    — priority = propensity x value x channel fit x business lever;
7. ``select``         — keep the best ``limit`` (fewer if a daily cap leaves less room), each with
                        the probability the policy showed it there; in the control arm
                        (``experiment.py``) a uniform draw from what the rules left instead;
8. ``reasons``        — reason codes, a sentence in English and Chinese and the facts that make
                        it true for this customer (for those kept; see ``reasons.py``).

``fallback`` (in ``fallback.py``) gives safe offers marked ``degraded`` when there is no state or
no model. A customer the bank knows nothing about (no event, no profile) gets ``cold_start``
offers instead of the chain: low-risk, no credit, nothing personal claimed. Each step is ``step(ctx) -> None`` on a ``Context``; steps are looked up by name, so a
policy file can reorder or leave one out. Time comes in as ``now_s`` (UTC epoch seconds);
nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from typing import Callable, Mapping

from domain.catalog import Catalog
from domain.features import FeatureParams
from domain.learning import Evidence
from decisioning.arbitration import arbitration
from decisioning.calibration import calibration, thompson_probabilities
from decisioning.context import Context, Decision, Offer
from decisioning.eligibility import eligibility
from decisioning.contact import contact_policy
from decisioning.experiment import CONTROL, NO_LOOP, TREATMENT, LoopParams, arm_of, uniform_choice
from decisioning.fallback import cold_start, fallback, knows_nothing
from decisioning.policy import STEP_NAMES, Policy
from decisioning.reasons import reasons
from decisioning.scoring import scoring, similar_boost, similar_weight
from decisioning.scores import RankingModel
from domain.state import CustomerState


def _room(ctx: Context) -> int:
    limit = ctx.limit
    if ctx.decision.max_offers is not None:
        limit = min(limit, ctx.decision.max_offers)
    return limit


def select(ctx: Context) -> None:
    """Keep the best ``ctx.limit`` candidates (ties: product id), so later steps work on few; in
    the control arm, ``control_select`` instead.

    Each kept offer's ``probability``: 1.0 when the ranking is deterministic; when
    ``calibration`` ranked by a Thompson sample, the estimated probability of that offer at that
    position (``calibration.thompson_probabilities``).

    A kept offer that would not have been kept without the similar-after-purchase boost is
    marked ``moved_in_by_boost``: only then does its reason name the purchase (the boost
    multiplies the priority, so dividing it out gives the priority without it)."""
    if ctx.arm == CONTROL:
        control_select(ctx)
        return
    limit = _room(ctx)
    ranked = sorted(ctx.candidates.values(), key=lambda o: (-o.score, o.product.product_id))
    kept = ranked[:limit]
    if kept and kept[0].posterior is not None and all(o.posterior is not None for o in ranked):
        for o, probability in zip(kept, thompson_probabilities(ranked, kept, ctx.rng)):
            o.probability = probability
    if any(o.similar_boost > 0 for o in kept):
        weight = similar_weight(ctx.model, ctx.policy)
        if weight > 0:
            def unboosted(o: Offer) -> tuple[float, str]:
                return -o.score / (1.0 + weight * o.similar_boost), o.product.product_id

            kept_anyway = {o.product.product_id for o in sorted(ranked, key=unboosted)[:limit]}
            for o in kept:
                o.moved_in_by_boost = o.similar_boost > 0 and o.product.product_id not in kept_anyway
    ctx.candidates = {o.product.product_id: o for o in kept}


def control_select(ctx: Context) -> None:
    """The control arm's ``select``: every rule that ran before still holds (the candidates are
    what eligibility and the contact policy left); a product marketing stopped on this channel
    (lever or channel fit 0) is left out too (``stopped_by_lever``). Then ``limit`` of them drawn
    uniformly in a random order (``experiment.uniform_choice``, seeded), each with probability
    1/n; none on a channel in ``control_no_offer_channels`` (``control_no_offer``)."""
    policy, channel = ctx.policy, ctx.channel
    pool = []
    for pid in sorted(ctx.candidates):
        product = ctx.candidates[pid].product
        if policy.lever(product) == 0 or policy.fit(channel, product.family) == 0:
            ctx.exclude(pid, "stopped_by_lever")
        else:
            pool.append(ctx.candidates[pid])
    if channel in ctx.loop.control_no_offer_channels:
        for o in pool:
            ctx.exclude(o.product.product_id, "control_no_offer")
        ctx.candidates = {}
        return
    chosen, probability = uniform_choice(pool, _room(ctx), ctx.seed)
    for o in chosen:
        o.probability = probability
    ctx.candidates = {o.product.product_id: o for o in chosen}


STEPS: dict[str, Callable[[Context], None]] = {
    "eligibility": eligibility, "scoring": scoring, "similar_boost": similar_boost, "calibration": calibration,
    "contact_policy": contact_policy, "arbitration": arbitration, "select": select, "reasons": reasons,
}
assert tuple(STEPS) == STEP_NAMES, "a new step is named in policy.STEP_NAMES too (the policy file's vocabulary)"


def rank(state: CustomerState, model: RankingModel, catalog: Catalog, policy: Policy,
         channel: str, now_s: float, limit: int, params: FeatureParams | None = None, *,
         loop: LoopParams = NO_LOOP, evidence: Mapping[str, Evidence] | None = None, seed: int = 0) -> Decision:
    """Run the chain; at most ``limit`` offers (fewer if a daily cap leaves less room), best first.
    Ties break on product id, so the same input always gives the same answer. A customer the bank
    knows nothing about gets the cold-start offers (``fallback.cold_start``). ``params``: the fold's
    parameters the state was made with (default ``FeatureParams()``: CNY).

    ``loop`` sets the experiment and online learning (default: off); ``evidence`` is the online
    evidence (``calibration``); ``seed`` the request's randomness (the control arm's draw, the
    Thompson sample): the same arguments always give the same decision. The decision carries
    the customer's ``arm`` and the ``policy_version``."""
    arm = arm_of(state.customer_id, channel, now_s, loop)
    if knows_nothing(state):
        decision = cold_start(state, catalog, channel, limit if arm == TREATMENT else len(catalog))
        if arm == CONTROL:
            _control_draw(decision, channel, limit, loop, seed, "cold_start")
        decision.policy_version = policy.version
        return decision
    ctx = Context(state, model, catalog, policy, channel, now_s, limit, loop=loop, evidence=evidence or {},
                  seed=seed, arm=arm)
    if params is not None:
        ctx.params = params
    ctx.decision.arm = arm
    ctx.decision.policy_version = policy.version
    for name in policy.chain:
        STEPS[name](ctx)
        ctx.decision.rules_applied.append(name)
    if "select" not in policy.chain:
        select(ctx)  # a chain without "select" still answers with at most ``limit``
    if arm == CONTROL:
        ctx.decision.offers = list(ctx.candidates.values())  # in the order drawn
        ctx.decision.rules_applied.append("control_no_offer" if channel in loop.control_no_offer_channels
                                          else "control_random_eligible")
    else:
        ctx.decision.offers = sorted(ctx.candidates.values(), key=lambda o: (-o.score, o.product.product_id))
    return ctx.decision


def rank_without_state(customer_id: str, catalog: Catalog, policy: Policy, channel: str, now_s: float,
                       limit: int, *, loop: LoopParams = NO_LOOP, seed: int = 0) -> Decision:
    """The degraded decision when the customer's state cannot be read: the safe fallback offers
    (``fallback.fallback``), in the customer's arm; a control customer gets a uniform draw from
    them, or none on a ``control_no_offer_channels`` channel, as with a state."""
    arm = arm_of(customer_id, channel, now_s, loop)
    decision = fallback(catalog, channel, limit if arm == TREATMENT else len(catalog))
    if arm == CONTROL:
        _control_draw(decision, channel, limit, loop, seed, "fallback")
    decision.policy_version = policy.version
    return decision


def _control_draw(decision: Decision, channel: str, limit: int, loop: LoopParams, seed: int, rule: str) -> None:
    """A control customer's share of a decision made without the chain (cold start, fallback)."""
    decision.arm = CONTROL
    if channel in loop.control_no_offer_channels:
        decision.offers = []
        decision.rules_applied.append("control_no_offer")
        return
    decision.offers, probability = uniform_choice(decision.offers, limit, seed)
    for o in decision.offers:
        o.probability = probability
    decision.rules_applied.append("control_random_eligible")


decide = rank
