"""What became of an offer (shown, accepted, declined with a reason, ignored), sent by any
touchpoint and recorded as an ``OfferOutcomeRecorded`` event once the broker acknowledged it —
only for a product the named decision offered to that customer on that channel, within the
outcome window (``services.api.outcome_checks.decided``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from adapters.kafka_publisher import PublishError
from services.api.auth import ApiError
from services.api.deps import ERROR_RESPONSES, ApiKey, ServicesDep
from services.api.models import OutcomeAck, OutcomeRequest, Problem
from services.api.outcome_checks import decided

router = APIRouter(tags=["outcomes"])


@router.post("/v1/outcomes", response_model=OutcomeAck, status_code=202,
             responses={**ERROR_RESPONSES,
                        404: {"model": Problem, "description": "product_id not in the catalog, or no decision "
                              "with that decision_id within the outcome window (NBO_API__OUTCOME_WINDOW_S, 24 h)"},
                        409: {"model": Problem, "description": "the decision was for another customer or channel, "
                              "or did not offer product_id; the detail says which"},
                        503: {"model": Problem, "description": "the broker did not acknowledge, or the decision "
                              "could not be verified; retry"}},
             summary="Record what became of an offer",
             description="Shown, accepted, declined (with a `decline_reason`) or ignored, for a product of an "
             "offer response, named by that response's `decision_id`: the decision must have offered that product "
             "to that customer on that channel within the outcome window (24 h by default; else 404 or 409, the "
             "detail says which). The key must be for the `channel` in the body. Answers 202 once the broker has "
             "acknowledged the `OfferOutcomeRecorded` event; the stream worker then applies it to the customer's "
             "state, and a declined product is held back for a cool-down set by the reason (`bad_timing`: a short "
             "one). On 503 nothing was recorded: retry with the same body.")
async def outcomes(services: ServicesDep, body: Annotated[OutcomeRequest, Body(discriminator="outcome")],
                   x_api_key: ApiKey = None) -> OutcomeAck:
    # The key is checked against the channel the body names, so only once the body is parsed.
    await services.authorize(x_api_key, body.channel)
    services.check_customer_id(body.customer_id)
    if body.product_id not in services.catalogs.current:
        raise ApiError(404, f"product_id: {body.product_id!r} is not in the catalog; send a product_id from the offer")
    await decided(services, body.decision_id, body.customer_id, body.channel, body.product_id)
    try:
        event_id = await services.publisher.publish_outcome(body)
    except PublishError as exc:
        raise ApiError(503, f"the outcome could not be recorded ({exc}); retry with the same body") from None
    services.metrics.outcomes.labels(body.channel.value, body.outcome.value).inc()
    return OutcomeAck(status="recorded", event_id=event_id)
