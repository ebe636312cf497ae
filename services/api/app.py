"""The offer API: the FastAPI app factory.

``create_app(settings)`` builds nothing at import time; the lifespan gets the parts from the
composition root (``bootstrap.build_api``: Redis, the broker, the catalog, the current model and
policy) — or uses the ``parts`` it was given (tests, on the fakes of ``adapters.fakes``) — and
starts the decision-log sender and the model, policy and catalog watchers (with
``NBO_API__CONTROL_SOURCE=redis`` also the listener that switches model and policy as soon as
``nbo promote`` / ``nbo levers push`` announce a change; the watchers' polls stay as its fallback). The routes live in
``services.api.routes``, one module per touchpoint; client mistakes are 4xx with a message that
says what to fix; a slow or absent Redis gives degraded (safe) offers with status 200, never a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.model_watch import poll
from adapters.shared_control import MODEL
from bootstrap import ApiParts, Settings, SettingsError, build_api, load_settings, loop_params
from services.api.auth import DEV_KEYS, ApiError, ChannelKeys, digest
from services.api.deps import Services
from services.api.limits import BodyLimit
from services.api.routes import call_centre, mobile, offers, ops, outcomes, reports, teller

log = logging.getLogger("nbo.api")

#: Where fastapi-offline serves the Swagger UI and ReDoc assets it ships (its default).
OFFLINE_DOCS = "/static-offline-docs"

#: FastAPI's built-in OpenTelemetry hooks cost ~0.3 ms a request; the service exports Prometheus metrics instead.
NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def create_app(settings: Settings | None = None, parts: ApiParts | None = None) -> FastAPI:
    """The offer API. Reads the settings (``parts.settings``, else ``load_settings()``, if none
    given) but connects to nothing until the lifespan starts, which builds the parts with
    ``build_api`` unless ``parts`` are given; a bad setting or a missing key set fails at start."""
    settings = settings or (parts.settings if parts is not None else load_settings())
    _check_keys(settings)
    loop_params(settings)  # a bad NBO_LOOP__* value fails here, before anything starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(settings, parts if parts is not None else build_api(settings))
        app.state.services = services
        await services.publisher.start()
        await services.learning.start()  # one read now, then every NBO_LOOP__REFRESH_MS in the background
        watchers = [asyncio.create_task(poll(services.models.refresh, settings.api.model_poll_s, "model")),
                    asyncio.create_task(poll(services.policies.refresh, settings.api.policy_poll_s, "policy")),
                    asyncio.create_task(poll(services.refresh_catalog, settings.catalog.poll_s, "catalog"))]
        if services.control is not None:
            watchers.append(asyncio.create_task(services.control.listen(_switcher(services))))
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await services.close()

    # Swagger UI (/docs) with its script, style sheet and favicon served from the fastapi-offline
    # package under /static-offline-docs, no CDN, so the docs render on a machine without internet;
    # ReDoc (/redoc) from the same package, see _install_redoc.
    app = FastAPIOffline(
        redoc_url=None,
        title="nbo offer API",
        version="1.0.0",
        description=API_DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        **NO_TELEMETRY,
    )
    app.add_middleware(ChannelKeys)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    _install_error_handlers(app)
    # The channel routes first: the router tries routes in order, and these are the busy ones; the
    # documentation's routes (OpenAPI document, /docs, /redoc, their static files) go after them.
    _install_redoc(app)
    docs_routes = list(app.router.routes)
    app.router.routes.clear()
    for router in (offers.router, teller.router, call_centre.router, mobile.router(settings.api.max_mobile_slots),
                   outcomes.router, reports.router, ops.router):
        _serve(app, router)
    app.router.routes.extend(docs_routes)
    _install_agent_screen(app)
    _install_home(app)
    return app


API_DESCRIPTION = (
    "Next-best offers for teller terminals, the call-centre agent screen and mobile banking.\n\n"
    "**Keys.** Send your API key in the `X-API-Key` header; each key is bound to one channel "
    "(teller, call_centre or mobile) or to the marketing reports, and a key for another channel "
    "gets 403. Use *Authorize* above to try the calls here; a demo started with `nbo demo` accepts "
    "`dev-teller`, `dev-agent`, `dev-mobile` and `dev-marketing`.\n\n"
    "**Money** is in integer minor units (fen for CNY): `amount_minor: 500000` is ¥5,000.00. "
    "**Times** are ISO 8601 in UTC.\n\n"
    "**Degraded answers.** When customer data cannot be read in time the answer is still 200, "
    "with `degraded: true` and safe general offers.\n\n"
    "**Outcomes.** Send what became of an offer to `POST /v1/outcomes` with the `decision_id` of "
    "the offer response: a decline holds the product back for the customer."
)

OPENAPI_TAGS = [
    {"name": "offers", "description": "Offers for any channel, the channel named in the query."},
    {"name": "teller", "description": "The teller terminal: an offer while a transaction posts."},
    {"name": "call centre", "description": "The agent screen: offers with talking points, and the customer's profile."},
    {"name": "mobile", "description": "Mobile banking: recommendation slots with their creatives."},
    {"name": "outcomes", "description": "What became of an offer: shown, accepted, declined with a reason, ignored."},
    {"name": "reports", "description": "For marketing: how well the offers work against the control group "
     "(a key of the marketing scope)."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics; no key needed."},
]


def _switcher(services: Services) -> Any:
    """What a replica does when told that the promoted model or the policy changed: reload it
    (off the event loop: a model takes a while to load)."""

    async def switch(name: str) -> None:
        refresh = services.models.refresh if name == MODEL else services.policies.refresh
        try:
            await asyncio.to_thread(refresh)
        except Exception:  # never let the listener die
            log.exception("%s refresh failed", name)

    return switch


def _serve(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, served by the app itself. ``include_router`` would keep the router as
    one nested route that FastAPI matches twice per request (~10 us of CPU on an offer, measured
    in process: too much for the offer path's budget, see docs/API.md, Performance). The routes
    carry their tags and responses already; the routers have no dependencies, prefix, startup
    handlers or lifespan of their own to pass on."""
    app.router.routes.extend(router.routes)


