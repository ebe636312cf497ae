"""The offer API: FastAPI app factory and composition root.

``create_app(settings)`` builds nothing at import time; the lifespan connects to Redis and the
broker, loads the catalog and the current model, and starts the decision-log sender and the
model watcher. Routes are thin: authenticate, read state, call ``decisioning``,
answer. Client mistakes are 4xx with a message that says what to fix; a slow or absent Redis
gives degraded (safe) offers with status 200, never a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated, Any, AsyncIterator

import orjson

from fastapi import Body, FastAPI, Security, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.catalog import Product
from decisioning import SERVICE_ACTIONS as ACTION_TEXTS
from decisioning import Decision, fallback, rank, talking_points
from decisioning.memo import Memo
from domain.features import VS_STRATEGIES, age_at, apply, decayed
from domain.state import CustomerState
from schemas.events import CUSTOMER_ID_PATTERN, DepositPosted, OfferChannel, TxnChannel, TxnKind
from services.api.auth import DEV_KEYS, ApiError, Authenticator, RateLimiter, digest
from services.api.limits import BodyLimit
from services.api.metrics import Metrics
from services.api.models import (
    Behaviour,
    ContactOut,
    HoldingOut,
    PurchaseOut,
    IntentWeight,
    OfferResponse,
    OutcomeAck,
    OutcomeRequest,
    Problem,
    ProfileResponse,
    SlotsResponse,
    SpendCategory,
    TellerRequest,
    Text,
    TransactionOut,
)
from adapters.kafka_publisher import PublishError
from adapters.keys import stats_key
from adapters.model_watch import poll
from bootstrap import Settings, SettingsError, build_api, load_settings

log = logging.getLogger("nbo.api")
CustomerIdPath = Annotated[str, PathParam(pattern=CUSTOMER_ID_PATTERN, description="pseudonymous customer token")]



class Services:
    """Everything the routes need, built once per process by the lifespan."""

    def __init__(self, settings: Settings) -> None:
        parts = build_api(settings)
        self.settings = settings
        self.catalog = parts.catalog
        self.store = parts.store
        self.models = parts.models
        self.publisher = parts.publisher
        self.policies = parts.policies
        self.params = parts.params
        self.auth = Authenticator(settings.api.keys, settings.api.allow_dev_keys)
        self.limiter = RateLimiter(settings.api.rate_per_s, settings.api.rate_burst)
        self.metrics = Metrics()
        self.decision_ids = DecisionIds()
        self.redis_budget_s = settings.redis.timeout_ms / 1000

    async def close(self) -> None:
        await self.publisher.close()
        await self.store.close()


#: The client's key, bound to one channel (see docs/API.md); read without FastAPI's header parsing.
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="your API key (bound to one channel)")
#: FastAPI's built-in OpenTelemetry hooks cost ~0.3 ms a request; the service exports Prometheus metrics instead.
NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "no API key, or an unknown one"},
    403: {"model": Problem, "description": "the key is for another channel"},
    413: {"model": Problem, "description": "request body too large"},
    422: {"model": Problem, "description": "a parameter or field is invalid; the detail names it"},
    429: {"model": Problem, "description": "rate limit of the key exceeded; see Retry-After"},
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The offer API. Reads the settings (``load_settings()`` if none given) but connects to
    nothing until the lifespan starts; a bad setting or a missing key set fails at start."""
    settings = settings or load_settings()
    _check_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(settings)
        app.state.services = services
        await services.publisher.start()
        watchers = [asyncio.create_task(poll(services.models.refresh, settings.api.model_poll_s, "model")),
                    asyncio.create_task(poll(services.policies.refresh, settings.api.policy_poll_s, "policy"))]
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await services.close()

    app = FastAPI(
        title="nbo offer API",
        version="1.0.0",
        description="Next-best offers for teller terminals, the call-centre agent screen and mobile banking. "
        "Send your API key in the X-API-Key header; each key is bound to one channel.",
        lifespan=lifespan,
        **NO_TELEMETRY,
    )
    app.add_middleware(ChannelKeys)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    _install_error_handlers(app)
    _install_routes(app, settings)
    _install_agent_screen(app)
    return app


