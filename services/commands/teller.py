"""``nbo teller``: a counter session at a teller terminal.

The teller picks the customer and keys in the deposit or withdrawal; the terminal asks the offer
API for the one offer to make while the transaction posts (the transaction in hand is part of the
request), shows it with the pitch to say, and records the customer's answer:

    nbo teller --customer C000000030 --deposit 5000
    nbo teller --customer C000000030 --withdraw 800 --answer declined --reason too_expensive

Anything not given on the command line is asked for at the prompt. "Not now" is recorded as a
decline for bad timing, which holds the product back for a short cool-down only.
"""

from __future__ import annotations

import argparse
import sys

from schemas.events import DeclineReason
from services.clients import ClientError, OfferApi, default_api_url, key_for, yuan_to_minor

ANSWERS = ("accepted", "declined", "not_now", "skip")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=None, help="offer API base URL (default NBO_API_URL or the local API)")
    parser.add_argument("--key", default=None, help="teller API key (default NBO_TELLER_KEY, else the demo key)")
    parser.add_argument("--customer", default=None, help="customer id, e.g. C000000030")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--deposit", metavar="YUAN", default=None, help="a deposit of this many yuan")
    amount.add_argument("--withdraw", metavar="YUAN", default=None, help="a withdrawal of this many yuan")
    parser.add_argument("--answer", choices=ANSWERS, default=None, help="the customer's answer to the offer")
    parser.add_argument("--reason", choices=[r.value for r in DeclineReason], default=None,
                        help="why the customer declined (with --answer declined)")
    parser.add_argument("--terminal", default="T001", help="terminal id sent with the request (default T001)")


def run(args: argparse.Namespace) -> int:
    try:
        customer_id = args.customer or _ask("Customer id: ")
        kind, amount_text = _transaction(args)
        amount_minor = yuan_to_minor(amount_text)
        with OfferApi(args.api or default_api_url(), key_for("teller", args.key)) as api:
            response = api.teller_offer(customer_id, kind, amount_minor, args.terminal)
            print(f"Customer {customer_id}: {kind} of ¥{amount_minor / 100:,.2f}")
            offer = _show(response)
            if offer is None:
                return 0
            answer = args.answer or _ask_answer()
            if answer == "skip":
                print("Nothing recorded.")
                return 0
            outcome, reason = _outcome(answer, args.reason)
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


def _transaction(args: argparse.Namespace) -> tuple[str, str]:
    if args.deposit is not None:
        return "deposit", args.deposit
    if args.withdraw is not None:
        return "withdrawal", args.withdraw
    kind = _ask("Deposit or withdrawal? [d/w]: ").strip().lower()
    if kind not in {"d", "w", "deposit", "withdrawal"}:
        raise ValueError("answer d (deposit) or w (withdrawal)")
    return ("deposit" if kind.startswith("d") else "withdrawal"), _ask("Amount in yuan: ")


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
    print(f"  Why:  {offer['reason']['en']}\n")
    return offer


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        raise ValueError(f"{prompt.strip(': ')} is missing; give it on the command line (see nbo teller --help)")
    return input(prompt).strip()


def _ask_answer() -> str:
    typed = _ask("Customer's answer: [a]ccepted, [d]eclined, [n]ot now, [s]kip: ").lower()
    for answer in ANSWERS:
        if typed and answer.startswith(typed[0]):
            return answer
    raise ValueError("answer a, d, n or s")


def _outcome(answer: str, reason: str | None) -> tuple[str, str | None]:
    if answer == "accepted":
        return "accepted", None
    if answer == "not_now":
        return "declined", "bad_timing"
    if reason is None:
        codes = [r.value for r in DeclineReason]
        typed = _ask(f"Reason ({', '.join(codes)}): ")
        if typed not in codes:
            raise ValueError(f"reason must be one of {', '.join(codes)}")
        reason = typed
    return "declined", reason
