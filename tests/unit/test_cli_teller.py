"""``nbo teller``'s prompt: a mistyped answer is explained and asked again; without a terminal a
missing answer fails before anything is requested (the offer request is logged as a decision)."""

from __future__ import annotations

import io

import pytest

from services.cli import command_parser
from services.commands import teller
from services.commands.teller import Prompt, parse_answer, parse_customer, parse_kind, parse_reason


def scripted(*typed: str) -> tuple[Prompt, list[str], io.StringIO]:
    """A prompt answered by ``typed`` in turn; returns it, the prompts it showed and what it said."""
    answers = iter(typed)
    shown: list[str] = []
    said = io.StringIO()

    def ask(prompt: str) -> str:
        shown.append(prompt)
        return next(answers)

    return Prompt(ask, interactive=True, err=said), shown, said


def test_a_mistyped_answer_is_asked_again():
    prompt, shown, said = scripted("x", "yes", "d")
    assert prompt(teller.ANSWER_PROMPT, parse_answer, "--answer") == "declined"
    assert shown == [teller.ANSWER_PROMPT] * 3
    assert said.getvalue().count("answer a (accepted), d (declined), n (not now) or s (skip); try again.") == 2


@pytest.mark.parametrize("typed, answer", [("a", "accepted"), ("accepted", "accepted"), ("N", "not_now"),
                                           ("not now", "not_now"), ("s", "skip")])
def test_answers_by_letter_or_word(typed, answer):
    assert parse_answer(typed) == answer


@pytest.mark.parametrize("typed", ["nope", "ok", "", "acc"])
def test_words_that_are_no_answer_are_refused(typed):
    with pytest.raises(ValueError):
        parse_answer(typed)


def test_a_mistyped_reason_customer_or_kind_is_asked_again():
    prompt, shown, said = scripted("expensive", "too_expensive")
    assert prompt("Reason: ", parse_reason, "--reason") == "too_expensive"
    assert "the reason must be one of not_interested" in said.getvalue()

    prompt, _, said = scripted("C 30", "C000000030")
    assert prompt("Customer id: ", parse_customer, "--customer") == "C000000030"
    assert "customer id 'C 30' is not one" in said.getvalue()

    prompt, _, said = scripted("4111 1111 1111 1111", "CUST-000123")
    assert prompt("Customer id: ", parse_customer, "--customer") == "CUST-000123"
    assert "is not one" in said.getvalue() and "4111" not in said.getvalue()

    prompt, _, _ = scripted("x", "W")
    assert prompt("Deposit or withdrawal? ", parse_kind, "--deposit or --withdraw") == "withdrawal"


def test_a_mistyped_amount_is_asked_again():
    from services.clients import yuan_to_minor

    prompt, _, said = scripted("five", "-3", "5,000.50")
    assert prompt("Amount in yuan: ", yuan_to_minor, "--deposit") == 500050
    assert "not a number of yuan" in said.getvalue() and "must be positive" in said.getvalue()


def test_without_a_terminal_nothing_is_asked():
    def never(prompt: str) -> str:
        raise AssertionError("asked without a terminal")

    with pytest.raises(ValueError, match="--answer is missing; give it on the command line"):
        Prompt(never, interactive=False)(teller.ANSWER_PROMPT, parse_answer, "--answer")


@pytest.mark.parametrize("argv, says", [
    (["--answer", "declined"], "--answer declined needs --reason"),
    ([], "--answer is missing"),
    (["--answer", "accepted", "--reason", "too_expensive"], "--reason goes with --answer declined"),
    (["--customer", "no good"], "customer id 'no good' is not one"),
    (["--deposit", "0", "--answer", "skip"], "must be positive"),
])
def test_mistakes_on_the_command_line_fail_before_the_offer_is_requested(monkeypatch, capsys, argv, says):
    def no_request(*args, **kwargs):
        raise AssertionError("the offer API was called")

    monkeypatch.setattr(teller, "OfferApi", no_request)
    args = command_parser("teller").parse_args(["--customer", "C000000030", "--deposit", "500", *argv])
    assert teller.run(args, Prompt(interactive=False)) == 1
    assert says in capsys.readouterr().err
