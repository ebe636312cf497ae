"""Operations: liveness, readiness (Redis reachable) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Redis unreachable"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    try:
        redis_ok = await asyncio.wait_for(services.store.ping(), timeout=0.5)
    except Exception:
        redis_ok = False
    body = {"redis": redis_ok, "broker": services.publisher.connected, "model": services.models.version}
    return JSONResponse(body, status_code=200 if redis_ok else 503)


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    metrics = services.metrics
    metrics.decision_log_dropped.set(services.publisher.dropped)
    metrics.decision_log_sent.set(services.publisher.sent)
    metrics.policy_file_refused.set(1 if services.policies.refused else 0)
    try:  # the stream workers' counters (dead letters, duplicates), best effort within the budget
        async with asyncio.timeout(max(services.redis_budget_s, 0.2)):
            stats = await services.store.counters()
        for name, value in stats.items():
            metrics.stream.labels(name).set(float(value))
    except Exception:
        metrics.redis_errors.inc()
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
