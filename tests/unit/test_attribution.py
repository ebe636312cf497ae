"""The stream side of the closed loop, pure (domain.attribution through the fold): known answers
for last-touch attribution, answers and ignored offers; any interleaving of one customer's
topics gives the same facts; duplicates folded through the fake store count nothing twice."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.fakes import MemoryStateStore
from adapters.ports import SourcedEvent
from domain.attribution import LoopFacts, add_signed, parse_counter_field
from domain.features import FeatureParams, apply_all
from domain.learning import Evidence, add_answer
from domain.state import CustomerState
from schemas.conversions import ConversionAttributed
from schemas.events import DepositPosted, OfferDecisionMade, OfferedItem, OfferOutcomeRecorded, ProductPurchased
from schemas.topics import DEPOSITS, OFFER_DECISIONS, OFFER_OUTCOMES, PURCHASES

CUSTOMER = "C000000777"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
P = FeatureParams()
#: The model propensity the decision records log per product (what the evidence expects).
PROPENSITY = {"fund_sip": 0.3, "large_cd": 0.2, "gold_account": 0.1}


def decision(day: float, decision_id: str, *products: str, channel: str = "teller", arm: str = "treatment",
             model: str = "v1") -> OfferDecisionMade:
    return OfferDecisionMade(
        event_id=f"dec-{decision_id[2:]}", customer_id=CUSTOMER, occurred_at=T0 + timedelta(days=day),
        source="offer_api", decision_id=decision_id, channel=channel, model_version=model, arm=arm,
        offers=tuple(OfferedItem(product_id=p, rank=i, score=0.5, propensity=PROPENSITY.get(p, 0.1), probability=1.0)
                     for i, p in enumerate(products, start=1)))


def answer(day: float, decision_id: str, product: str, outcome: str, reason: str | None = None,
           channel: str = "teller") -> OfferOutcomeRecorded:
    return OfferOutcomeRecorded(
        event_id=f"oc-{decision_id}-{product}-{outcome}", customer_id=CUSTOMER,
        occurred_at=T0 + timedelta(days=day), source="offer_api", decision_id=decision_id, product_id=product,
        channel=channel, outcome=outcome, decline_reason=reason)


def purchase(day: float, product: str, n: int = 1) -> ProductPurchased:
    return ProductPurchased(event_id=f"buy-{product}-{n:04d}", customer_id=CUSTOMER,
                            occurred_at=T0 + timedelta(days=day), source="core_banking", product_id=product,
                            amount_minor=100, channel="branch")


def deposit(day: float, n: int = 1) -> DepositPosted:
    return DepositPosted(event_id=f"dep-{n:06d}", customer_id=CUSTOMER, occurred_at=T0 + timedelta(days=day),
                         source="core_banking", kind="deposit", amount_minor=1_000, channel="counter",
                         balance_after_minor=10_000)


def fold(*events) -> tuple[CustomerState, LoopFacts]:
    facts = LoopFacts()
    return apply_all(CustomerState(CUSTOMER), events, P, facts), facts


def totals(facts: LoopFacts) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for day, name, delta in facts.counts:
        out[(day, name)] = out.get((day, name), 0) + delta
    return {k: v for k, v in out.items() if v}


def measures(facts: LoopFacts) -> dict[str, int]:
    """Counter totals by measure alone."""
    out: dict[str, int] = {}
    for (_, name), n in totals(facts).items():
        measure = parse_counter_field(name)[4]
        out[measure] = out.get(measure, 0) + n
    return {k: v for k, v in out.items() if v}


def final_conversions(facts: LoopFacts) -> dict[str, tuple]:
    """What the warehouse keeps: per conversion id, the greatest (shown_at, decision, accepted)."""
    kept: dict[str, tuple] = {}
    for c in facts.conversions:
        key = (c.shown_at_s, c.decision_id, c.accepted_at_touchpoint)
        if c.conversion_id not in kept or key > kept[c.conversion_id][0]:
            kept[c.conversion_id] = (key, c.decision_id, c.product_id, c.channel, c.arm, c.model_version,
                                     c.days_after_shown, c.accepted_at_touchpoint)
    return {k: v[1:] for k, v in kept.items()}


def evidence(facts: LoopFacts, half_life_days: float = 30.0) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name, accepted, expected, at_s, sign in facts.answers:
        out[name] = add_signed(out.get(name), accepted, expected, at_s, sign, half_life_days)
    return out


# --- known answers -------------------------------------------------------------------------------

def test_shown_on_day_0_and_bought_on_day_10_is_a_conversion_of_that_decision():
    _, facts = fold(decision(0, "d-aaaaaa01", "fund_sip", "large_cd"), purchase(10, "fund_sip"))
    assert len(facts.conversions) == 1
    c = facts.conversions[0]
    assert (c.decision_id, c.product_id, c.channel, c.arm, c.model_version) == (
        "d-aaaaaa01", "fund_sip", "teller", "treatment", "v1")
    assert c.days_after_shown == 10.0 and c.accepted_at_touchpoint is False
    assert measures(facts) == {"shows": 2, "conversions": 1, "ignored": 2}
    record = ConversionAttributed.model_validate(c.to_json())  # the published record is valid
    assert record.conversion_id == c.conversion_id and record.purchase_event_id == "buy-fund_sip-0001"


def test_bought_on_day_31_is_not_attributed():
    _, facts = fold(decision(0, "d-aaaaaa01", "fund_sip"), purchase(31, "fund_sip"))
    assert facts.conversions == []
    assert "conversions" not in measures(facts)


def test_a_purchase_of_a_product_never_shown_is_not_a_conversion():
    _, facts = fold(decision(0, "d-aaaaaa01", "large_cd"), purchase(2, "fund_sip"))
    assert facts.conversions == []


def test_two_showings_attribute_to_the_last_touch_on_any_channel():
    _, facts = fold(decision(0, "d-aaaaaa01", "fund_sip"), decision(5, "d-aaaaaa02", "fund_sip", channel="mobile"),
                    purchase(8, "fund_sip"))
    (c,) = facts.conversions
    assert (c.decision_id, c.channel, c.days_after_shown) == ("d-aaaaaa02", "mobile", 3.0)


def test_accepted_at_the_touchpoint_is_kept_on_the_conversion():
    _, facts = fold(decision(0, "d-aaaaaa01", "fund_sip"), answer(0.01, "d-aaaaaa01", "fund_sip", "accepted"),
                    purchase(1, "fund_sip"))
    (c,) = facts.conversions
    assert c.accepted_at_touchpoint is True
    assert measures(facts) == {"shows": 1, "accepted": 1, "conversions": 1, "conversions_accepted": 1}


def test_answers_count_by_reason_and_move_the_evidence_of_the_product_and_its_segment():
    state, facts = fold(decision(0, "d-aaaaaa01", "fund_sip", "large_cd", "gold_account"),
                        answer(0.01, "d-aaaaaa01", "fund_sip", "accepted"),
                        answer(0.01, "d-aaaaaa01", "large_cd", "declined", "bad_timing"),
                        answer(0.02, "d-aaaaaa01", "gold_account", "ignored"))
    assert measures(facts) == {"shows": 3, "accepted": 1, "declined:bad_timing": 1, "ignored": 1}
    ev = evidence(facts)
    segment = state.vs_segment
    assert ev["fund_sip"][:2] == [1.0, 0.0] and ev[f"fund_sip|{segment}"][:2] == [1.0, 0.0]
    assert ev["large_cd"][:2] == [0.0, 1.0] and ev["gold_account"][:2] == [0.0, 1.0]
    # expected: the model propensity the decision logged for each answered offer
    assert ev["fund_sip"][3] == 0.3 and ev["large_cd"][3] == 0.2 and ev[f"gold_account|{segment}"][3] == 0.1
    everything = ev["*"]  # all products together (the answers 0.01 days apart: decayed a little)
    assert abs(everything[0] - 1.0) < 1e-3 and abs(everything[1] - 2.0) < 1e-3 and abs(everything[3] - 0.6) < 1e-3


def test_an_offer_with_no_answer_is_ignored_once_the_customer_is_seen_past_the_timeout():
    state, facts = fold(decision(0, "d-aaaaaa01", "fund_sip"), deposit(0.5))
    assert "ignored" not in measures(facts)
    state, later = apply_all(state, [deposit(1.5, 2)], P, facts := LoopFacts()), facts
    assert measures(later) == {"ignored": 1}
    at_s = (T0 + timedelta(days=1)).timestamp()  # counted at the timeout, not at the deposit
    assert later.answers[0] == ("fund_sip", False, 0.3, at_s, 1)


def test_a_late_answer_withdraws_the_implicit_ignore():
    _, facts = fold(decision(0, "d-aaaaaa01", "fund_sip"), deposit(2), answer(0.1, "d-aaaaaa01", "fund_sip",
                                                                             "accepted"))
    assert measures(facts) == {"shows": 1, "accepted": 1}
    ev = evidence(facts)["fund_sip"]
    assert abs(ev[1]) < 1e-12 and ev[0] > 0.9
    assert abs(ev[3] - 0.3 * ev[0]) < 1e-12  # one answer's expected left, decayed as its accept


def test_the_segment_evidence_uses_the_stored_form_of_domain_learning():
    """add_signed with sign +1 is add_answer on the stored JSON form."""
    e = Evidence()
    stored = None
    for accepted, expected, at_s in ((True, 0.3, 1000.0), (False, 0.05, 500.0), (True, 0.2, 90_000.0)):
        e = add_answer(e, accepted, expected, at_s, 30.0)
        stored = add_signed(stored, accepted, expected, at_s, 1, 30.0)
    assert stored == e.to_json()
    # a value of the older form [accepts, others, as_of_s] starts afresh, as in domain.learning
    old = [5.0, 7.0, 100.0]
    assert add_signed(old, True, 0.4, 200.0, 1, 30.0) == add_answer(Evidence.from_json(old), True, 0.4, 200.0,
                                                                     30.0).to_json() == [1.0, 0.0, 200.0, 0.4]


def test_an_answer_before_its_decision_is_counted_once_the_decision_arrives():
    ans = answer(0.01, "d-aaaaaa01", "fund_sip", "declined", "too_expensive")
    dec = decision(0, "d-aaaaaa01", "fund_sip", arm="control", model="v7")
    _, before = fold(ans)
    assert measures(before) == {} and before.answers == []  # its propensity is in the decision
    _, facts = fold(ans, dec)
    assert evidence(facts) == evidence(fold(dec, ans)[1])
    assert evidence(facts)["fund_sip"] == [0.0, 1.0, (T0 + timedelta(days=0.01)).timestamp(), 0.3]
    (day, name), n = next(iter(totals(facts).items()))
    assert totals(facts) == totals(fold(dec, ans)[1])
    fields = {parse_counter_field(name)[4]: parse_counter_field(name) for (_, name) in totals(facts)}
    assert fields["declined:too_expensive"][3:] == ("control", "declined:too_expensive", "v7")


def test_a_touch_kept_before_the_propensity_was_counts_but_adds_no_evidence():
    state, _ = fold(decision(0, "d-aaaaaa01", "fund_sip"))
    state.touches = {pid: [t[:9] for t in ts] for pid, ts in state.touches.items()}  # an older worker's state
    _, facts = apply_all(state, [answer(0.1, "d-aaaaaa01", "fund_sip", "accepted"), deposit(3)], P,
                         facts := LoopFacts()), facts
    assert measures(facts) == {"accepted": 1} and facts.answers == []


def test_a_decision_folded_after_the_purchase_moves_the_attribution_to_the_later_touch():
    events = [decision(0, "d-aaaaaa01", "fund_sip"), decision(4, "d-aaaaaa02", "fund_sip"), purchase(6, "fund_sip")]
    _, late = fold(events[2], events[0], events[1])
    _, ordered = fold(*events)
    assert final_conversions(late) == final_conversions(ordered)
    assert [c.decision_id for c in late.conversions] == ["d-aaaaaa01", "d-aaaaaa02"]  # re-recorded, same id
    assert totals(late) == totals(ordered)


def test_counters_are_filed_under_the_day_the_offer_was_shown():
    _, facts = fold(decision(0, "d-aaaaaa01", "fund_sip"), answer(3, "d-aaaaaa01", "fund_sip", "accepted"))
    assert {day for day, _, _ in facts.counts} == {"2026-03-02"}


def test_the_kept_touches_are_bounded():
    events = [decision(i * 0.01, f"d-bbbb{i:04d}", "fund_sip", "large_cd", "gold_account") for i in range(40)]
    state, _ = fold(*events)
    assert sum(len(t) for t in state.touches.values()) <= 24
    assert all(len(t) <= 4 for t in state.touches.values())


def test_touches_leave_the_state_past_the_window():
    state, _ = fold(decision(0, "d-aaaaaa01", "fund_sip"), purchase(1, "fund_sip"), deposit(40))
    assert state.touches == {} and state.bought == {}


def test_an_old_state_without_the_loop_fields_decodes():
    data = CustomerState(CUSTOMER).to_dict()
    for name in ("touches", "bought", "loop_due_s"):
        del data[name]
    state = CustomerState.from_dict(data)
    assert state.touches == {} and state.bought == {} and state.loop_due_s == 0.0


# --- properties ----------------------------------------------------------------------------------

PRODUCTS = ("fund_sip", "large_cd")


@st.composite
def customer_logs(draw):
    """One customer's decisions, outcomes and purchases as per-topic logs (each in time order).
    No deposits or calls, so the segment stays put and every count can be compared; all within
    31 days (an event later than the window plus a day finds its touches gone) and within the
    bounds of touches and purchases kept per product."""
    decisions, outcomes, purchases = [], [], []
    for i in range(draw(st.integers(0, 4))):  # within the bounds: at most 4 touches of a product
        day = draw(st.integers(0, 27 * 24)) / 24
        products = draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=2, unique=True))
        did = f"d-cccc{i:04d}"
        decisions.append(decision(day, did, *products, channel=draw(st.sampled_from(["teller", "mobile"]))))
        for product in products:
            kind = draw(st.sampled_from(["none", "accepted", "declined", "ignored", "shown"]))
            if kind != "none":
                at = day + draw(st.integers(0, 72)) / 24
                outcomes.append(answer(at, did, product, kind, "bad_timing" if kind == "declined" else None))
    for n in range(draw(st.integers(0, 4))):
        purchases.append(purchase(draw(st.integers(0, 30 * 24)) / 24, draw(st.sampled_from(PRODUCTS)), n))
    logs = [sorted(log, key=lambda e: e.occurred_at) for log in (decisions, outcomes, purchases)]
    return [log for log in logs if log]


def interleave(logs, choices):
    queues = [list(log) for log in logs]
    out = []
    for c in choices:
        live = [q for q in queues if q]
        if not live:
            break
        out.append(live[c % len(live)].pop(0))
    for q in queues:
        out.extend(q)
    return out


@settings(max_examples=300, deadline=None)
@given(customer_logs(), st.lists(st.integers(0, 5), max_size=40), st.lists(st.integers(0, 5), max_size=40))
def test_any_interleaving_of_the_topics_gives_the_same_conversions_counts_and_evidence(logs, order_a, order_b):
    state_a, a = fold(*interleave(logs, order_a))
    state_b, b = fold(*interleave(logs, order_b))
    assert (state_a.touches, state_a.bought) == (state_b.touches, state_b.bought)
    assert final_conversions(a) == final_conversions(b)
    assert totals(a) == totals(b)
    ea, eb = evidence(a), evidence(b)
    assert ea.keys() == eb.keys()
    for name in ea:
        # compared as seen at one time (the stored as_of_s may differ by a withdrawn answer)
        at = max(ea[name][2], eb[name][2])
        x, y = (Evidence.from_json(e) for e in (ea[name], eb[name]))
        from domain.learning import decayed_to
        x, y = decayed_to(x, at, 30.0), decayed_to(y, at, 30.0)
        assert abs(x.accepts - y.accepts) < 1e-9 and abs(x.others - y.others) < 1e-9, name
        assert abs((x.expected or 0) - (y.expected or 0)) < 1e-9, name


@settings(max_examples=100, deadline=None)
@given(customer_logs(), st.lists(st.integers(0, 5), max_size=40), st.randoms(use_true_random=False))
def test_duplicates_and_redeliveries_through_the_store_count_nothing_twice(logs, order, random):
    events = interleave(logs, order)
    topic = {OfferDecisionMade: OFFER_DECISIONS, OfferOutcomeRecorded: OFFER_OUTCOMES, ProductPurchased: PURCHASES,
             DepositPosted: DEPOSITS}
    records = [SourcedEvent(e, topic[type(e)], 0, i) for i, e in enumerate(events)]
    once = MemoryStateStore()
    once.settle(once.apply_batch(records, P, 1e9).units, 1e9)
    twice = MemoryStateStore()
    replayed = records + [SourcedEvent(r.event, r.topic, 1, r.offset) for r in random.sample(records, len(records))]
    for start in range(0, len(replayed), 3):  # small batches, each settled
        result = twice.apply_batch(replayed[start:start + 3], P, 1e9)
        twice.settle(result.units, 1e9)
        twice.settle(result.units, 1e9)  # a settle repeated adds nothing
    def nonzero(store):
        return {f"{d}|{n}": v for d, counts in store.loop_counts.items() for n, v in counts.items() if v}

    assert nonzero(twice) == nonzero(once)
    assert twice.evidence == once.evidence
    _, facts = fold(*events)
    assert nonzero(once) == {f"{d}|{n}": v for (d, n), v in totals(facts).items()}


def test_an_unsettled_unit_is_handed_back_until_it_is_settled():
    store = MemoryStateStore()
    first = store.apply_batch([SourcedEvent(decision(0, "d-aaaaaa01", "fund_sip"), OFFER_DECISIONS, 0, 0)], P, 1e9)
    assert len(first.units) == 1  # the writer "died" here: nothing settled
    again = store.apply_batch([SourcedEvent(decision(0, "d-aaaaaa01", "fund_sip"), OFFER_DECISIONS, 0, 0)], P, 1e9)
    assert again.redelivered == 1 and again.units == first.units
    assert store.settle(again.units, 1e9) == 1 and store.settle(first.units, 1e9) == 0
    assert store.apply_batch([SourcedEvent(deposit(0.1), DEPOSITS, 0, 0)], P, 1e9).units == []
    rows = store.loop_stats().counts(date(2026, 3, 2), date(2026, 3, 2))
    assert [(r.product_id, r.channel, r.arm, r.model_version, r.shows) for r in rows] == [
        ("fund_sip", "teller", "treatment", "v1", 1)]


def test_the_conversion_example_in_the_events_doc_is_a_valid_record():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md").read_text(encoding="utf-8")
    example = doc.split("## Conversions")[1].split("```text\n")[1].split("\n```")[0]
    record = ConversionAttributed.model_validate_json(example)
    assert record.days_after_shown == (record.purchased_at - record.shown_at).total_seconds() / 86_400
