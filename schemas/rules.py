"""The bank's own contract rules: what a customer id may look like and how far back event times
may go. The event models always check the base rules; a bank narrows them with its settings
(``NBO_CONTRACT__*``, turned into a ``ContractRules`` by the composition root), and the rules
reach validation as pydantic's validation context (``ContractRules.context``), which
``schemas.codec.decode`` and the offer API pass. No global state: a process that was given no
rules validates with ``DEFAULT_RULES``.

Customer ids:

- Base rule (the field's pattern, in the JSON Schema too): 1 to 64 letters, digits, ``-``, ``_``,
  ``.`` or ``:`` (``CUST-000123``, ``C000000042``, ``8f14e45f-ceea-467f``). No ``{`` or ``}``,
  so the id can be the Redis Cluster hash tag of the customer's keys, and no white space.
- Card numbers refused (on unless turned off explicitly): an id that, with its spaces and dashes
  removed, holds a run of 13 to 19 digits passing the Luhn check is a payment card
  number (``C4111111111111111`` holds 4111111111111111), i.e. personal data where a token belongs.
- ``customer_id_pattern``: the bank's own regular expression, which the whole id must match too
  (``re.fullmatch``), e.g. ``CUST-[0-9]{6}``. It only narrows the base rule.

Event times: ``occurred_at`` not before ``earliest_occurred_at`` (default 2000-01-01 UTC), so a
bank that imports years of history sets it earlier; nor more than ``MAX_CLOCK_SKEW`` after the
time of validation: the clock at each event, or the ``now`` of ``ContractRules.context_at`` for a
caller that checks many events at once (``nbo import``: one clock read per chunk).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import AwareDatetime, TypeAdapter

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
DEFAULT_EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=timezone.utc)

_DIGIT_RUNS = re.compile(r"[0-9]{13,}")

_NO_DIGITS = str.maketrans("", "", "0123456789")

#: The key under which ``ContractRules`` sit in a pydantic validation context.
CONTEXT_KEY = "nbo_contract_rules"
#: The key of the latest event time accepted (``now`` + ``MAX_CLOCK_SKEW``) in a context from
#: ``ContractRules.context_at``; without it the validator reads the clock.
LATEST_KEY = "nbo_latest_occurred_at"
#: How far in the future a producer's clock may be before an event is refused.
MAX_CLOCK_SKEW = timedelta(hours=24)
#: The UTC zone pydantic gives a validated ``...Z`` time (one shared object). Bounds in this zone
#: compare with such times without working out UTC offsets; any other zone compares as usual.
UTC = TypeAdapter(AwareDatetime).validate_python("2000-01-01T00:00:00Z").tzinfo


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit doubled, its two digits added


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits, as payment card numbers satisfy it."""
    backwards = digits[::-1]
    total = sum(map(int, backwards[0::2])) + sum(_DOUBLED[int(d)] for d in backwards[1::2])
    return total % 10 == 0


def looks_like_card_number(customer_id: str) -> bool:
    """True when ``customer_id``, with its spaces and dashes removed, holds a run of 13 to 19
    digits that passes the Luhn check."""
    # The common cases first, cheaper than the regex: too short, or fewer than 13 digits.
    if len(customer_id) < 13 or len(customer_id) - len(customer_id.translate(_NO_DIGITS)) < 13:
        return False
    compact = customer_id.replace("-", "").replace(" ", "")
    return any(len(run) <= 19 and luhn_valid(run) for run in _DIGIT_RUNS.findall(compact))


CARD_NUMBER_REFUSAL = ("customer_id looks like a payment card number (13-19 digits passing the Luhn check): "
                       "that is personal data; send the bank's tokenised customer id instead")


@dataclass(frozen=True)
class ContractRules:
    """A bank's narrowing of the contract (see the module docstring). ``customer_id_pattern`` is a
    regular expression the whole id must match (None: the base rule only)."""

    customer_id_pattern: str | None = None
    refuse_card_numbers: bool = True
    earliest_occurred_at: datetime = DEFAULT_EARLIEST_OCCURRED_AT
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _context: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: ``earliest_occurred_at`` in ``UTC`` (the same instant).
    earliest_utc: datetime = field(default=DEFAULT_EARLIEST_OCCURRED_AT, init=False, repr=False, compare=False)
    #: Whether ``customer_id_narrowing`` can refuse anything (card numbers refused, or a pattern).
    narrows_customer_ids: bool = field(default=True, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.earliest_occurred_at.tzinfo is None:
            raise ValueError("earliest_occurred_at must carry a time zone")
        compiled = re.compile(self.customer_id_pattern) if self.customer_id_pattern else None
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "earliest_utc", self.earliest_occurred_at.astimezone(UTC))
        object.__setattr__(self, "narrows_customer_ids", self.refuse_card_numbers or compiled is not None)
        self._context[CONTEXT_KEY] = self

    @property
    def context(self) -> dict[str, Any]:
        """The pydantic validation context that carries these rules (the same dict every time)."""
        return self._context

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its settings in another process, so the derived fields are that process's.
        return (ContractRules, (self.customer_id_pattern, self.refuse_card_numbers, self.earliest_occurred_at))

    def context_at(self, now: datetime) -> dict[str, Any]:
        """A validation context with these rules that judges "too far in the future" against
        ``now`` (timezone-aware) instead of reading the clock at each event: for checking many
        events in a short time."""
        if now.tzinfo is None:
            raise ValueError("now must carry a time zone")
        return {CONTEXT_KEY: self, LATEST_KEY: (now + MAX_CLOCK_SKEW).astimezone(UTC)}

    def customer_id_refusal(self, customer_id: str) -> str | None:
        """Why ``customer_id`` is refused, or None. Checks the base rule too (for callers outside a
        model: a client's prompt); the message says what to send instead. A card number is named
        as such first, whatever else is wrong with it."""
        if self.refuse_card_numbers and looks_like_card_number(customer_id):
            return CARD_NUMBER_REFUSAL
        if not _BASE.fullmatch(customer_id):
            return ("customer_id must be 1 to 64 letters, digits or - _ . : (a pseudonymous customer token, "
                    "e.g. CUST-000123)")
        return self.customer_id_narrowing(customer_id)

    def customer_id_narrowing(self, customer_id: str) -> str | None:
        """Why an id that meets the base rule is refused by these rules, or None."""
        if self.refuse_card_numbers and looks_like_card_number(customer_id):
            return CARD_NUMBER_REFUSAL
        if self._compiled is not None and not self._compiled.fullmatch(customer_id):
            return f"customer_id does not match the bank's customer id pattern {self.customer_id_pattern!r}"
        return None

    def occurred_at_refusal(self, at: datetime) -> str | None:
        if at < self.earliest_occurred_at:
            return (f"occurred_at is before {self.earliest_occurred_at.isoformat()}, the earliest event time "
                    "accepted; send the real event time")
        return None


_BASE = re.compile(CUSTOMER_ID_PATTERN)
DEFAULT_RULES = ContractRules()


def rules_of(context: Any) -> ContractRules:
    """The rules in a pydantic validation context (``ValidationInfo.context``); the default ones
    when there is no context or it holds none."""
    if context is None:
        return DEFAULT_RULES
    return context.get(CONTEXT_KEY, DEFAULT_RULES) if isinstance(context, dict) else DEFAULT_RULES
