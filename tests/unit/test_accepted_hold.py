"""An accepted offer, known-answer: the customer said yes, so no channel offers the product again
while its purchase is on its way; once bought it is held (a single-hold product is then never
offered again, a multi-hold one may be); a purchase that posts late does not bring it back
within ``ACCEPTED_HOLD_DAYS``. The state is built by the stream's own fold of the events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from decisioning import Policy, decide
from decisioning.contact import ACCEPTED_HOLD_DAYS
from domain.catalog import load_catalog
from domain.features import apply_all
from domain.state import CustomerState
from recommender.model import ScoredProducts
from schemas.events import CustomerProfileUpdated, DepositPosted, Event, OfferOutcomeRecorded, ProductPurchased

CATALOG = load_catalog()
CUSTOMER = "C000000001"
ACCEPTED_AT = datetime(2026, 6, 1, 10, tzinfo=timezone.utc)
CHANNELS = ("teller", "call_centre", "mobile")
_ids = iter(range(1, 10_000))


class Favourite:
    """Scores one product far above the rest, so whether it is offered is plain to see."""

    version = "fixed"
    similar_weight = 0.0

    def __init__(self, favourite: str) -> None:
        self.product_ids = CATALOG.ids
        self.favourite = favourite

    def score(self, held, tokens, recent, now_s, segment) -> ScoredProducts:
        propensity = np.full(len(self.product_ids), 0.01)
        propensity[CATALOG.index[self.favourite]] = 0.9
        zeros = np.zeros(len(self.product_ids))
        return ScoredProducts(self.product_ids, propensity, zeros, (None,) * len(self.product_ids), propensity)


def head(at: datetime) -> dict:
    return {"event_id": f"ev-accepted-{next(_ids):06d}", "customer_id": CUSTOMER, "occurred_at": at}


def customer_who_accepted(product_id: str, channel: str = "teller") -> list[Event]:
    """A salaried customer with 50,000 CNY who accepted ``product_id`` on ``channel`` at ACCEPTED_AT."""
    return [
        CustomerProfileUpdated(**head(ACCEPTED_AT - timedelta(days=300)), source="core_banking", birth_year=1985,
                               risk_tolerance=3, employment="salaried"),
        DepositPosted(**head(ACCEPTED_AT - timedelta(days=5)), source="core_banking", kind="deposit",
                      amount_minor=5_000_000, channel="counter", purpose="salary", balance_after_minor=5_000_000),
        OfferOutcomeRecorded(**head(ACCEPTED_AT), source="offer_api", decision_id="d-0123456789abcdef",
                             product_id=product_id, channel=channel, outcome="accepted"),
    ]


def purchase(product_id: str, at: datetime) -> ProductPurchased:
    return ProductPurchased(**head(at), source="core_banking", product_id=product_id, channel="branch")


def offered(state: CustomerState, product_id: str, at: datetime) -> dict[str, tuple[bool, str | None]]:
    """Per channel: is ``product_id`` offered at ``at``, and the rule that left it out."""
    answers = {}
    for channel in CHANNELS:
        decision = decide(state, Favourite(product_id), CATALOG, Policy(), channel, at.timestamp(), 3)
        answers[channel] = (product_id in [o.product.product_id for o in decision.offers],
                            decision.excluded.get(product_id))
    return answers


@pytest.mark.parametrize("product_id", ["credit_card_standard", "fund_sip"])  # single-hold, multi-hold
def test_before_the_answer_the_product_is_offered_first_on_every_channel(product_id):
    before = apply_all(CustomerState(CUSTOMER), customer_who_accepted(product_id)[:2])
    assert offered(before, product_id, ACCEPTED_AT) == {c: (True, None) for c in CHANNELS}


@pytest.mark.parametrize("product_id, answered_on", [("credit_card_standard", "teller"), ("fund_sip", "mobile")])
def test_an_accepted_product_leaves_every_channel_at_once(product_id, answered_on):
    state = apply_all(CustomerState(CUSTOMER), customer_who_accepted(product_id, answered_on))
    assert state.contacts[product_id].last_accepted_at_s == ACCEPTED_AT.timestamp()
    assert offered(state, product_id, ACCEPTED_AT + timedelta(minutes=1)) == {
        c: (False, "accepted_pending_purchase") for c in CHANNELS}


def test_it_stays_out_while_the_purchase_is_late_and_only_comes_back_after_the_hold():
    state = apply_all(CustomerState(CUSTOMER), customer_who_accepted("fund_sip"))
    late = ACCEPTED_AT + timedelta(days=ACCEPTED_HOLD_DAYS) - timedelta(hours=1)
    assert offered(state, "fund_sip", late) == {c: (False, "accepted_pending_purchase") for c in CHANNELS}
    never_bought = ACCEPTED_AT + timedelta(days=ACCEPTED_HOLD_DAYS) + timedelta(hours=1)
    assert offered(state, "fund_sip", never_bought) == {c: (True, None) for c in CHANNELS}


def test_once_bought_a_single_hold_product_is_already_held_and_never_comes_back():
    bought_at = ACCEPTED_AT + timedelta(days=3)
    state = apply_all(CustomerState(CUSTOMER), [*customer_who_accepted("credit_card_standard"),
                                                purchase("credit_card_standard", bought_at)])
    for at in (bought_at + timedelta(minutes=1), ACCEPTED_AT + timedelta(days=ACCEPTED_HOLD_DAYS + 60)):
        assert offered(state, "credit_card_standard", at) == {c: (False, "already_held") for c in CHANNELS}


def test_once_bought_a_multi_hold_product_may_be_offered_again():
    bought_at = ACCEPTED_AT + timedelta(days=3)
    state = apply_all(CustomerState(CUSTOMER), [*customer_who_accepted("fund_sip"), purchase("fund_sip", bought_at)])
    assert offered(state, "fund_sip", bought_at + timedelta(minutes=1)) == {c: (True, None) for c in CHANNELS}


def test_a_purchase_posted_just_before_the_answer_was_recorded_fulfils_it_in_either_arrival_order():
    # The sale went through at the counter, then the teller pressed "accepted" ten minutes later;
    # the worker may fold the two in either order.
    events = customer_who_accepted("fund_sip")
    sale = purchase("fund_sip", ACCEPTED_AT - timedelta(minutes=10))
    for ordered in ([*events, sale], [*events[:2], sale, events[2]]):
        state = apply_all(CustomerState(CUSTOMER), ordered)
        assert offered(state, "fund_sip", ACCEPTED_AT + timedelta(minutes=1)) == {c: (True, None) for c in CHANNELS}


def test_an_older_holding_does_not_fulfil_a_new_acceptance():
    events = customer_who_accepted("fund_sip")
    earlier = purchase("fund_sip", ACCEPTED_AT - timedelta(days=90))
    state = apply_all(CustomerState(CUSTOMER), [*events[:2], earlier, events[2]])
    assert offered(state, "fund_sip", ACCEPTED_AT + timedelta(minutes=1)) == {
        c: (False, "accepted_pending_purchase") for c in CHANNELS}


def test_the_accept_time_is_the_newest_acceptance_whatever_order_the_outcomes_arrive_in():
    events = customer_who_accepted("fund_sip")
    again = OfferOutcomeRecorded(**head(ACCEPTED_AT + timedelta(days=2)), source="offer_api",
                                 decision_id="d-0123456789abcdee", product_id="fund_sip", channel="call_centre",
                                 outcome="accepted")
    forwards = apply_all(CustomerState(CUSTOMER), [*events, again])
    backwards = apply_all(CustomerState(CUSTOMER), [*events[:2], again, events[2]])
    assert forwards.contacts["fund_sip"].last_accepted_at_s == backwards.contacts["fund_sip"].last_accepted_at_s \
        == (ACCEPTED_AT + timedelta(days=2)).timestamp()
