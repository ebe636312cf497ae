"""Mobile banking: offer slots for the app's home screen, each with its creative."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from schemas.events import OfferChannel
from services.api import offers as core
from services.api.deps import ERROR_RESPONSES, KEY_REQUIRED, CustomerIdPath, services_of
from services.api.models import SlotsResponse
from services.api.views import json_response, slots_view


def router(max_slots: int) -> APIRouter:
    """The mobile routes; at most ``max_slots`` slots a request (in the OpenAPI document too)."""
    routes = APIRouter(tags=["mobile"])

    @routes.get("/v1/mobile/customers/{customer_id}/slots", response_model=SlotsResponse,
                responses=ERROR_RESPONSES, openapi_extra=KEY_REQUIRED,
                summary="Recommendation slots for the mobile app",
                description=f"The payloads of the app's recommendation slots, best first: product, creative id, "
                f"title and reason in English and Chinese. `n` slots (1 to {max_slots}, default 3); fewer when "
                "fewer products are eligible. Needs a mobile key. Report what the customer did with "
                "`POST /v1/outcomes`.")
    async def mobile_slots(request: Request, customer_id: CustomerIdPath,
                           n: int = Query(3, ge=1, le=max_slots, description="number of slots")) -> Response:
        return json_response(slots_view(await core.offer(services_of(request), customer_id, OfferChannel.MOBILE, n)))

    return routes
