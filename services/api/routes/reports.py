"""The effectiveness report for marketing: ``GET /v1/reports/effectiveness`` (JSON) and the
``/reports`` page that draws it. The key must be of the ``marketing`` scope; the numbers come from
the loop's live counters (``LoopStatsReader``) through ``recommender.effectiveness``."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from recommender.effectiveness import MAX_REPORT_DAYS, effectiveness, range_problem
from schemas.currencies import minor_unit_exponent
from services.agent_screen import SECURITY_HEADERS, STATIC_DIR
from services.api.auth import MARKETING, ApiError
from services.api.deps import ERROR_RESPONSES, ApiKey, ServicesDep
from services.api.models import Problem

router = APIRouter(tags=["reports"])

#: The range when none is asked: today (UTC) and the 29 days before it.
DEFAULT_DAYS = 30
#: How long the report waits for the counters (one round trip of at most 400 HGETALLs).
READ_TIMEOUT_S = 10.0
DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: What the OpenAPI document says of a day; the route checks it itself, so that a bad one gets a
#: sentence that says what to fix.
DAY_SCHEMA = {"format": "date", "pattern": DAY_PATTERN.pattern}


class Counts(BaseModel):
    shows: int = Field(description="offers shown")
    accepted: int
    declined: dict[str, int] = Field(description="declines by reason (`decline_reason`)")
    declines: int
    ignored: int = Field(description="ignored explicitly, or with no answer within NBO_LOOP__IGNORED_AFTER_S")
    conversions: int = Field(description="purchases attributed to these shows (last touch, NBO_LOOP__ATTRIBUTION_DAYS)")
    conversions_accepted: int = Field(description="of them, accepted at the touchpoint")
    revenue_minor: int = Field(description="revenue proxy: conversions x the product's annual value, minor units of "
                               "the base currency")
    conversion_rate: float | None = Field(description="conversions / shows (null without shows)")
    conversion_interval: list[float] | None = Field(description="95 % Wilson interval [low, high] of the rate")
    acceptance_rate: float | None = Field(description="accepted / shows")
    acceptance_interval: list[float] | None


class Lift(BaseModel):
    measure: Literal["conversion", "acceptance"]
    treatment_shows: int
    control_shows: int
    treatment_rate: float | None
    control_rate: float | None
    lift: float | None = Field(description="(treatment rate - control rate) / control rate; null without a control "
                               "success")
    standard_error: float | None = Field(description="delta-method standard error of the lift")
    interval: list[float] | None = Field(description="95 % interval [low, high] of the lift")
    level: float
    verdict: Literal["significant", "not_yet"] = Field(description="significant: the interval excludes 0")
    reason: Literal["no_treatment_shows", "no_control_shows", "no_difference", "no_control_successes",
                    "no_treatment_successes"] | None = Field(description="why there is no interval or figure")
    more_shows: int | None = Field(description="not yet: the shows (both arms) still needed for 80 % power at the "
                                   "observed rates and the current split")
    more_shows_rounded: int | None = Field(description="more_shows rounded up to two significant figures")
    text: str = Field(description="the verdict in plain English")


class Decline(BaseModel):
    reason: str
    count: int
    share: float = Field(description="of this group's declines")


class Label(BaseModel):
    en: str
    zh: str


class Group(BaseModel):
    key: str = Field(description="the product, channel, segment or model version; `all` for the whole range")
    label: Label | None = Field(default=None, description="a product's names")
    total: Counts
    arms: dict[str, Counts] = Field(description="`treatment` and `control`")
    lift: Lift
    acceptance_lift: Lift
    top_declines: list[Decline] = Field(description="the most frequent decline reasons, the most frequent first")


class Currency(BaseModel):
    code: str
    minor_unit_exponent: int


class EffectivenessReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    day_from: date = Field(alias="from")
    to: date
    currency: Currency
    overall: Group
    by: dict[str, list[Group]] = Field(description="`product`, `channel`, `segment` (value x satisfaction), "
                                       "`model_version`: the groups, most shows first")
    unpriced: list[str] = Field(description="products with conversions that the catalog no longer holds "
                                "(their revenue proxy counts 0)")


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        if not DAY_PATTERN.match(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(422, f"{name}: {value[:40]!r} is not a day; write it as YYYY-MM-DD (a UTC day)") from None


def report_range(day_from: date | None, day_to: date | None, today: date) -> tuple[date, date]:
    """The range asked, with the defaults: ``to`` today, ``from`` 29 days before ``to``."""
    end = day_to or today
    start = day_from or end - timedelta(days=DEFAULT_DAYS - 1)
    problem = range_problem(start, end)
    if problem is not None:
        raise ApiError(422, problem)
    return start, end


@router.get("/v1/reports/effectiveness", response_model=EffectivenessReport,
            responses={**ERROR_RESPONSES,
                       403: {"model": Problem, "description": "the key is not of the marketing scope"},
                       422: {"model": Problem, "description": "a day that is not YYYY-MM-DD, `to` before `from`, "
                             f"or more than {MAX_REPORT_DAYS} days; the detail says which"},
                       503: {"model": Problem, "description": "the loop counters could not be read; retry"}},
            summary="How well the offers work: treatment against control",
            description="Shows, accepts, declines by reason, ignored offers, attributed conversions and the "
            "revenue proxy, by product, channel, value x satisfaction segment and model version, each split "
            "by arm, for the UTC days `from` to `to` the offers were shown on (a later answer or purchase "
            "counts for the day of its showing). `lift` compares the conversion rate of treatment with that "
            "of control (the random eligible offers) with a 95 % interval and a verdict: `significant` when "
            "the interval excludes 0, else `not_yet` with the shows still needed. Money in minor units of the "
            "bank's base currency. The key must be of the `marketing` scope (403 otherwise).")
async def effectiveness_report(
    services: ServicesDep,
    day_from: Annotated[str | None, Query(alias="from", description="first UTC day, YYYY-MM-DD (default: 29 days "
                                          "before `to`)", examples=["2026-05-01"], json_schema_extra=DAY_SCHEMA)] = None,
    day_to: Annotated[str | None, Query(alias="to", description="last UTC day, YYYY-MM-DD (default: today)",
                                        examples=["2026-05-30"], json_schema_extra=DAY_SCHEMA)] = None,
    x_api_key: ApiKey = None,
) -> JSONResponse:
    await services.admit(services.auth.authenticate(x_api_key, MARKETING))
    start, end = report_range(_day(day_from, "from"), _day(day_to, "to"), datetime.now(timezone.utc).date())
    reader = services.loop_stats
    if reader is None:
        raise ApiError(503, "this API has no loop counters to read")
    try:
        rows = await asyncio.wait_for(asyncio.to_thread(reader.counts, start, end), READ_TIMEOUT_S)
    except Exception as exc:  # Redis down, slow or refusing: say so, never a 500
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ApiError(503, f"the loop counters could not be read ({reason[:200]}); retry") from None
    currency = services.settings.money.base_currency
    report = effectiveness(rows, services.catalogs.current, start, end, currency, minor_unit_exponent(currency))
    return JSONResponse(report.to_dict())


@lru_cache(maxsize=1)
def _page() -> str:
    return (STATIC_DIR / "reports.html").read_text(encoding="utf-8")


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
async def reports_page() -> HTMLResponse:
    """The marketing page: it calls ``/v1/reports/effectiveness`` with the marketing key."""
    return HTMLResponse(_page(), headers=SECURITY_HEADERS)
