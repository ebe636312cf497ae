"""What the routes depend on: the process's services, the customer id in the path, the client
behind an API key.

The channel routes (``/v1/teller/``, ``/v1/call-centre/``, ``/v1/mobile/``) are guarded by the
``ChannelKeys`` middleware (``services.api.auth``) before FastAPI parses anything, so they take
no key dependency. The routes that name their channel in the request take the key (``ApiKey``)
and call ``Services.authorize`` once they have the channel: outcomes name it in the body, which a
dependency cannot see, and on the generic offers route a dependency would cost the offer path
its resolution time (see ``ServicesDep``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader

from adapters.ports import CatalogSource, LearningSource, LoopStatsReader

from bootstrap import ApiParts, Settings, loop_params
from domain.catalog import Catalog
from schemas.events import CUSTOMER_ID_PATTERN, OfferChannel
from services.api.auth import ApiError, Authenticator, Client, RateLimiter, SharedRateLimiter
from services.api.metrics import Metrics
from services.api.models import Problem
from services.api.decision_ids import DecisionIds


log = logging.getLogger("nbo.api")


class Services:
    """Everything the routes need, built once per process by the lifespan: the parts of the
    composition root (adapters behind their ports) and the API's own per-process state."""

    def __init__(self, settings: Settings, parts: ApiParts) -> None:
        self.settings = settings
        #: The catalog in force: ``catalogs.current`` (an attribute read per request; the
        #: lifespan's watcher swaps in a changed file's catalog).
        self.catalogs: CatalogSource = parts.catalogs  # type: ignore[assignment]  # ApiParts fills it
        self.store = parts.store
        self.models = parts.models
        self.publisher = parts.publisher
        self.policies = parts.policies
        self.params = parts.params
        #: The bank's contract rules: which customer ids the routes accept (``check_customer_id``).
        self.contract = parts.contract
        self.decisions = parts.decisions
        #: The online evidence (``learning.evidence()``, read in the background) and the loop's knobs.
        self.learning: LearningSource = parts.learning  # type: ignore[assignment]  # ApiParts fills it
        self.loop = loop_params(settings)
        #: The loop's live counters, for the effectiveness report (None: the report answers 503).
        self.loop_stats: LoopStatsReader | None = parts.loop_stats
        self.auth = Authenticator(settings.api.keys, settings.api.allow_dev_keys)
        self.limiter = RateLimiter(settings.api.rate_per_s, settings.api.rate_burst)
        #: The limit shared by all replicas (NBO_API__RATE_LIMIT=shared), ``limiter`` its fallback.
        self.shared_limiter = (None if parts.rate_limit is None else
                               SharedRateLimiter(parts.rate_limit, self.limiter, settings.api.rate_limit_budget_ms / 1000))
        self.control = parts.control
        self.metrics = Metrics()
        self.decision_ids = DecisionIds()
        self.redis_budget_s = settings.redis.timeout_ms / 1000

    @property
    def catalog(self) -> Catalog:
        """The catalog in force (``catalogs.current``)."""
        return self.catalogs.current

    def refresh_catalog(self) -> bool:
        """Reload the catalog if its file changed (a bad change is refused, the catalog in force
        keeps serving); the model source follows a new catalog at once. True if it was swapped."""
        if not self.catalogs.refresh():
            return False
        self.models.refresh()
        return True

    def check_customer_id(self, customer_id: str, where: str = "customer_id") -> None:
        """``ApiError`` 422 when the bank's contract rules refuse ``customer_id`` (its own pattern,
        a card number), the same rule the stream decodes events with; the path's and the body's
        pattern already checked the base rule. ``where`` names the parameter in the message."""
        refused = self.contract.customer_id_narrowing(customer_id)
        if refused is not None:
            raise ApiError(422, f"{where}: {refused}")

    async def admit(self, client: Client) -> None:
        """``ApiError`` 429 if the client is over its rate limit (shared, or this replica's)."""
        if self.shared_limiter is None:
            self.limiter.check(client)
        else:
            await self.shared_limiter.check(client)

    async def authorize(self, key: str | None, channel: OfferChannel) -> Client:
        """The client of ``key`` if it is bound to ``channel`` and within its rate limit; else
        ``ApiError`` 401, 403 or 429."""
        client = self.auth.authenticate(key, channel.value)
        await self.admit(client)
        return client

    async def close(self) -> None:
        """Close every part; each gets ``CLOSE_TIMEOUT_S`` so a server that stopped answering
        cannot keep the process from stopping (what did not close is logged by name)."""
        await _bounded("online evidence reader", self.learning.close())
        if self.loop_stats is not None:
            self.loop_stats.close()
        if self.shared_limiter is not None:
            await _bounded("shared rate limit", self.shared_limiter.shared.close())
        if self.control is not None:
            self.control.close()
        await _bounded("decision-log publisher", self.publisher.close())
        await _bounded("decision cache", self.decisions.close())
        await _bounded("state reader", self.store.close())


#: How long shutdown waits for one part to close (the publisher's own flush is bounded by its ack timeout).
CLOSE_TIMEOUT_S = 15.0


async def _bounded(part: str, closing: Any) -> None:
    try:
        await asyncio.wait_for(closing, timeout=CLOSE_TIMEOUT_S)
    except asyncio.TimeoutError:
        log.error("the %s did not close within %.0f s; stopping without it", part, CLOSE_TIMEOUT_S)


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


#: The process's services, for the routes off the offer path. Resolving a dependency costs ~7-10 us
#: of CPU a request (measured in process on FastAPI 0.165, where a call-centre offer with the
#: prior model costs ~150 us), so the offer routes take the ``Request`` and call ``services_of``.
ServicesDep = Annotated[Services, Depends(_services)]

#: The client's key, bound to one channel (see docs/API.md); read without FastAPI's header parsing.
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="your API key (bound to one channel)")
ApiKey = Annotated[str | None, Security(API_KEY)]

#: The base rule of the contract (``schemas.rules``); ``Services.check_customer_id`` adds the bank's own.
CustomerIdPath = Annotated[str, Path(pattern=CUSTOMER_ID_PATTERN, description="pseudonymous customer token: "
                                     "1-64 letters, digits, - _ . : (never a card number; the bank may narrow it)")]

#: The OpenAPI security requirement of the routes ``ChannelKeys`` guards.
KEY_REQUIRED: dict[str, Any] = {"security": [{"APIKeyHeader": []}]}

#: The answers any keyed route may give besides its own.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "no API key, or an unknown one"},
    403: {"model": Problem, "description": "the key is for another channel"},
    413: {"model": Problem, "description": "request body too large"},
    422: {"model": Problem, "description": "a parameter or field is invalid (e.g. a customer id that is a card "
          "number: send the tokenised id); the detail names it"},
    429: {"model": Problem, "description": "rate limit of the key exceeded; see Retry-After"},
}
