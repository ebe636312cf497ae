"""Online evidence (domain.learning): answers decay, late answers fold in any order, the posterior
starts at the model's propensity."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st

from domain.learning import DAY_S, Evidence, add_answer, decayed_to, posterior

HALF_LIFE = 30.0


def test_an_answer_halves_after_one_half_life() -> None:
    e = add_answer(Evidence(), True, 1_000.0, HALF_LIFE)
    later = decayed_to(e, 1_000.0 + HALF_LIFE * DAY_S, HALF_LIFE)
    assert math.isclose(later.accepts, 0.5) and later.others == 0.0


def test_no_answer_means_the_model_alone() -> None:
    alpha, beta = posterior(Evidence(), 0.2, 10.0)
    assert math.isclose(alpha / (alpha + beta), 0.2)


def test_declines_pull_the_posterior_down() -> None:
    e = Evidence()
    for i in range(20):
        e = add_answer(e, False, 1_000.0 + i, HALF_LIFE)
    alpha, beta = posterior(e, 0.2, 10.0)
    assert alpha / (alpha + beta) < 0.1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 90 * DAY_S)), min_size=1, max_size=12), st.randoms())
def test_any_order_of_answers_gives_the_same_evidence(answers, rnd) -> None:  # type: ignore[no-untyped-def]
    def fold(items):  # type: ignore[no-untyped-def]
        e = Evidence()
        for accepted, at in items:
            e = add_answer(e, accepted, at, HALF_LIFE)
        return e

    shuffled = list(answers)
    rnd.shuffle(shuffled)
    a, b = fold(answers), fold(shuffled)
    assert a.as_of_s == b.as_of_s
    assert math.isclose(a.accepts, b.accepts, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(a.others, b.others, rel_tol=1e-9, abs_tol=1e-12)
