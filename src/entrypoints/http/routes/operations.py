"""Operations: liveness, readiness, metrics, and this API's own description and reference."""

from __future__ import annotations

import asyncio
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.backlog import read_backlog
from adapters.sql.migrate import SchemaState
from entrypoints.http.observability import CAUSE
from entrypoints.http.reference import reference_page
from entrypoints.http.routing import Access, Context, Routes, Tag
from entrypoints.http.schemas import ref

# A load balancer's probe gives up after a second or so: answer before it does.
READINESS_TIMEOUT_SECONDS: Final = 0.8
# Prometheus waits 10 s by default; the backlog's counts take milliseconds when all is well.
BACKLOG_TIMEOUT_SECONDS: Final = 2.0
HEALTH = ref("Health")
# A schema not current: (the status answered, the cause logged).
_NOT_READY: Final = {
    SchemaState.BEHIND: ("schema_not_current", "SchemaNotCurrent"),
    SchemaState.AHEAD: ("schema_newer_than_code", "SchemaNewerThanCode"),
}
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
    "The database is reachable and its schema at the newest migration",
    {200: HEALTH, 503: HEALTH},
)
async def readyz(request: Request, context: Context) -> Response:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            state = await context.checkout.schema_state()
    except Exception as error:  # noqa: BLE001 - unreachable, refusing, too slow: not ready
        setattr(request.state, CAUSE, type(error).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    # Behind, calls would fail on a missing table or column (`migrate` first); ahead, this
    # version would write rows a newer one no longer reads as it expects (deploy that one).
    if state is not SchemaState.CURRENT:
        status, cause = _NOT_READY[state]
        setattr(request.state, CAUSE, cause)
        return JSONResponse({"status": status}, status_code=503)
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
    await _read_backlog(request, context)
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _read_backlog(request: Request, context: Context) -> None:
    """The gauges of what waits, read now (a few counts on indexes); unknown (NaN) when the
    storage does not answer in time: the other metrics are answered all the same."""
    deps = context.checkout.deps
    try:
        async with asyncio.timeout(BACKLOG_TIMEOUT_SECONDS):
            backlog = await read_backlog(deps.uow)
    except Exception as error:  # noqa: BLE001 - unreachable, refusing, too slow: unknown
        setattr(request.state, CAUSE, type(error).__name__)
        backlog = None
    context.metrics.set_backlog(backlog, deps.clock.now())


@operations.route(
    "GET",
    "/openapi.json",
    "getOpenApi",
    "This document",
    {200: {"type": "object"}},
)
async def openapi(request: Request, context: Context) -> Response:
    return JSONResponse(context.openapi)


@operations.route(
    "GET",
    "/docs",
    "getApiReference",
    "This document as a page to read and try in a browser",
    {200: {"type": "string"}},
    media_type="text/html",
)
async def docs(request: Request, context: Context) -> Response:
    return reference_page()
