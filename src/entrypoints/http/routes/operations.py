"""Operations: liveness, readiness, metrics, and this API's own description."""

from __future__ import annotations

import asyncio
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from entrypoints.http.observability import CAUSE
from entrypoints.http.routing import Access, Context, Routes, Tag
from entrypoints.http.schemas import ref

# A load balancer's probe gives up after a second or so: answer before it does.
READINESS_TIMEOUT_SECONDS: Final = 0.8
HEALTH = ref("Health")
operations = Routes(
    Tag("Operations", "For load balancers, monitoring and tools."), prefix="", access=Access.PUBLIC
)


@operations.route("GET", "/healthz", "getHealth", "The process is alive", {200: HEALTH})
async def healthz(request: Request, context: Context) -> Response:
    return JSONResponse({"status": "ok"})


@operations.route(
    "GET",
    "/readyz",
    "getReadiness",
    "The database is reachable",
    {200: HEALTH, 503: HEALTH},
)
async def readyz(request: Request, context: Context) -> Response:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            await context.checkout.ping()
    except Exception as error:  # noqa: BLE001 - unreachable, refusing, too slow: not ready
        setattr(request.state, CAUSE, type(error).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


@operations.route(
    "GET",
    "/metrics",
    "getMetrics",
    "Prometheus metrics",
    {200: {"type": "string"}},
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
)
async def openapi(request: Request, context: Context) -> Response:
    return JSONResponse(context.openapi)
