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
- Card numbers refused (on unless turned off explicitly): an id holding a run of 13 to 19 digits,
  with or without single dashes between them, that passes the Luhn check is a payment card
  number (``C4111111111111111`` holds 4111111111111111), i.e. personal data where a token belongs.
- ``customer_id_pattern``: the bank's own regular expression, which the whole id must match too
  (``re.fullmatch``), e.g. ``CUST-[0-9]{6}``. It only narrows the base rule.

Event times: ``occurred_at`` not before ``earliest_occurred_at`` (default 2000-01-01 UTC), so a
bank that imports years of history sets it earlier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
DEFAULT_EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=timezone.utc)

#: Runs of 13 to 19 digits, single dashes or spaces allowed between them (not part of a longer run).
_CARD_LIKE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")

#: The key under which ``ContractRules`` sit in a pydantic validation context.
CONTEXT_KEY = "nbo_contract_rules"


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits, as payment card numbers satisfy it."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def looks_like_card_number(customer_id: str) -> bool:
    """True when ``customer_id`` holds 13 to 19 digits (dashes or spaces between them removed) that
    pass the Luhn check."""
    if sum(c.isdigit() for c in customer_id) < 13:  # the common case, cheaper than the regex
        return False
    for match in _CARD_LIKE.finditer(customer_id):
        if luhn_valid(match.group(0).replace("-", "").replace(" ", "")):
            return True
    return False


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

    def __post_init__(self) -> None:
        if self.earliest_occurred_at.tzinfo is None:
            raise ValueError("earliest_occurred_at must carry a time zone")
        compiled = re.compile(self.customer_id_pattern) if self.customer_id_pattern else None
        object.__setattr__(self, "_compiled", compiled)
        self._context[CONTEXT_KEY] = self

    @property
    def context(self) -> dict[str, Any]:
        """The pydantic validation context that carries these rules (the same dict every time)."""
        return self._context

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
