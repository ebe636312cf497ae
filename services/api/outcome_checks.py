"""The check ``POST /v1/outcomes`` makes before recording an outcome: the decision it names was
made by this API (``services.api.offers`` remembers every one in the ``DecisionCache``) within
the outcome window, for this customer, on this channel, and offered this product."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from adapters.decision_cache import DecisionCacheError
from adapters.ports import RememberedDecision
from schemas.events import OfferChannel
from services.api.auth import ApiError

if TYPE_CHECKING:
    from services.api.deps import Services

log = logging.getLogger("nbo.api")


async def decided(services: Services, decision_id: str, customer_id: str, channel: OfferChannel,
                  product_id: str) -> RememberedDecision:
    """The decision an outcome names, if it is one this API made within the outcome window, for
    this customer, on this channel, offering this product; else ``ApiError`` 404 (unknown or
    expired), 409 (it says what does not match) or 503 (the decision store did not answer)."""
    try:
        found = await services.decisions.lookup(decision_id)
    except DecisionCacheError as exc:
        log.warning("decision lookup failed: %s", exc)
        raise ApiError(503, f"cannot verify decision {decision_id}: {exc}; retry with the same body") from None
    if found is None:
        hours = services.decisions.ttl_s / 3600
        raise ApiError(404, f"decision {decision_id} not found (outcomes are accepted for {hours:g} hours after "
                            "the decision); send the decision_id of the offer response the outcome is for")
    if found.customer_id != customer_id:
        raise ApiError(409, f"decision {decision_id} was made for another customer, not {customer_id}; "
                            "send the customer_id of that offer response")
    if found.channel != channel.value:
        raise ApiError(409, f"decision {decision_id} was made for the {found.channel} channel, not {channel.value}; "
                            "record the outcome with that channel and its key")
    if product_id not in found.product_ids:
        offered = ", ".join(found.product_ids) or "nothing"
        raise ApiError(409, f"product_id {product_id!r} was not offered in decision {decision_id} (it offered "
                            f"{offered}); send a product_id from that offer response")
    return found

