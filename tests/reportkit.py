"""Traffic with a known effect for the effectiveness report's tests: offer decisions, answers and
purchases of customers of their own, in which treatment converts better than control on some
products and not on others, and declines have a product's own reasons; and the counter rows the
same records give when folded in process (``loopkit.loop_oracle``)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

from adapters.redis_store import count_rows
from adapters.ports import LoopCountRow
from loopkit import Record, loop_oracle
from schemas.codec import encode
from schemas.events import OfferDecisionMade, OfferedItem, OfferOutcomeRecorded, ProductPurchased
from schemas.topics import OFFER_DECISIONS, OFFER_OUTCOMES, PURCHASES, partition_key

#: product -> (conversion rate in treatment, in control, its most frequent decline reason)
EFFECTS: dict[str, tuple[float, float, str]] = {
    "fund_sip": (0.30, 0.10, "too_expensive"),
    "credit_card_gold": (0.25, 0.12, "has_it_elsewhere"),
    "consumer_loan": (0.12, 0.10, "bad_timing"),
    "accident_insurance": (0.08, 0.08, "not_interested"),
}
CHANNELS = ("teller", "call_centre", "mobile")


def effect_records(customers: int, seed: int, first: int, start: datetime, control_share: float = 0.3,
                   products: dict[str, tuple[float, float, str]] = EFFECTS) -> list[Record]:
    """Per customer one decision (1 or 2 of ``products``, one channel, its arm) within the 10 days
    from ``start``, an answer to most offers, and a purchase of an offered product with the
    product's rate for the arm, 1 to 3 days after the showing."""
    rng = random.Random(seed)
    names = list(products)
    records: list[Record] = []
    for c in range(customers):
        customer_id = f"C{first + c:09d}"
        key = partition_key(customer_id)
        arm = "control" if rng.random() < control_share else "treatment"
        at = start + timedelta(minutes=rng.randint(0, 10 * 24 * 60 - 1))
        offered = rng.sample(names, rng.randint(1, 2))
        decision_id = f"d-report{seed}c{c}"
        channel = rng.choice(CHANNELS)
        timeline = [(at, OFFER_DECISIONS, encode(OfferDecisionMade(
            event_id=f"dec-r{seed}c{c}", customer_id=customer_id, occurred_at=at, source="offer_api",
            decision_id=decision_id, channel=channel, model_version="v7", arm=arm,
            offers=tuple(OfferedItem(product_id=p, rank=i, score=1.0, propensity=0.2, probability=1.0)
                         for i, p in enumerate(offered, start=1)))))]
        for p in offered:
            rate_t, rate_c, top_reason = products[p]
            buys = rng.random() < (rate_t if arm == "treatment" else rate_c)
            answer = "accepted" if buys and rng.random() < 0.7 else rng.choice(["declined", "declined", "shown"])
            reason = None
            if answer == "declined":
                reason = top_reason if rng.random() < 0.6 else rng.choice(["not_interested", "bad_timing", "other"])
            answered = at + timedelta(minutes=rng.randint(1, 20))
            timeline.append((answered, OFFER_OUTCOMES, encode(OfferOutcomeRecorded(
                event_id=f"oc-r{seed}c{c}{p}", customer_id=customer_id, occurred_at=answered, source="offer_api",
                decision_id=decision_id, product_id=p, channel=channel, outcome=answer, decline_reason=reason))))
            if buys:
                bought = at + timedelta(days=rng.randint(1, 3))
                timeline.append((bought, PURCHASES, encode(ProductPurchased(
                    event_id=f"buy-r{seed}c{c}{p}", customer_id=customer_id, occurred_at=bought,
                    source="core_banking", product_id=p, amount_minor=100, channel="branch"))))
        timeline.sort(key=lambda t: t[0])
        records += [Record(topic, key, value) for _, topic, value in timeline]
    return records


def oracle_rows(records: list[Record]) -> list[LoopCountRow]:
    """The counter rows the records give, folded in process (what the worker should settle)."""
    counts = loop_oracle(records).counts
    return count_rows({date.fromisoformat(day): fields for day, fields in counts.items()})


def days_ago(n: int) -> datetime:
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=n)
