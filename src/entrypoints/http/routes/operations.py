"""Operations: liveness, readiness, metrics, and this API's own description."""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from entrypoints.http.routing import Access, Context, Routes, Tag
from entrypoints.http.schemas import ref

logger = logging.getLogger("card_checkout.http")
HEALTH = ref("Health")
operations = Routes(Tag("Operations", "For load balancers, monitoring and tools."), prefix="")


@operations.route(
    "GET", "/healthz", "getHealth", "The process is alive", {200: HEALTH}, access=Access.PUBLIC
)
async def healthz(request: Request, context: Context) -> Response:
    return JSONResponse({"status": "ok"})


@operations.route(
    "GET",
    "/readyz",
    "getReadiness",
    "The database is reachable",
    {200: HEALTH, 503: HEALTH},
    access=Access.PUBLIC,
)
async def readyz(request: Request, context: Context) -> Response:
    try:
        await context.checkout.ping()
    except Exception:
        logger.warning("readiness check failed", exc_info=True)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


@operations.route(
    "GET",
    "/metrics",
    "getMetrics",
    "Prometheus metrics",
    {200: {"type": "string"}},
    access=Access.PUBLIC,
    media_type="text/plain",
)
async def metrics(request: Request, context: Context) -> Response:
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@operations.route(
    "GET",
    "/openapi.json",
    "getOpenApi",
    "This document",
    {200: {"type": "object"}},
    access=Access.PUBLIC,
)
async def openapi(request: Request, context: Context) -> Response:
    return JSONResponse(context.openapi)
