"""The teller's transaction in hand, folded into a copy of the state: the same fold the stream
makes of the posted transaction, without the event contract's bound on the balance after it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from domain.features import apply, assets_minor
from domain.state import CustomerState
from domain.transactions import counter_transaction, fold_counter_transaction
from schemas.events import MAX_AMOUNT_MINOR, CustomerProfileUpdated, DepositPosted, TxnKind, TxnPurpose

AT = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)


def customer(balance_minor: int) -> CustomerState:
    state = apply(CustomerState("C000000042"), CustomerProfileUpdated(
        event_id="ev-profile", customer_id="C000000042", occurred_at=AT - timedelta(days=3), source="core_banking",
        birth_year=1985, risk_tolerance=3, employment="salaried"))
    state.balance_minor = balance_minor
    return state


def test_a_deposit_raises_the_balance_and_the_inflow_and_leaves_the_state_read_alone():
    state = customer(1_000_000)
    folded = fold_counter_transaction(state, TxnKind.DEPOSIT, 250_000, "CNY", TxnPurpose.CASH, AT, "teller-1")
    assert folded.balance_minor == 1_250_000 and folded.inflow_minor == 250_000
    assert folded.recent_transactions[0] == [AT.timestamp(), "deposit", 250_000, "counter"]
    assert state.balance_minor == 1_000_000 and state.inflow_minor == 0 and state.recent_transactions == []


def test_a_withdrawal_lowers_the_balance_and_counts_as_outflow():
    folded = fold_counter_transaction(customer(1_000_000), TxnKind.WITHDRAWAL, 1_200_000, "CNY", TxnPurpose.CASH,
                                      AT, "teller-2")
    assert folded.balance_minor == -200_000 and folded.outflow_minor == 1_200_000 and folded.inflow_minor == 0


def test_a_large_transfer_in_makes_the_customer_affluent_now():
    folded = fold_counter_transaction(customer(1_000_000), TxnKind.DEPOSIT, 60_000_000, "CNY", TxnPurpose.TRANSFER,
                                      AT, "teller-3")
    assert folded.value_tier == "affluent" and assets_minor(folded) == 61_000_000
    assert folded.last_large_inflow_at_s == AT.timestamp() and "dep:large_inflow" in folded.tokens


def test_the_event_is_a_counter_transaction_by_the_teller_with_the_id_given():
    event = counter_transaction(customer(0), TxnKind.DEPOSIT, 100, "HKD", TxnPurpose.SALARY, AT, "teller-abc")
    assert isinstance(event, DepositPosted)
    assert (event.event_id, event.customer_id, event.source, event.channel, event.occurred_at) == (
        "teller-abc", "C000000042", "teller", "counter", AT)
    assert (event.currency, event.purpose, event.balance_after_minor) == ("HKD", "salary", 100)


def test_a_balance_past_the_contracts_bound_is_folded_not_refused():
    wealthy = customer(10 * MAX_AMOUNT_MINOR)
    folded = fold_counter_transaction(wealthy, TxnKind.DEPOSIT, MAX_AMOUNT_MINOR, "CNY", TxnPurpose.CASH, AT,
                                      "teller-4")
    assert folded.balance_minor == 11 * MAX_AMOUNT_MINOR


@given(kind=st.sampled_from(list(TxnKind)), amount_minor=st.integers(1, MAX_AMOUNT_MINOR // 2),
       balance_minor=st.integers(0, MAX_AMOUNT_MINOR // 2), purpose=st.sampled_from(list(TxnPurpose)))
def test_the_fold_in_is_the_streams_fold_of_the_posted_transaction(kind, amount_minor, balance_minor, purpose):
    """Where the contract's bounds hold, folding in equals what the stream will do with the
    validated DepositPosted that core banking posts for the same transaction."""
    state = customer(balance_minor)
    sign = 1 if kind is TxnKind.DEPOSIT else -1
    posted = DepositPosted(event_id="ev-posted", customer_id="C000000042", occurred_at=AT, source="teller",
                           kind=kind, amount_minor=amount_minor, channel="counter", purpose=purpose,
                           balance_after_minor=balance_minor + sign * amount_minor)
    assert fold_counter_transaction(state, kind, amount_minor, "CNY", purpose, AT, "ev-posted") == apply(state, posted)
