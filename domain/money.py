"""Money in the bank's base currency: the one conversion every amount goes through before the
features, thresholds and the state see it.

Events carry amounts in integer minor units of their own ISO 4217 currency (``schemas.currencies``
knows each one's minor-unit exponent: JPY 0, CNY 2, BHD 3). ``in_base_currency(event, rates)``
returns the event with its amounts in minor units of ``rates.base`` (the base currency, default
CNY): the stream calls it on every decoded event before folding it (an unknown rate sends the
record to the dead letter), the offer API on the teller's transaction in hand (an unknown rate is
a 422), training on the events it folds. Everything downstream (``CustomerState``, the large-inflow
threshold, the catalog's minimum assets, the value tiers) is in base-currency minor units.

``amount_in_base = round_half_even(amount_minor * rate * 10 ** (base_exponent - exponent))``, with
``rate`` the units of base currency one unit of the currency is worth, exact in ``Decimal``.

The rate table (``load_rates``) is a CSV file with the columns ``currency,rate`` (``#`` lines are
comments) or a JSON object ``{"USD": "7.10", ...}`` (numbers or decimal strings); it must list the
base currency at rate 1. ``domain/data/rates.csv`` is the packaged table, into CNY. The rates are
the table's, whatever the event's date: a bank that imports history sends history in the currency
it wants counted, or converts it itself. Pure, except ``load_rates`` reading the file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping, TypeVar

from schemas.currencies import MINOR_UNIT_EXPONENTS, currency_refusal
from schemas.events import EVENT_TYPES, Event

PACKAGED_RATES = Path(__file__).parent / "data" / "rates.csv"
_ONE = Decimal(1)

E = TypeVar("E", bound=Event)

#: Every event type that carries a ``currency`` -> its amount fields (``*_minor``), in its currency.
_AMOUNT_FIELDS: dict[type[Event], tuple[str, ...]] = {
    model: tuple(name for name in model.model_fields if name.endswith("_minor"))
    for model in EVENT_TYPES.values() if "currency" in model.model_fields}


class UnknownRate(ValueError):
    """An ISO 4217 currency the rate table has no rate for; ``currency`` names it."""

    def __init__(self, currency: str, base: str) -> None:
        super().__init__(f"currency {currency!r} has no exchange rate into the base currency {base} in the "
                         f"bank's rate table; add a rate for {currency} or send the amount in a currency it lists")
        self.currency = currency
        self.base = base


class RateTableError(ValueError):
    """An invalid rate table; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ExchangeRates:
    """Rates into ``base``: ``rates`` is (currency, units of ``base`` per unit of it), sorted by
    currency, the base included at 1. Hashable, so it can sit in ``FeatureParams``."""

    base: str
    rates: tuple[tuple[str, Decimal], ...]
    #: currency -> the factor from its minor units to the base's (rate x 10^(base exp - exp)).
    _factors: dict[str, Decimal] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for code in (self.base, *(c for c, _ in self.rates)):
            refused = currency_refusal(code)
            if refused is not None:
                raise RateTableError(refused)
        table = dict(self.rates)
        if table.get(self.base) != _ONE:
            raise RateTableError(f"the rate table must list the base currency {self.base} at rate 1 "
                                 f"(is it a table into another currency?)")
        base_exponent = MINOR_UNIT_EXPONENTS[self.base]
        for code, rate in self.rates:
            if not rate.is_finite() or rate <= 0:
                raise RateTableError(f"rate of {code} must be a positive number, got {rate}")
            self._factors[code] = rate.scaleb(base_exponent - MINOR_UNIT_EXPONENTS[code])

    @classmethod
    def of(cls, base: str, rates: Mapping[str, Any]) -> "ExchangeRates":
        """From currency -> rate (Decimal, int or decimal text); the base at 1 is added if absent."""
        table = {code: Decimal(str(rate)) for code, rate in rates.items()}
        table.setdefault(base, _ONE)
        return cls(base, tuple(sorted(table.items())))

    @classmethod
    def only(cls, base: str) -> "ExchangeRates":
        """A table that knows the base currency alone."""
        return cls(base, ((base, _ONE),))

    def __contains__(self, currency: object) -> bool:
        return currency in self._factors

    def rate(self, currency: str) -> Decimal:
        """Units of the base currency one unit of ``currency`` is worth; ``UnknownRate`` if none."""
        if currency not in self._factors:
            raise UnknownRate(currency, self.base)
        return dict(self.rates)[currency]

    def to_base_minor(self, amount_minor: int, currency: str) -> int:
        """``amount_minor`` of ``currency`` in minor units of the base currency, rounded half to
        even; ``UnknownRate`` if the table has no rate for ``currency``."""
        if currency == self.base:
            return amount_minor
        factor = self._factors.get(currency)
        if factor is None:
            raise UnknownRate(currency, self.base)
        return int((amount_minor * factor).quantize(_ONE, rounding=ROUND_HALF_EVEN))


