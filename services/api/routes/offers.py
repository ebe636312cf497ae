"""Offers for any channel, the channel named in the query (the key must be for that channel)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from schemas.events import OfferChannel
from services.api import offers as core
from services.api.deps import ERROR_RESPONSES, ApiKey, CustomerIdPath, services_of
from services.api.models import OfferResponse
from services.api.views import json_response

router = APIRouter(tags=["offers"])


@router.get("/v1/customers/{customer_id}/offers", response_model=OfferResponse, responses=ERROR_RESPONSES,
            summary="Offers for a customer on any channel",
            description="The customer's next-best offers for the channel named in `channel` (teller, call_centre "
            "or mobile), best first, with reasons and pitches in English and Chinese. The key must be for that "
            "channel (else 403). `limit` caps the number of offers (1 to 10; default: the channel's own). When "
            "the customer's data cannot be read in time the answer is still 200, with `degraded: true` and safe "
            "general offers.")
async def offers(request: Request, customer_id: CustomerIdPath, channel: OfferChannel, x_api_key: ApiKey = None,
                 limit: Annotated[int | None, Query(ge=1, le=10)] = None) -> Response:
    services = services_of(request)
    await services.authorize(x_api_key, channel)
    return json_response(await core.offer(services, customer_id, channel, limit or core.default_limit(services, channel)))
