"""The teller terminal: an offer for the customer at the counter, the transaction in hand included."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from domain.money import UnknownRate
from schemas.events import OfferChannel
from services.api import offers as core
from services.api.auth import ApiError
from services.api.deps import ERROR_RESPONSES, KEY_REQUIRED, services_of
from services.api.models import OfferResponse, TellerRequest
from services.api.views import json_response

router = APIRouter(tags=["teller"])


@router.post("/v1/teller/offers", response_model=OfferResponse, responses=ERROR_RESPONSES, openapi_extra=KEY_REQUIRED,
             summary="The one offer for the customer at the counter",
             description="The offer the teller makes while the customer's deposit or withdrawal posts. The "
             "transaction in hand (amount in integer minor units of its ISO 4217 currency, the bank's base currency "
             "when it names none) counts as "
             "if it had already posted, converted into the bank's base currency, so a deposit that clears a "
             "product's minimum makes it eligible now; it is not stored. A currency the bank's rate table has no "
             "rate for is a 422 that names it. "
             "Answers one offer with the pitch to say in English and Chinese. Needs a teller key.")
async def teller_offers(request: Request, body: TellerRequest) -> Response:
    services = services_of(request)
    currency = body.transaction.currency  # None: the bank's base currency (``core.offer``)
    if currency is not None and currency not in services.params.rates:
        raise ApiError(422, f"transaction.currency: {UnknownRate(currency, services.params.rates.base)}")
    return json_response(await core.offer(services, body.customer_id, OfferChannel.TELLER,
                                          services.settings.api.teller_offers, transaction=body.transaction))
