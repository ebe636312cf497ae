"""ISO 4217 currencies: which codes the contract accepts and how many decimals each one's minor
unit has (JPY 0, CNY and most others 2, BHD, KWD, JOD 3, CLF 4).

The list and the exponents come from the ``iso4217`` package, a copy of the ISO 4217
maintenance agency's own table (list one, "current currency & funds"), versioned by its
publication date. It is the standard's own "minor unit" column, which is what core banking
systems post amounts in; CLDR's display digits (what ``babel`` reports) differ from it for a
few currencies (IQD, RSD, LAK, ...), so they would mis-scale those amounts.

A code with no minor unit in the table (precious metals XAU, XAG, ..., units of account such as
XDR, the testing code XTS and "no currency" XXX) is refused: an integer amount in minor units
means nothing for it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from iso4217 import Currency as _Iso

#: ISO 4217 alphabetic code -> decimals of its minor unit, for every current currency with one.
MINOR_UNIT_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {c.code: c.exponent for c in _Iso if c.exponent is not None})

CURRENCY_PATTERN = r"^[A-Z]{3}$"


def currency_refusal(code: str) -> str | None:
    """Why ``code`` is not an accepted currency, or None when it is."""
    if code in MINOR_UNIT_EXPONENTS:
        return None
    if len(code) == 3 and code.isalpha() and code.isupper() and code in _Iso.__members__:
        return f"currency {code!r} has no minor unit in ISO 4217 (a metal, fund or unit of account); " \
               "send the amount in a currency"
    return f"currency {code!r} is not an ISO 4217 currency code (e.g. CNY, USD, EUR)"


def minor_unit_exponent(code: str) -> int:
    """Decimals of ``code``'s minor unit (KeyError for a code ``currency_refusal`` refuses)."""
    return MINOR_UNIT_EXPONENTS[code]