def _check_keys(settings: Settings) -> None:
    """Refuse to start with no usable key, or with a dev key configured as a real one."""
    dev_digests = {digest(k) for k in DEV_KEYS}
    if not settings.api.allow_dev_keys:
        if dev_digests & set(settings.api.keys):
            raise SettingsError("NBO_API__KEYS holds a development key (dev-teller/dev-agent/dev-mobile); "
                                "use your own keys, or set NBO_API__ALLOW_DEV_KEYS=true for a demo")
        if not settings.api.keys:
            raise SettingsError('NBO_API__KEYS is empty: set it to {"<sha256 of key>": {"client": "...", '
                                '"channel": "teller|call_centre|mobile"}}, or NBO_API__ALLOW_DEV_KEYS=true for a demo')


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
            parts.append(f"{where}: {error.get('msg')}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - last resort
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"detail": "the service failed to answer; it has been logged"}, status_code=503)


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


class ChannelKeys:
    """Pure ASGI middleware: the key check and rate limit of the channel routes, chosen by path
    prefix, before FastAPI parses anything (so a request without a valid key gets 401/403/429
    whatever else is wrong with it). Routes it guards declare the key in the OpenAPI document
    with ``KEY_REQUIRED``. Doing it here rather than as a FastAPI dependency costs less per
    request (see docs/API.md, Performance)."""

    PREFIXES: tuple[tuple[str, str], ...] = (
        ("/v1/teller/", OfferChannel.TELLER.value),
        ("/v1/call-centre/", OfferChannel.CALL_CENTRE.value),
        ("/v1/mobile/", OfferChannel.MOBILE.value),
    )

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for prefix, channel in self.PREFIXES:
                if path.startswith(prefix):
                    try:
                        self._check(scope, channel)
                    except ApiError as exc:
                        await JSONResponse({"detail": exc.detail}, status_code=exc.status,
                                           headers=exc.headers)(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)

    @staticmethod
    def _check(scope: dict[str, Any], channel: str) -> None:
        services: Services = scope["app"].state.services
        key = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"x-api-key"), None)
        services.limiter.check(services.auth.authenticate(key, channel))


#: The OpenAPI security requirement of the routes ``ChannelKeys`` guards.
KEY_REQUIRED: dict[str, Any] = {"security": [{"APIKeyHeader": []}]}