#: The rates of a bank whose every amount is in CNY (what ``FeatureParams()`` assumes).
CNY_ONLY = ExchangeRates.only("CNY")


def in_base_currency(event: E, rates: ExchangeRates) -> E:
    """``event`` with its amounts (every ``*_minor`` field: ``amount_minor``, a deposit's
    ``balance_after_minor``) in minor units of ``rates.base`` and its ``currency`` set to it; the event itself when it carries no
    money or is already in the base currency. ``UnknownRate`` when the table has no rate for its
    currency. The only conversion of event amounts (stream, teller fold-in, training)."""
    fields = _AMOUNT_FIELDS.get(type(event))
    if fields is None:
        return event
    currency = event.currency  # type: ignore[attr-defined]
    if currency == rates.base:
        return event
    update: dict[str, Any] = {name: rates.to_base_minor(getattr(event, name), currency) for name in fields}
    return event.model_copy(update={**update, "currency": rates.base})


def load_rates(path: Path | None, base: str) -> ExchangeRates:
    """The rate table of ``path`` (``.csv`` or ``.json``; None: the packaged CNY table) into
    ``base``. ``RateTableError`` naming the file and the fault."""
    source = path or PACKAGED_RATES
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise RateTableError(f"{source}: cannot read the rate table ({exc.strerror or exc})") from None
    try:
        table = parse_rates(text, json_format=str(source).lower().endswith(".json"))
        if base not in table:
            raise RateTableError(f"the rate table does not list the base currency {base} (at rate 1); "
                                 f"it lists {', '.join(sorted(table)) or 'nothing'}")
        return ExchangeRates.of(base, table)
    except RateTableError as exc:
        raise RateTableError(f"{source}: {exc}") from None


def parse_rates(text: str, *, json_format: bool) -> dict[str, Decimal]:
    """currency -> rate from a rate table's text (CSV ``currency,rate`` or a JSON object)."""
    if json_format:
        try:
            data = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        except json.JSONDecodeError as exc:
            raise RateTableError(f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise RateTableError('expected a JSON object {"USD": "7.10", ...}')
        items = [(str(k), v) for k, v in data.items()]
    else:
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
        if not rows or [c.strip().lower() for c in rows[0]] != ["currency", "rate"]:
            raise RateTableError("the first line (after # comments) must be the header: currency,rate")
        items = []
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != 2:
                raise RateTableError(f"row {number} (not counting comments): expected currency,rate, got {row}")
            items.append((row[0].strip(), row[1].strip()))
    table: dict[str, Decimal] = {}
    for code, value in items:
        if code in table:
            raise RateTableError(f"currency {code} is listed twice")
        try:
            table[code] = value if isinstance(value, Decimal) else Decimal(str(value))
        except InvalidOperation:
            raise RateTableError(f"rate of {code} is not a number: {value!r}") from None
    return table
