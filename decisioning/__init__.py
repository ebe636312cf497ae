"""Decisioning: which products may be offered, in what order, and what to say (see ``chain``)."""

from decisioning.chain import STEPS, decide, rank
from decisioning.contact import cooldown_days
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
    "STEPS", "decide", "rank", "Context", "Decision", "Offer", "SAFE_FALLBACK", "fallback", "LEVERS_FILE",
    "Policy", "PolicyError", "cooldown_days", "load_policy", "policy_from_dict", "SERVICE_ACTIONS", "explain",
    "talking_points",
]