def _install_routes(app: FastAPI, settings: Settings) -> None:
    max_slots = settings.api.max_mobile_slots

    # The channel routes first: the router tries routes in order, and these are the busy ones.
    @app.get("/v1/customers/{customer_id}/offers", response_model=OfferResponse, tags=["offers"],
              responses=ERROR_RESPONSES)
    async def offers(request: Request, customer_id: CustomerIdPath, channel: OfferChannel,
                     x_api_key: Annotated[str | None, Security(API_KEY)] = None,
                     limit: Annotated[int | None, Query(ge=1, le=10)] = None) -> Response:
        services = services_of(request)
        client = services.auth.authenticate(x_api_key, channel.value)
        services.limiter.check(client)
        return _json(await _offer_response(services, customer_id, channel, limit or _default_limit(services, channel)))

    @app.post("/v1/teller/offers", response_model=OfferResponse, tags=["teller"],
              responses=ERROR_RESPONSES, openapi_extra=KEY_REQUIRED)
    async def teller_offers(request: Request, body: TellerRequest) -> Response:
        services = services_of(request)
        return _json(await _offer_response(services, body.customer_id, OfferChannel.TELLER,
                                           services.settings.api.teller_offers, transaction=body))

    @app.get("/v1/call-centre/customers/{customer_id}/offers", response_model=OfferResponse, tags=["call centre"],
              responses=ERROR_RESPONSES, openapi_extra=KEY_REQUIRED)
    async def call_centre_offers(request: Request, customer_id: CustomerIdPath) -> Response:
        services = services_of(request)
        return _json(await _offer_response(services, customer_id, OfferChannel.CALL_CENTRE,
                                           services.settings.api.call_centre_offers))

    @app.get("/v1/call-centre/customers/{customer_id}/profile", response_model=ProfileResponse, tags=["call centre"],
              responses={**ERROR_RESPONSES, 503: {"model": Problem, "description": "customer state unavailable"}},
              openapi_extra=KEY_REQUIRED)
    async def profile(request: Request, customer_id: CustomerIdPath) -> ProfileResponse:
        services = services_of(request)
        state = await _read_state(services, customer_id)
        if state is None:
            raise ApiError(503, "customer state is unavailable right now; try again in a moment")
        return _profile(services, state, customer_id)

    @app.get("/v1/mobile/customers/{customer_id}/slots", response_model=SlotsResponse, tags=["mobile"],
              responses=ERROR_RESPONSES, openapi_extra=KEY_REQUIRED)
    async def mobile_slots(request: Request, customer_id: CustomerIdPath,
                           n: int = Query(3, ge=1, le=max_slots, description="number of slots")) -> Response:
        services = services_of(request)
        response = await _offer_response(services, customer_id, OfferChannel.MOBILE, n)
        slots = [{"slot": o["rank"], "product_id": o["product_id"], "creative_id": o["creative_id"],
                  "title": {"en": o["name"], "zh": o["name_zh"]}, "reason": o["reason"]} for o in response["offers"]]
        return _json({"decision_id": response["decision_id"], "customer_id": customer_id,
                      "model_version": response["model_version"], "degraded": response["degraded"], "slots": slots})

    @app.post("/v1/outcomes", response_model=OutcomeAck, status_code=202, tags=["outcomes"],
              responses={**ERROR_RESPONSES, 404: {"model": Problem, "description": "product_id not in the catalog"},
                         503: {"model": Problem, "description": "the broker did not acknowledge; retry"}})
    async def outcomes(request: Request, body: Annotated[OutcomeRequest, Body(discriminator="outcome")],
                       x_api_key: Annotated[str | None, Security(API_KEY)] = None) -> OutcomeAck:
        services = services_of(request)
        client = services.auth.authenticate(x_api_key, body.channel.value)
        services.limiter.check(client)
        if body.product_id not in services.catalog:
            raise ApiError(404, f"product_id: {body.product_id!r} is not in the catalog; send a product_id from the offer")
        try:
            event_id = await services.publisher.publish_outcome(body)
        except PublishError as exc:
            raise ApiError(503, f"the outcome could not be recorded ({exc}); retry with the same body") from None
        services.metrics.outcomes.labels(body.channel.value, body.outcome.value).inc()
        return OutcomeAck(status="recorded", event_id=event_id)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "Redis unreachable"}})
    async def readyz(request: Request) -> JSONResponse:
        services = services_of(request)
        try:
            redis_ok = await asyncio.wait_for(services.store.ping(), timeout=0.5)
        except Exception:
            redis_ok = False
        body = {"redis": redis_ok, "broker": services.publisher.connected, "model": services.models.version}
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics(request: Request) -> Response:
        services = services_of(request)
        services.metrics.decision_log_dropped.set(services.publisher.dropped)
        services.metrics.decision_log_sent.set(services.publisher.sent)
        services.metrics.policy_file_refused.set(1 if services.policies.failed_stamp is not None else 0)
        try:  # the stream workers' counters (dead letters, duplicates), best effort within the budget
            async with asyncio.timeout(max(services.redis_budget_s, 0.2)):
                stats = await services.store.client.hgetall(stats_key(services.settings.redis.key_prefix))
            for name, value in stats.items():
                services.metrics.stream.labels(name.decode()).set(float(value))
        except Exception:
            services.metrics.redis_errors.inc()
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _default_limit(services: Services, channel: OfferChannel) -> int:
    api = services.settings.api
    return {"teller": api.teller_offers, "call_centre": api.call_centre_offers, "mobile": 3}[channel.value]


