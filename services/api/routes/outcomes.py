"""What became of an offer (shown, accepted, declined with a reason, ignored), sent by any
touchpoint and recorded as an ``OfferOutcomeRecorded`` event once the broker acknowledged it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from adapters.kafka_publisher import PublishError
from services.api.auth import ApiError
from services.api.deps import ERROR_RESPONSES, ApiKey, ServicesDep
from services.api.models import OutcomeAck, OutcomeRequest, Problem

router = APIRouter(tags=["outcomes"])


@router.post("/v1/outcomes", response_model=OutcomeAck, status_code=202,
             responses={**ERROR_RESPONSES, 404: {"model": Problem, "description": "product_id not in the catalog"},
                        503: {"model": Problem, "description": "the broker did not acknowledge; retry"}})
async def outcomes(services: ServicesDep, body: Annotated[OutcomeRequest, Body(discriminator="outcome")],
                   x_api_key: ApiKey = None) -> OutcomeAck:
    # The key is checked against the channel the body names, so only once the body is parsed.
    services.authorize(x_api_key, body.channel)
    if body.product_id not in services.catalog:
        raise ApiError(404, f"product_id: {body.product_id!r} is not in the catalog; send a product_id from the offer")
    try:
        event_id = await services.publisher.publish_outcome(body)
    except PublishError as exc:
        raise ApiError(503, f"the outcome could not be recorded ({exc}); retry with the same body") from None
    services.metrics.outcomes.labels(body.channel.value, body.outcome.value).inc()
    return OutcomeAck(status="recorded", event_id=event_id)
