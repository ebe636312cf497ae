"""The conversion record: a purchase attributed to the offer that led to it.

The stream workers write one to ``nbo.conversions`` (``schemas.topics.CONVERSIONS``, keyed by
customer id, UTF-8 JSON) when a customer buys a product they were shown within
``NBO_LOOP__ATTRIBUTION_DAYS`` before, on any channel; it names the last decision that showed
the product (last touch). See docs/EVENTS.md and docs/LOOP.md.

``conversion_id`` is a function of ``purchase_event_id`` alone (``cv-`` + 32 hex digits of its
SHA-256), so the warehouse dedupes by it. The same purchase may be recorded more than once: a
worker that died before settling re-sends it, and a decision that arrives after the purchase
(topics are not ordered against each other) may move the attribution to a later showing, or an
acceptance recorded late may set ``accepted_at_touchpoint``. Keep, per ``conversion_id``, the
record with the greatest (``shown_at``, ``decision_id``, ``accepted_at_touchpoint``): that is
the attribution once every event is in, whatever order the worker saw them in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import CustomerId, DecisionId, OfferChannel, ProductId, PurchaseChannel

CONVERSION_ID_PATTERN = r"^cv-[0-9a-f]{32}$"


class ConversionAttributed(BaseModel):
    """One purchase attributed to the last offer decision that showed its product."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    conversion_id: str = Field(pattern=CONVERSION_ID_PATTERN,
                               description="cv- + 32 hex digits of sha256(purchase_event_id): dedupe by it.")
    schema_version: Literal[1] = 1
    customer_id: CustomerId
    purchase_event_id: str = Field(description="The ProductPurchased event's event_id.")
    product_id: ProductId
    purchased_at: AwareDatetime = Field(description="The purchase's occurred_at (UTC).")
    purchase_channel: PurchaseChannel = Field(description="Where the product was bought.")
    decision_id: DecisionId = Field(description="The last offer decision that showed the product before the purchase.")
    channel: OfferChannel = Field(description="The touchpoint of that decision.")
    arm: Literal["treatment", "control"] = Field(description="The customer's experiment arm at that decision.")
    model_version: str = Field(max_length=64)
    segment: str = Field(max_length=8, description="The customer's value x satisfaction segment when the decision "
                                                   "was folded.")
    shown_at: AwareDatetime = Field(description="The decision's occurred_at (UTC).")
    days_after_shown: float = Field(ge=0.0, description="purchased_at - shown_at in days (at most the window).")
    accepted_at_touchpoint: bool = Field(description="An 'accepted' outcome was recorded for that decision and "
                                                     "product.")
