"""Closed-loop traffic for the stream tests: offer decisions, answers and purchases of customers
of their own (no deposits or calls, so their segment stays put whatever order the topics are
read in), the oracle (the same records folded in process, with the facts summed) and readers of
what the worker wrote (the ``{learn}`` counters and evidence, the conversions topic)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

import orjson

from adapters import keys
from domain.attribution import LoopFacts, add_signed
from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.codec import InvalidEvent, decode, encode
from schemas.events import OfferDecisionMade, OfferedItem, OfferOutcomeRecorded, ProductPurchased
from schemas.topics import CONVERSIONS, OFFER_DECISIONS, OFFER_OUTCOMES, PURCHASES, partition_key

#: Products the loop traffic offers; the simulated traffic's outcomes name fund_sip only.
LOOP_PRODUCTS = ("large_cd", "consumer_loan", "credit_card_gold", "accident_insurance")
HALF_LIFE_DAYS = 30.0


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes


def loop_records(customers: int, seed: int = 1, first: int = 900_000_000) -> list[Record]:
    """Per customer, in time order over 31 days ending 5 days ago: decisions (1 to 3 offers, on
    any channel and arm), answers to some offers (some days late, past the ignore timeout), and
    purchases of products shown to them. Within 31 days, so a worker reading one topic's
    backlog far ahead of another's still finds every touch (the attribution window plus a day
    is how far ``domain.attribution`` keeps them)."""
    rng = random.Random(seed)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=36)
    records: list[Record] = []
    for c in range(customers):
        customer_id = f"C{first + c:09d}"
        key = partition_key(customer_id)
        timeline: list[tuple[datetime, str, bytes]] = []
        shown: list[tuple[datetime, str]] = []
        for d in range(rng.randint(1, 4)):
            at = start + timedelta(minutes=rng.randint(0, 20 * 24 * 60))
            decision_id = f"d-s{seed}c{c}n{d}"
            products = rng.sample(LOOP_PRODUCTS, rng.randint(1, 3))
            event = OfferDecisionMade(
                event_id=f"dec-s{seed}c{c}n{d}", customer_id=customer_id, occurred_at=at, source="offer_api",
                decision_id=decision_id, channel=rng.choice(["teller", "call_centre", "mobile"]),
                model_version=rng.choice(["v1", "v2"]), arm=rng.choice(["treatment", "treatment", "control"]),
                offers=tuple(OfferedItem(product_id=p, rank=i, score=1.0, propensity=round(rng.uniform(0.01, 0.6), 4),
                                         probability=1.0)
                             for i, p in enumerate(products, start=1)))
            timeline.append((at, OFFER_DECISIONS, encode(event)))
            for product in products:
                shown.append((at, product))
                kind = rng.choice(["none", "accepted", "declined", "ignored", "shown", "accepted"])
                if kind == "none":
                    continue
                # an answer within minutes, or (one in five) days later, past the ignore timeout
                later = timedelta(days=rng.randint(2, 4)) if rng.random() < 0.2 else timedelta(minutes=rng.randint(1, 30))
                answer = OfferOutcomeRecorded(
                    event_id=f"oc-s{seed}c{c}n{d}{product}{kind}", customer_id=customer_id, occurred_at=at + later,
                    source="offer_api", decision_id=decision_id, product_id=product, channel=event.channel,
                    outcome=kind, decline_reason=rng.choice(["bad_timing", "too_expensive"]) if kind == "declined"
                    else None)
                timeline.append((at + later, OFFER_OUTCOMES, encode(answer)))
        for n in range(rng.randint(0, 2)):
            at_shown, product = rng.choice(shown)
            days = rng.choice([0.5, 3, 10, 29])
            at = min(at_shown + timedelta(days=days), start + timedelta(days=30.9))
            buy = ProductPurchased(event_id=f"buy-s{seed}c{c}n{n}", customer_id=customer_id, occurred_at=at,
                                   source="core_banking", product_id=product, amount_minor=100, channel="branch")
            timeline.append((at, PURCHASES, encode(buy)))
        timeline.sort(key=lambda t: t[0])
        records += [Record(topic, key, value) for _, topic, value in timeline]
    return records


@dataclass
class LoopTotals:
    counts: dict[str, dict[str, int]]  # UTC day -> counter field -> count (zeros left out)
    evidence: dict[str, list[float]]  # evidence field -> [accepts, others, as_of_s, expected]
    conversions: dict[str, dict]  # conversion id -> the record the warehouse keeps


def loop_oracle(records: Iterable[Record], params: FeatureParams = FeatureParams()) -> LoopTotals:
    """The facts of every valid record (first occurrence of each event id), folded per customer
    in record order, summed as the settle script and the warehouse sum them."""
    by_customer: dict[str, list] = {}
    seen: set[str] = set()
    for record in records:
        try:
            event = decode(record.value)
        except InvalidEvent:
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        by_customer.setdefault(event.customer_id, []).append(event)
    facts = LoopFacts()
    for customer_id, events in by_customer.items():
        apply_all(CustomerState(customer_id), events, params, facts)
    counts: dict[str, dict[str, int]] = {}
    for day, name, delta in facts.counts:
        counts.setdefault(day, {})[name] = counts.setdefault(day, {}).get(name, 0) + delta
    evidence: dict[str, list[float]] = {}
    for name, accepted, expected, at_s, sign in facts.answers:
        evidence[name] = add_signed(evidence.get(name), accepted, expected, at_s, sign, HALF_LIFE_DAYS)
    return LoopTotals(_nonzero(counts), evidence, warehouse([c.to_json() for c in facts.conversions]))


def _nonzero(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {d: kept for d, fields in counts.items() if (kept := {f: n for f, n in fields.items() if n})}


def warehouse(records: Iterable[dict]) -> dict[str, dict]:
    """Per conversion id, the record with the greatest (shown_at, decision_id, accepted)."""
    kept: dict[str, dict] = {}
    for r in records:
        old = kept.get(r["conversion_id"])
        rank = (r["shown_at"], r["decision_id"], r["accepted_at_touchpoint"])
        if old is None or rank > (old["shown_at"], old["decision_id"], old["accepted_at_touchpoint"]):
            kept[r["conversion_id"]] = r
    return kept


def stored_loop(client, prefix: str) -> tuple[dict[str, dict[str, int]], dict[str, list[float]]]:
    """(counts by day, evidence) as the worker wrote them to the ``{learn}`` keys."""
    evidence = {f.decode(): orjson.loads(v) for f, v in client.hgetall(keys.learn_key(prefix)).items()}
    counts: dict[str, dict[str, int]] = {}
    base = keys.loop_counts_key(prefix, "")
    for key in client.scan_iter(match=base + "*", count=1000):
        text = key.decode()
        counts[text[len(base):]] = {f.decode(): int(n) for f, n in client.hgetall(text).items()}
    return _nonzero(counts), evidence


def read_conversions(bootstrap: str, expected: int, deadline_s: float = 60.0) -> list[dict]:
    """Every record on the conversions topic, read until at least ``expected`` arrived and the
    topic stays quiet for a moment (or the deadline)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(CONVERSIONS, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000, group_id=None)
    out: list[dict] = []
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            got = [orjson.loads(m.value) for m in consumer]  # until 2 s without a record
            out += got
            if len(out) >= expected and not got:
                break
    finally:
        consumer.close()
    return out


def evidence_close(got: dict[str, list[float]], want: dict[str, list[float]], fields: Iterable[str]) -> list[str]:
    """The fields whose evidence differs (compared decayed to the later of the two as_of_s)."""
    bad = []
    for name in fields:
        g, w = got.get(name), want.get(name)
        if g is None or w is None:
            bad.append(f"{name}: {g} != {w}")
            continue
        at = max(g[2], w[2])
        g2, w2 = add_signed(g, True, 0.0, at, 0, HALF_LIFE_DAYS), add_signed(w, True, 0.0, at, 0, HALF_LIFE_DAYS)
        if len(g) != 4 or any(abs(g2[i] - w2[i]) > 1e-9 for i in (0, 1, 3)):
            bad.append(f"{name}: {g} != {w}")
    return bad
