"""Operations: liveness, readiness (Redis reachable) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.deps import ServicesDep
from services.api.views import catalog_status

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness",
            description="200 `{\"status\": \"ok\"}` while the process serves; no key needed.")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Redis unreachable; on a Redis Cluster, any node that does "
                                           "not say cluster_state:ok with every slot assigned"}}, summary="Readiness",
            description="Whether Redis answers within 0.5 s (`redis`), the broker is connected (`broker`) and "
            "which model serves (`model`), the catalog served (`catalog_hash`: first 12 hex of its sha256, "
            "`catalog_products`; `catalog_refused`: the latest edit of the catalog file was refused; "
            "`model_catalog_hash`: the catalog the model was trained for, when another). 200 when Redis "
            "answers, else 503 (with `redis_error`: why, e.g. the credentials refused): take the replica out of "
            "the load balancer. No key needed.")
async def readyz(services: ServicesDep) -> JSONResponse:
    problem = None
    try:
        redis_ok = await asyncio.wait_for(services.store.ping(), timeout=0.5)
    except Exception as exc:  # down, slow, or refusing the credentials: say which
        redis_ok = False
        problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    body: dict[str, object] = {"redis": redis_ok, "broker": services.publisher.connected,
                               "model": services.models.version}
    if problem is not None:
        body["redis_error"] = problem
    body.update(catalog_status(services.catalogs.current, services.models.current, services.catalogs.refused))
    return JSONResponse(body, status_code=200 if redis_ok else 503)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            description="Offer decisions and their latency per channel, degraded fallbacks, outcomes per channel "
            "and outcome, failed or slow state reads, decision-log records sent and dropped, whether the levers "
            "file and the catalog file on disk were refused, how old the online evidence is and how many of its reads failed, and the stream workers' counters (applied, "
            "duplicates, dead letters), in the Prometheus text format. No key needed.")
async def metrics(services: ServicesDep) -> Response:
    metrics = services.metrics
    metrics.decision_log_dropped.set(services.publisher.dropped)
    metrics.decision_log_sent.set(services.publisher.sent)
    metrics.policy_file_refused.set(1 if services.policies.refused else 0)
    metrics.catalog_file_refused.set(1 if services.catalogs.refused else 0)
    metrics.evidence_read_failures.set(services.learning.failures)
    read_at_s = services.learning.read_at_s
    metrics.evidence_age.set(-1 if read_at_s is None else max(0.0, time.time() - read_at_s))
    try:  # the stream workers' counters (dead letters, duplicates), best effort within the budget
        async with asyncio.timeout(max(services.redis_budget_s, 0.2)):
            stats = await services.store.counters()
        for name, value in stats.items():
            metrics.stream.labels(name).set(float(value))
    except Exception:
        metrics.redis_errors.inc()
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
