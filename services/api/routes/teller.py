"""The teller terminal: an offer for the customer at the counter, the transaction in hand included."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from schemas.events import OfferChannel
from services.api import offers as core
from services.api.deps import ERROR_RESPONSES, KEY_REQUIRED, services_of
from services.api.models import OfferResponse, TellerRequest
from services.api.views import json_response

router = APIRouter(tags=["teller"])


@router.post("/v1/teller/offers", response_model=OfferResponse, responses=ERROR_RESPONSES, openapi_extra=KEY_REQUIRED)
async def teller_offers(request: Request, body: TellerRequest) -> Response:
    services = services_of(request)
    return json_response(await core.offer(services, body.customer_id, OfferChannel.TELLER,
                                          services.settings.api.teller_offers, transaction=body.transaction))
