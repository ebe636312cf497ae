"""Online evidence (domain.learning): answers decay, late answers fold in any order, the ratio
observed / expected starts at its prior mean and follows the answers, the older stored form is
read as "no expected"."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st

from domain.learning import DAY_S, Evidence, add_answer, decayed_to, ratio, ratio_posterior

HALF_LIFE = 30.0


def test_an_answer_halves_after_one_half_life() -> None:
    e = add_answer(Evidence(), True, 0.4, 1_000.0, HALF_LIFE)
    later = decayed_to(e, 1_000.0 + HALF_LIFE * DAY_S, HALF_LIFE)
    assert math.isclose(later.accepts, 0.5) and later.others == 0.0
    assert later.expected is not None and math.isclose(later.expected, 0.2)


def test_no_answer_means_the_prior_mean() -> None:
    assert ratio(None, 1.0, 20.0) == 1.0
    assert math.isclose(ratio(Evidence(), 0.3, 20.0), 0.3)


def test_accepts_below_what_the_model_expected_pull_the_ratio_down() -> None:
    e = Evidence()
    for i in range(200):  # the model expected 0.5 x 200 = 100 acceptances; 10 came
        e = add_answer(e, i % 20 == 0, 0.5, 1_000.0, HALF_LIFE)
    assert e.accepts == 10 and e.others == 190 and math.isclose(e.expected or 0, 100.0)
    shape, rate = ratio_posterior(e, 1.0, 20.0)
    assert (shape, rate) == (30.0, 120.0)  # Gamma(20 + 10, 20 + 100): the ratio's mean 0.25
    assert ratio(e, 1.0, 20.0) == 0.25


def test_a_value_of_the_older_form_informs_no_ratio_and_starts_afresh() -> None:
    old = Evidence.from_json([40.0, 60.0, 1_000.0])
    assert old.expected is None and old.answers == 100.0
    assert ratio(old, 0.5, 20.0) == 0.5  # the prior alone
    assert old.to_json() == [40.0, 60.0, 1_000.0]
    fresh = add_answer(old, True, 0.2, 2_000.0, HALF_LIFE)
    assert (fresh.accepts, fresh.others, fresh.expected) == (1.0, 0.0, 0.2)
    assert Evidence.from_json(fresh.to_json()) == fresh


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1), st.floats(0, 90 * DAY_S)), min_size=1, max_size=12),
       st.randoms())
def test_any_order_of_answers_gives_the_same_evidence(answers, rnd) -> None:  # type: ignore[no-untyped-def]
    def fold(items):  # type: ignore[no-untyped-def]
        e = Evidence()
        for accepted, expected, at in items:
            e = add_answer(e, accepted, expected, at, HALF_LIFE)
        return e

    shuffled = list(answers)
    rnd.shuffle(shuffled)
    a, b = fold(answers), fold(shuffled)
    assert a.as_of_s == b.as_of_s
    assert math.isclose(a.accepts, b.accepts, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(a.others, b.others, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(a.expected or 0, b.expected or 0, rel_tol=1e-9, abs_tol=1e-12)