async def _read_state(services: Services, customer_id: str) -> CustomerState | None:
    """The customer's state; a new ``CustomerState`` if unknown; ``None`` if Redis failed."""
    try:
        async with asyncio.timeout(services.redis_budget_s):  # connect + read, whatever is slow
            state = await services.store.get(customer_id)
    except Exception as exc:  # timeout, connection error or a corrupt record: degrade, never 5xx
        services.metrics.redis_errors.inc()
        log.warning("state read failed: %s", type(exc).__name__)
        return None
    return state if state is not None else CustomerState(customer_id)


async def _offer_response(services: Services, customer_id: str, channel: OfferChannel, limit: int,
                          transaction: TellerRequest | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    decision_id = services.decision_ids.next()
    state = await _read_state(services, customer_id)
    model = services.models.current
    if state is None:
        decision = fallback(services.catalog, channel.value, limit)
        services.metrics.fallbacks.labels(channel.value).inc()
    else:
        if transaction is not None:
            state = _fold_transaction(services, state, transaction, now, decision_id)
        decision = rank(state, model, services.catalog, services.policies.current, channel.value, now.timestamp(), limit)
    response = _to_response(services, decision, decision_id, customer_id, channel, model.version)
    latency_ms = (time.perf_counter() - started) * 1000
    services.metrics.observe_decision(channel.value, decision.degraded, latency_ms / 1000)
    services.publisher.log_decision(decision_id, customer_id, channel.value, decision, model.version, latency_ms, now)
    return response


def _fold_transaction(services: Services, state: CustomerState, request: TellerRequest, now: datetime,
                      decision_id: str) -> CustomerState:
    """The transaction in hand may not have reached the stream yet: fold it into a copy.

    The event is built without validation: its fields come from the validated request and the
    server, and the balance after it is only a feature here (validating it against the event
    contract's bound turned a very wealthy customer's deposit into an error)."""
    txn = request.transaction
    sign = 1 if txn.kind is TxnKind.DEPOSIT else -1
    event = DepositPosted.model_construct(
        event_id=f"teller-{decision_id[2:]}", customer_id=request.customer_id, occurred_at=now,
        source="teller", kind=txn.kind, amount_minor=txn.amount_minor, currency=txn.currency,
        channel=TxnChannel.COUNTER, purpose=txn.purpose,
        balance_after_minor=state.balance_minor + sign * txn.amount_minor,
    )
    return apply(state, event, services.params)


def _to_response(services: Services, decision: Decision, decision_id: str, customer_id: str,
                 channel: OfferChannel, model_version: str) -> dict[str, Any]:
    """The OfferResponse body as plain data (serialised once, by orjson; see docs/API.md)."""
    offers = []
    for position, offer in enumerate(decision.offers, start=1):
        head, tail = _product_parts(offer.product, channel)
        offers.append({
            **head, "rank": position, "score": round(offer.score, 6), "propensity": round(offer.propensity, 6),
            "reason_codes": offer.reason_codes, "reason": {"en": offer.reason_en, "zh": offer.reason_zh}, **tail,
        })
    action = ACTION_TEXTS.get(decision.service_action or "")
    return {"decision_id": decision_id, "customer_id": customer_id, "channel": channel.value,
            "model_version": model_version, "degraded": decision.degraded, "offers": offers,
            "service_action": {"code": decision.service_action, "en": action[0], "zh": action[1]} if action else None}


def _product_parts(product: Product, channel: OfferChannel) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parts of an offer that depend only on the product and channel (names, pitch, talking
    points, creative), made once per product and channel and shared by responses (read-only)."""
    def make() -> tuple[dict[str, Any], dict[str, Any]]:
        p = product
        head = {"product_id": p.product_id, "name": p.name, "name_zh": p.name_zh, "family": p.family}
        tail = {"pitch": {"en": p.pitch_en, "zh": p.pitch_zh},
                "talking_points": [{"en": en, "zh": zh} for en, zh in talking_points(p)]
                if channel is OfferChannel.CALL_CENTRE else [],
                "creative_id": f"mob-{p.product_id}-1" if channel is OfferChannel.MOBILE else None}
        return head, tail
    return _PRODUCT_PARTS.get((product,), (channel,), make)


_PRODUCT_PARTS: Memo[tuple[dict[str, Any], dict[str, Any]]] = Memo(max_entries=4096)


class DecisionIds:
    """Decision ids, "d-" + 32 hex digits: 16 random ones drawn when the process starts, then a
    counter. Unique across replicas and restarts (a 64-bit random prefix each) without a system
    call per request, as ``uuid4`` makes."""

    def __init__(self) -> None:
        self._prefix = "d-" + os.urandom(8).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _profile(services: Services, state: CustomerState, customer_id: str) -> ProfileResponse:
    now_s = time.time()
    half_life = services.params.inflow_half_life_days
    spend = sorted(state.pos_spend.items(), key=lambda kv: -kv[1])[:4]
    intents = sorted(state.hotline_intents.items(), key=lambda kv: -kv[1])[:4]
    strategy = VS_STRATEGIES.get(state.vs_segment, ("", ""))
    holdings = []
    for pid, holding in sorted(state.holdings.items()):
        product = services.catalog.get(pid) if pid in services.catalog else None
        holdings.append(HoldingOut(product_id=pid, name=product.name if product else pid,
                                   name_zh=product.name_zh if product else pid, count=holding.count))
    def iso(at_s: float) -> str:
        return datetime.fromtimestamp(at_s, timezone.utc).isoformat()

    def names(pid: str) -> tuple[str, str]:
        product = services.catalog.get(pid) if pid in services.catalog else None
        return (product.name, product.name_zh) if product else (pid, pid)

    transactions = [TransactionOut(at=iso(at_s), kind=kind, amount_minor=amount, channel=channel)
                    for at_s, kind, amount, channel in state.recent_transactions]
    purchases = [PurchaseOut(product_id=pid, name=names(pid)[0], name_zh=names(pid)[1], at=iso(at_s))
                 for pid, at_s in state.recent_purchases]
    contacts = [
        ContactOut(product_id=pid, last_outcome=record.last_outcome,
                   decline_reason=record.last_decline_reason if record.last_outcome == "declined" else None,
                   at=datetime.fromtimestamp(record.last_outcome_at_s, timezone.utc).isoformat()
                   if record.last_outcome_at_s else None)
        for pid, record in sorted(state.contacts.items(), key=lambda kv: -kv[1].last_outcome_at_s)[:10]
    ]
    return ProfileResponse(
        customer_id=customer_id, known=state.events_applied > 0, age=age_at(state, now_s),
        risk_tolerance=state.risk_tolerance, employment=state.employment, value_tier=state.value_tier,
        vs_segment=state.vs_segment, strategy=Text(en=strategy[0], zh=strategy[1]),
        behaviour=Behaviour(
            balance_minor=state.balance_minor,
            inflow_30d_minor=int(decayed(state.inflow_minor, state.as_of_s, now_s, half_life)),
            outflow_30d_minor=int(decayed(state.outflow_minor, state.as_of_s, now_s, half_life)),
            salary_credit=now_s - state.last_salary_at_s < 45 * 86400,
            large_inflow_recent=now_s - state.last_large_inflow_at_s < 30 * 86400,
            top_spend_categories=[SpendCategory(category=c, amount_minor=int(a)) for c, a in spend],
            max_hotel_stars=state.max_hotel_stars,
            recent_hotline_intents=[IntentWeight(intent=i, weight=round(w, 3)) for i, w in intents],
            open_complaint=state.open_complaint, satisfaction=round(state.satisfaction, 3),
        ),
        holdings=holdings, recent_transactions=transactions, recent_purchases=purchases,
        contact_history=contacts,
    )


def _install_agent_screen(app: FastAPI) -> None:
    """The call-centre agent screen at /agent and its script and style sheet under /static."""
    from fastapi.staticfiles import StaticFiles

    from services.agent_screen import STATIC_DIR, router

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
