"""Offer response parts that the API makes once and reuses: decision ids and per-product text."""

from __future__ import annotations

import re

from domain.catalog import load_catalog
from schemas.events import DECISION_ID_PATTERN, OfferChannel
from services.api.decision_ids import DecisionIds
from services.api.views import product_parts


def test_decision_ids_are_unique_within_and_across_processes_and_valid():
    first, second = DecisionIds(), DecisionIds()  # two replicas, or one before and after a restart
    ids = [first.next() for _ in range(1000)] + [second.next() for _ in range(1000)]
    assert len(set(ids)) == 2000
    assert all(re.fullmatch(DECISION_ID_PATTERN, i) and len(i) == 34 for i in ids)


def test_product_parts_follow_the_channel():
    product = next(p for p in load_catalog().products if p.risk_level >= 3)
    _, call_centre = product_parts(product, OfferChannel.CALL_CENTRE)
    _, mobile = product_parts(product, OfferChannel.MOBILE)
    _, teller = product_parts(product, OfferChannel.TELLER)
    assert any("Risk level" in point["en"] for point in call_centre["talking_points"])
    assert mobile["talking_points"] == [] and mobile["creative_id"] == f"mob-{product.product_id}-1"
    assert teller["creative_id"] is None and teller["pitch"]["en"] == product.pitch_en
