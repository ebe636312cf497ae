"""The transaction a teller has in hand, folded into the customer's state before ranking.

The counter posts the transaction to core banking, and the stream folds the resulting
``DepositPosted`` into the stored state a little later; the teller's offer is decided now. So
the offer service folds the same fact into a *copy* of the state it read, as the stream will:
same event type, same fold (``domain.features.apply``), channel ``counter``, source ``teller``.

The amount is in the transaction's own currency; the fold converts it into the bank's base
currency with the conversion the stream uses (``ExchangeRates.to_base_minor``, which
``domain.money.in_base_currency`` applies to the stream's events; rates from ``params.rates``),
so the state the offer is ranked on is the one the stream will write.
``UnknownRate`` when the table has no rate for the currency.

Pure: the time and the event id come in as arguments.
"""

from __future__ import annotations

from datetime import datetime

from domain.features import FeatureParams, apply
from domain.state import CustomerState
from schemas.events import DepositPosted, TxnChannel, TxnKind, TxnPurpose


def counter_transaction(state: CustomerState, kind: TxnKind, amount_minor: int, currency: str,
                        purpose: TxnPurpose, at: datetime, event_id: str) -> DepositPosted:
    """The ``DepositPosted`` of a counter transaction of ``amount_minor`` (integer minor units,
    already validated by the caller) at ``at`` (aware, UTC), for the customer of ``state``; its
    ``balance_after_minor`` is the state's balance moved by the amount.

    The event is built without validation: its fields come from a validated request and the
    server, and the balance after it is only a feature here (validating it against the event
    contract's bound would turn a very wealthy customer's deposit into an error)."""
    sign = 1 if kind is TxnKind.DEPOSIT else -1
    return DepositPosted.model_construct(
        event_id=event_id, customer_id=state.customer_id, occurred_at=at, source="teller", kind=kind,
        amount_minor=amount_minor, currency=currency, channel=TxnChannel.COUNTER, purpose=purpose,
        balance_after_minor=state.balance_minor + sign * amount_minor,
    )


def fold_counter_transaction(state: CustomerState, kind: TxnKind, amount_minor: int, currency: str,
                             purpose: TxnPurpose, at: datetime, event_id: str,
                             params: FeatureParams = FeatureParams()) -> CustomerState:
    """A copy of ``state`` with the counter transaction folded in (``state`` is not changed), its
    amount converted into the base currency of ``params.rates`` first (``UnknownRate`` if the
    table has no rate for ``currency``)."""
    # Converted before the event is built: its balance after is the state's (base-currency) balance
    # moved by the amount.
    amount_base = params.rates.to_base_minor(amount_minor, currency)
    return apply(state, counter_transaction(state, kind, amount_base, params.rates.base, purpose, at, event_id),
                 params)