def _check_keys(settings: Settings) -> None:
    """Refuse to start with no usable key, or with a dev key configured as a real one."""
    dev_digests = {digest(k) for k in DEV_KEYS}
    if not settings.api.allow_dev_keys:
        if dev_digests & set(settings.api.keys):
            raise SettingsError("NBO_API__KEYS holds a development key (dev-teller/dev-agent/dev-mobile/"
                                "dev-marketing); "
                                "use your own keys, or set NBO_API__ALLOW_DEV_KEYS=true for a demo")
        if not settings.api.keys:
            raise SettingsError('NBO_API__KEYS is empty: set it to {"<sha256 of key>": {"client": "...", '
                                '"channel": "teller|call_centre|mobile|marketing"}}, or NBO_API__ALLOW_DEV_KEYS=true for a demo')


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


#: ReDoc always shows the Redocly logo from cdn.redoc.ly in its menu; the page's images may come
#: only from the API itself (or be inline), so the browser never asks the internet for it.
REDOC_CSP = "img-src 'self' data:"


def _install_redoc(app: FastAPI) -> None:
    """``/redoc``: ReDoc from fastapi-offline's packaged bundle, no web font, no off-host image."""

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{OFFLINE_DOCS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{OFFLINE_DOCS}/favicon.png", with_google_fonts=False)
        page.headers["Content-Security-Policy"] = REDOC_CSP
        return page


def _install_home(app: FastAPI) -> None:
    """``/`` sends a browser to the API documentation."""

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/docs", status_code=307)


def _install_agent_screen(app: FastAPI) -> None:
    """The call-centre agent screen at /agent and its script and style sheet under /static."""
    from fastapi.staticfiles import StaticFiles

    from services.agent_screen import STATIC_DIR, router

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
