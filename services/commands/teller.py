"""``nbo teller``: a counter session at a teller terminal.

The teller picks the customer and keys in the deposit or withdrawal; the terminal asks the offer
API for the one offer to make while the transaction posts (the transaction in hand is part of the
request), shows it with the pitch to say, and records the customer's answer:

    nbo teller --customer C000000030 --deposit 5000
    nbo teller --customer C000000030 --withdraw 800 --answer declined --reason too_expensive

Anything not given on the command line is asked for at the prompt, and a mistyped answer there is
explained and asked again. Without a terminal (a script, a pipe) nothing can be asked, so every
answer must be on the command line; what is given is checked before the offer is requested, since
the request itself is logged as a decision. "Not now" is recorded as a decline for bad timing,
which holds the product back for a short cool-down only.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, TextIO, TypeVar

from schemas.events import DeclineReason
from schemas.rules import DEFAULT_RULES, looks_like_card_number
from services.clients import ClientError, OfferApi, default_api_url, key_for, yuan_to_minor

T = TypeVar("T")

ANSWERS = ("accepted", "declined", "not_now", "skip")
REASONS = tuple(r.value for r in DeclineReason)
ANSWER_PROMPT = "Customer's answer: [a]ccepted, [d]eclined, [n]ot now, [s]kip: "


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=None, help="offer API base URL (default NBO_API_URL or the local API)")
    parser.add_argument("--key", default=None, help="teller API key (default NBO_TELLER_KEY, else the demo key)")
    parser.add_argument("--customer", default=None,
                        help="customer id, e.g. C000000030 (default: asked at the prompt)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--deposit", metavar="YUAN", default=None,
                        help="a deposit of this many yuan (default: asked at the prompt, as is --withdraw)")
    amount.add_argument("--withdraw", metavar="YUAN", default=None,
                        help="a withdrawal of this many yuan (default: asked at the prompt, as is --deposit)")
    parser.add_argument("--answer", choices=ANSWERS, default=None,
                        help="the customer's answer to the offer (default: asked at the prompt once the offer "
                             "is shown)")
    parser.add_argument("--reason", choices=REASONS, default=None,
                        help="why the customer declined, only with --answer declined (default: asked at the "
                             "prompt)")
    parser.add_argument("--terminal", default="T001", help="terminal id sent with the request (default T001)")


class Prompt:
    """Asks the teller at the terminal. A typed answer that does not parse is explained and asked
    again; without a terminal, asking fails with what to give on the command line instead."""

    def __init__(self, ask: Callable[[str], str] = input, interactive: bool | None = None,
                 err: TextIO | None = None) -> None:
        self.ask = ask
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self.err = err

    def __call__(self, prompt: str, parse: Callable[[str], T], option: str) -> T:
        if not self.interactive:
            raise ValueError(f"{option} is missing; give it on the command line (see nbo teller --help)")
        while True:
            typed = self.ask(prompt).strip()
            try:
                return parse(typed)
            except ValueError as exc:
                print(f"  {exc}; try again.", file=self.err or sys.stderr, flush=True)


def parse_customer(typed: str) -> str:
    """The id as typed, if the contract's base rule takes it (the API checks the bank's own pattern)."""
    refused = DEFAULT_RULES.customer_id_refusal(typed)
    if refused is not None:
        shown = "that" if looks_like_card_number(typed) else repr(typed)  # never echo a card number
        raise ValueError(f"customer id {shown} is not one: {refused}")
    return typed


def parse_kind(typed: str) -> str:
    kind = typed.lower()
    if kind not in {"d", "w", "deposit", "withdrawal"}:
        raise ValueError("answer d (deposit) or w (withdrawal)")
    return "deposit" if kind.startswith("d") else "withdrawal"


def parse_answer(typed: str) -> str:
    typed = typed.lower().replace(" ", "_")
    for answer in ANSWERS:
        if typed and (typed == answer or (len(typed) == 1 and answer.startswith(typed))):
            return answer
    raise ValueError("answer a (accepted), d (declined), n (not now) or s (skip)")


def parse_reason(typed: str) -> str:
    if typed not in REASONS:
        raise ValueError(f"the reason must be one of {', '.join(REASONS)}")
    return typed


def run(args: argparse.Namespace, prompt: Prompt | None = None) -> int:
    prompt = prompt or Prompt()
    try:
        # Everything that can be checked is checked before the offer request, which is logged as a decision.
        customer_id = parse_customer(args.customer) if args.customer is not None else None
        given = _given_transaction(args)
        _check_answer_options(args, prompt.interactive)
        customer_id = customer_id or prompt("Customer id: ", parse_customer, "--customer")
        kind, amount_minor = given or _asked_transaction(prompt)
        with OfferApi(args.api or default_api_url(), key_for("teller", args.key)) as api:
            response = api.teller_offer(customer_id, kind, amount_minor, args.terminal)
            print(f"Customer {customer_id}: {kind} of ¥{amount_minor / 100:,.2f}")
            offer = _show(response)
            if offer is None:
                return 0
            answer = args.answer or prompt(ANSWER_PROMPT, parse_answer, "--answer")
            if answer == "skip":
                print("Nothing recorded.")
                return 0
            outcome, reason = _outcome(answer, args.reason, prompt)
            ack = api.record_outcome(response, offer["product_id"], outcome, reason)
            said = f"{outcome} ({reason.replace('_', ' ')})" if reason else outcome
            print(f"Recorded: {offer['name']} {said} (event {ack['event_id']})")
            return 0
    except (ClientError, ValueError) as exc:
        print(f"nbo teller: {exc}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("\nnbo teller: session ended, nothing recorded", file=sys.stderr)
        return 1


def _given_transaction(args: argparse.Namespace) -> tuple[str, int] | None:
    if args.deposit is not None:
        return "deposit", yuan_to_minor(args.deposit)
    if args.withdraw is not None:
        return "withdrawal", yuan_to_minor(args.withdraw)
    return None


def _asked_transaction(prompt: Prompt) -> tuple[str, int]:
    kind = prompt("Deposit or withdrawal? [d/w]: ", parse_kind, "--deposit or --withdraw")
    return kind, prompt("Amount in yuan: ", yuan_to_minor, f"--{'deposit' if kind == 'deposit' else 'withdraw'}")


def _check_answer_options(args: argparse.Namespace, interactive: bool) -> None:
    if args.reason is not None and args.answer not in (None, "declined"):
        raise ValueError(f"--reason goes with --answer declined, not --answer {args.answer}")
    if interactive:
        return
    if args.answer is None:
        raise ValueError("--answer is missing; without a terminal give it on the command line "
                         f"({', '.join(ANSWERS)}; skip records nothing)")
    if args.answer == "declined" and args.reason is None:
        raise ValueError(f"--answer declined needs --reason ({', '.join(REASONS)}); nothing was requested")


def _show(response: dict) -> dict | None:
    """Prints the offer the teller should make; returns it (None when there is nothing to offer)."""
    print(f"Model {response['model_version']}" + ("  (degraded: a safe general offer; customer data "
                                                    "is unavailable right now)" if response["degraded"] else ""))
    action = response.get("service_action")
    if action:
        print(f"Do first: {action['en']}\n          {action['zh']}")
    if not response["offers"]:
        print("No offer for this customer right now.")
        return None
    offer = response["offers"][0]
    print(f"\nOffer: {offer['name']} / {offer['name_zh']}")
    print(f"  Say:  {offer['pitch']['en']}")
    print(f"  话术: {offer['pitch']['zh']}")
    print(f"  Why:  {offer['reason']['en']}\n", flush=True)
    return offer


def _outcome(answer: str, reason: str | None, prompt: Prompt) -> tuple[str, str | None]:
    if answer == "accepted":
        return "accepted", None
    if answer == "not_now":
        return "declined", "bad_timing"
    return "declined", reason or prompt(f"Reason ({', '.join(REASONS)}): ", parse_reason, "--reason")
