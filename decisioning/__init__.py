"""Decisioning: which products may be offered, in what order, and what to say (see ``chain``)."""

from decisioning.chain import STEPS, decide, rank, rank_without_state
from decisioning.contact import cooldown_days
from decisioning.experiment import CONTROL, NO_LOOP, TREATMENT, LoopParams, arm_of, seed_from
from decisioning.context import Context, Decision, Offer
from decisioning.fallback import SAFE_FALLBACK, fallback
from decisioning.policy import (
    LEVERS_FILE,
    Policy,
    PolicyError,
    load_policy,
    policy_from_dict,
)
from decisioning.reasons import SERVICE_ACTIONS, explain, talking_points

__all__ = [
    "STEPS", "decide", "rank", "rank_without_state", "CONTROL", "NO_LOOP", "TREATMENT", "LoopParams", "arm_of",
    "seed_from", "Context", "Decision", "Offer", "SAFE_FALLBACK", "fallback", "LEVERS_FILE",
    "Policy", "PolicyError", "cooldown_days", "load_policy", "policy_from_dict", "SERVICE_ACTIONS", "explain",
    "talking_points",
]
