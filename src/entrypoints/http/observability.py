"""One log line and metrics per request, under a request id echoed as X-Request-ID."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import InternalError
from core.rules import looks_like_card_number
from entrypoints.http.errors import error_response

logger = logging.getLogger("card_checkout.http")
_SANE_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Where a route may note, in the request's state, why it failed when its status alone does
# not say (a class name, never data): the request's one log line then carries it.
CAUSE: Final = "failure_cause"


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "card_checkout_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "card_checkout_http_request_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
        )
        self.payments = Counter(
            "card_checkout_payments",
            "Payments answered, by status or error code",
            ["outcome"],
            registry=self.registry,
        )


class RequestObservability:
    """Pure ASGI middleware: request id, one structured log line (with the traceback of a
    bug, answered 500 here), metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        sane = _SANE_REQUEST_ID.match(given) and not looks_like_card_number(given)
        request_id = given if sane else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        started_answer = False
        bug: BaseException | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_answer
            if message["type"] == "http.response.start":
                status = message["status"]
                started_answer = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:  # noqa: BLE001 - a bug: logged below with its traceback
            # Answered and logged here, once: re-raised, the server would log it again.
            bug = error
            if not started_answer:
                await error_response(InternalError())(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)
            level = logging.ERROR if bug else logging.WARNING if status >= 500 else logging.INFO
            cause = scope["state"].get(CAUSE)
            logger.log(
                level,
                "request_id=%s method=%s route=%s status=%d duration_ms=%.1f%s",
                request_id,
                scope["method"],
                route,
                status,
                elapsed * 1000,
                f" cause={cause}" if cause else "",
                exc_info=bug,
            )


def _route_of(scope: Scope) -> str:
    """The route's pattern (never the raw path: ids would make every line unique)."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
