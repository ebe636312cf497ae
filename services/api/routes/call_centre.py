"""The call-centre agent screen's data: offers with talking points, and the customer's profile."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from schemas.events import OfferChannel
from services.api import offers as core
from services.api.auth import ApiError
from services.api.deps import ERROR_RESPONSES, KEY_REQUIRED, CustomerIdPath, ServicesDep, services_of
from services.api.models import OfferResponse, Problem, ProfileResponse
from services.api.views import json_response, profile_view

router = APIRouter(tags=["call centre"])


@router.get("/v1/call-centre/customers/{customer_id}/offers", response_model=OfferResponse,
            responses=ERROR_RESPONSES, openapi_extra=KEY_REQUIRED,
            summary="Offers for the agent on a call",
            description="The offers the call-centre agent makes to the customer on the line, best first, each "
            "with the reason, a pitch and talking points in English and Chinese. When the customer has an open "
            "complaint (or is in the fix-first segment G), `service_action` says to resolve it first and no "
            "product is offered. Needs a call_centre key. Each answer is logged as a decision; send what the "
            "customer said to `POST /v1/outcomes` with its `decision_id`.")
async def call_centre_offers(request: Request, customer_id: CustomerIdPath) -> Response:
    services = services_of(request)
    return json_response(await core.offer(services, customer_id, OfferChannel.CALL_CENTRE,
                                          services.settings.api.call_centre_offers))


@router.get("/v1/call-centre/customers/{customer_id}/profile", response_model=ProfileResponse,
            responses={**ERROR_RESPONSES, 503: {"model": Problem, "description": "customer state unavailable"}},
            openapi_extra=KEY_REQUIRED,
            summary="The customer's profile for the agent screen",
            description="What the bank knows about the customer on the line: age, risk tolerance, value tier and "
            "segment, recent behaviour (balance, 30-day inflow and outflow in minor units, top spend categories, "
            "hotline intents), holdings, recent transactions and purchases, and which offers were made before and "
            "how they were answered. Times are ISO 8601 in UTC. `known: false` when no event about the customer "
            "has been seen yet. 503 when the state cannot be read right now. Needs a call_centre key.")
async def profile(services: ServicesDep, customer_id: CustomerIdPath) -> ProfileResponse:
    state = await core.read_state(services, customer_id)
    if state is None:
        raise ApiError(503, "customer state is unavailable right now; try again in a moment")
    return profile_view(state, services.catalogs.current, services.params, customer_id, time.time())
