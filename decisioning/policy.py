"""Marketing's knobs (``Policy``): configuration only, no step (the contact policy is ``contact.py``).

``Policy`` holds everything marketing may change without code: business levers per product or
family, channel fit, cool-downs after a decline by reason, daily contact caps, and (off by default)
an override of the weight of "similar after purchase". That weight is the model's
(``ModelParams.similar_weight``, tuned by ``nbo tune`` and saved with every artifact); the old
policy key ``similar_weight`` is refused with a message saying so, rather than silently pinning
production to a weight offline tuning never chose. ``policy_from_dict`` validates a mapping (the JSON file
``decisioning/data/levers.json``, see docs/API.md; a flat ``{product id | family: multiplier}``
is read as levers alone); a bad value raises ``PolicyError`` naming it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from domain.catalog import Product

DAY_S = 86_400.0
CHANNELS = ("teller", "call_centre", "mobile")
DECLINE_REASONS = ("not_interested", "has_it_elsewhere", "too_expensive", "bad_timing", "needs_advice",
                   "complaint", "other")
#: The vocabulary of the chain: every step ``chain.STEPS`` defines (checked there at import).
STEP_NAMES = ("eligibility", "scoring", "similar_boost", "calibration", "contact_policy", "arbitration", "select",
              "reasons")
DEFAULT_CHAIN = STEP_NAMES
LEVERS_FILE = Path(__file__).resolve().parent / "data" / "levers.json"

#: Cool-down after a decline, in days, by reason; ``None`` means the product's own cool-down.
DECLINE_COOLDOWN_DAYS: dict[str, int | None] = {
    "not_interested": None, "has_it_elsewhere": 180, "too_expensive": 60, "bad_timing": 7,
    "needs_advice": 3, "complaint": 90, "other": 30,
}
#: Products shown to one customer per channel per day, at most.
DAILY_CAPS: dict[str, int] = {"teller": 2, "call_centre": 3, "mobile": 6}
#: How well a channel suits a family (1 = neutral).
CHANNEL_FIT: dict[str, dict[str, float]] = {
    "teller": {"deposit": 1.2, "time_deposit": 1.3, "cd": 1.3, "service": 1.1, "loan": 0.8},
    "call_centre": {"insurance": 1.2, "wealth": 1.1, "loan": 1.1, "credit_card": 1.1},
    "mobile": {"fund": 1.3, "gold": 1.2, "service": 1.2, "cd": 0.9, "loan": 0.9},
}


class PolicyError(ValueError):
    """A policy value is invalid; the message names it and says what is expected."""


@dataclass(frozen=True)
class Policy:
    """Marketing's knobs; built from configuration (``policy_from_dict``), changed without code."""

    chain: tuple[str, ...] = DEFAULT_CHAIN
    levers: Mapping[str, float] = field(default_factory=dict)  # product id or family -> multiplier
    channel_fit: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: CHANNEL_FIT)
    #: None: rank with the model's tuned ``similar_weight``; a number pins that weight instead.
    similar_weight_override: float | None = None
    value_exponent: float = 0.25
    daily_caps: Mapping[str, int] = field(default_factory=lambda: dict(DAILY_CAPS))
    daily_cap_total: int = 8
    decline_cooldown_days: Mapping[str, int | None] = field(default_factory=lambda: dict(DECLINE_COOLDOWN_DAYS))

    def lever(self, product: Product) -> float:
        """The product's own lever, else its family's, else 1."""
        return self.levers.get(product.product_id, self.levers.get(product.family, 1.0))

    def fit(self, channel: str, family: str) -> float:
        return self.channel_fit.get(channel, {}).get(family, 1.0)

    @cached_property
    def version(self) -> str:
        """A stable short hash of the policy's content (12 hex of the SHA-256 of its values as
        canonical JSON): the same knobs give the same version in every process, whatever the
        file's layout, key order or comment; any changed value gives another. Logged with every
        decision (``policy_version``)."""
        content = {f.name: getattr(self, f.name) for f in fields(self)}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=_plain)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise PolicyError(f"{name}: expected a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _mapping(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{name}: expected an object, got {type(value).__name__}")
    return value


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """A validated ``Policy`` from a mapping; keys left out keep their defaults."""
    data = _mapping("policy", data)
    knobs = {f.name for f in fields(Policy)} | {"similar_weight"}
    if data and not knobs & set(data) and \
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()):
        data = {"levers": data}  # the short form: a flat {product id | family: multiplier}
    if "similar_weight" in data:
        raise PolicyError(
            "similar_weight: no longer a policy key; the chain ranks with the model's own tuned weight "
            "(ModelParams.similar_weight, chosen by nbo tune and saved with the model). Remove the key to serve "
            "the tuned weight, or set similar_weight_override (a number in [0, 100]) to pin one on purpose")
    known = {f.name for f in fields(Policy)} | {"comment"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PolicyError(f"unknown key(s) {unknown}; expected some of {sorted(known - {'comment'})}")
    kwargs: dict[str, Any] = {}
    if "chain" in data:
        chain = data["chain"]
        if not isinstance(chain, list) or not chain or any(step not in STEP_NAMES for step in chain):
            raise PolicyError(f"chain: expected a list of step names from {sorted(STEP_NAMES)}, got {chain!r}")
        kwargs["chain"] = tuple(chain)
    if "levers" in data:
        kwargs["levers"] = {str(k): _number(f"levers.{k}", v, 0.0, 10_000.0)
                            for k, v in _mapping("levers", data["levers"]).items()}
    if "channel_fit" in data:
        fit = {}
        for channel, families in _mapping("channel_fit", data["channel_fit"]).items():
            if channel not in CHANNELS:
                raise PolicyError(f"channel_fit: unknown channel {channel!r}; expected one of {CHANNELS}")
            fit[channel] = {str(f): _number(f"channel_fit.{channel}.{f}", v, 0.0, 100.0)
                            for f, v in _mapping(f"channel_fit.{channel}", families).items()}
        kwargs["channel_fit"] = fit
    if data.get("similar_weight_override") is not None:
        kwargs["similar_weight_override"] = _number("similar_weight_override", data["similar_weight_override"],
                                                    0.0, 100.0)
    if "value_exponent" in data:
        kwargs["value_exponent"] = _number("value_exponent", data["value_exponent"], 0.0, 4.0)
    if "daily_caps" in data:
        caps = {}
        for channel, cap in _mapping("daily_caps", data["daily_caps"]).items():
            if channel not in CHANNELS:
                raise PolicyError(f"daily_caps: unknown channel {channel!r}; expected one of {CHANNELS}")
            caps[channel] = int(_number(f"daily_caps.{channel}", cap, 0, 1000))
        kwargs["daily_caps"] = {**DAILY_CAPS, **caps}
    if "daily_cap_total" in data:
        kwargs["daily_cap_total"] = int(_number("daily_cap_total", data["daily_cap_total"], 0, 1000))
    if "decline_cooldown_days" in data:
        days: dict[str, int | None] = dict(DECLINE_COOLDOWN_DAYS)
        for reason, value in _mapping("decline_cooldown_days", data["decline_cooldown_days"]).items():
            if reason not in DECLINE_REASONS:
                raise PolicyError(f"decline_cooldown_days: unknown reason {reason!r}; expected one of {DECLINE_REASONS}")
            days[reason] = None if value is None else int(_number(f"decline_cooldown_days.{reason}", value, 0, 3650))
        kwargs["decline_cooldown_days"] = days
    return Policy(**kwargs)


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file (default ``decisioning/data/levers.json``)."""
    path = path or LEVERS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PolicyError(f"{path}: {exc}") from None
    try:
        return policy_from_dict(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
