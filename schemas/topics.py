"""Topic names and the partition key.

Every input topic is keyed by ``customer_id`` (UTF-8 bytes), so all of one customer's events
land on one partition and are consumed in the order they were produced.
"""

from __future__ import annotations

DEPOSITS = "nbo.deposits"
HOTLINE = "nbo.hotline"
POS = "nbo.pos"
PURCHASES = "nbo.purchases"
PROFILES = "nbo.profiles"
OFFER_OUTCOMES = "nbo.offer-outcomes"
OFFER_DECISIONS = "nbo.offer-decisions"
DEAD_LETTER = "nbo.dead-letter"
#: Purchases attributed to the offers that led to them (``schemas.conversions``), written by the
#: stream workers, keyed by customer id.
CONVERSIONS = "nbo.conversions"

#: Topics the stream workers consume (the decisions too: they feed attribution and the loop's
#: counters, ``domain.attribution``).
INPUT_TOPICS: tuple[str, ...] = (DEPOSITS, HOTLINE, POS, PURCHASES, OFFER_OUTCOMES, PROFILES, OFFER_DECISIONS)
ALL_TOPICS: tuple[str, ...] = (*INPUT_TOPICS, DEAD_LETTER, CONVERSIONS)

#: Which topic each event type is published to.
TOPIC_FOR_TYPE: dict[str, str] = {
    "deposit": DEPOSITS,
    "hotline": HOTLINE,
    "pos": POS,
    "purchase": PURCHASES,
    "offer_outcome": OFFER_OUTCOMES,
    "offer_decision": OFFER_DECISIONS,
    "profile": PROFILES,
}


def partition_key(customer_id: str) -> bytes:
    """The Kafka message key for a customer's events."""
    return customer_id.encode("utf-8")
