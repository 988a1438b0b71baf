"""One log line and metrics per request, under a request id echoed as X-Request-ID and
bound to every line logged while the request is served; the service's other metrics."""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from datetime import datetime
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.backlog import Backlog
from core.errors import InternalError
from core.rules import looks_like_card_number
from core.usecases import ReconcileReport, WebhookReport
from entrypoints.http.errors import error_response
from entrypoints.logs import bound

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
        self._backlog_metrics()
        self._background_metrics()

    def _backlog_metrics(self) -> None:
        """Read from storage at each scrape (`set_backlog`): the same in every process."""
        self.outbox_notifications = Gauge(
            "card_checkout_outbox_notifications",
            "Notifications in the outbox, not yet delivered",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "card_checkout_outbox_oldest_age_seconds",
            "Age of the oldest notification in the outbox (0: empty)",
            registry=self.registry,
        )
        self.webhook_deliveries_pending = Gauge(
            "card_checkout_webhook_deliveries_pending",
            "Outbound webhook deliveries neither delivered nor given up",
            registry=self.registry,
        )
        self.payments_processing = Gauge(
            "card_checkout_payments_processing",
            "Payments in flight: sent to the gateway, outcome not known yet",
            registry=self.registry,
        )
        self.set_backlog(None)  # unknown until read

    def _background_metrics(self) -> None:
        """Counted from the reports of this process's background passes."""
        self.passes = Counter(
            "card_checkout_background_passes",
            "Background passes, by pass and outcome (ok, stopped early by an outage, failed)",
            ["pass", "outcome"],
            registry=self.registry,
        )
        self.last_pass = Gauge(
            "card_checkout_background_pass_last_success_timestamp_seconds",
            "When each background pass last ended without failing (Unix time)",
            ["pass"],
            registry=self.registry,
        )
        self.notifications_delivered = Counter(
            "card_checkout_notifications_delivered",
            "Notifications delivered from the outbox to the notifier",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "card_checkout_webhook_deliveries",
            "Outbound webhook attempts, by outcome (delivered; failed, to be retried; given up)",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_endpoints_disabled = Counter(
            "card_checkout_webhook_endpoints_disabled",
            "Webhook endpoints disabled after failing too long",
            registry=self.registry,
        )
        self.reconciled = Counter(
            "card_checkout_reconciliation_items",
            "Payments and refunds examined by reconciliation, by result",
            ["result"],
            registry=self.registry,
        )
        self.needs_attention = Gauge(
            "card_checkout_reconciliation_needs_attention",
            "Payments the last reconciliation pass found unknown too long: they need a person",
            registry=self.registry,
        )
        for name in PASSES:  # every series from the start: a rate needs its zero
            self.last_pass.labels(name)
            for outcome in PASS_OUTCOMES:
                self.passes.labels(name, outcome)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_deliveries.labels(outcome)
        for result in RECONCILIATION_RESULTS:
            self.reconciled.labels(result)

    def set_backlog(self, backlog: Backlog | None, now: datetime | None = None) -> None:
        """The backlog as read at `now`; None: it could not be read (NaN, not a stale value)."""
        if backlog is None:
            for gauge in (
                self.outbox_notifications,
                self.outbox_oldest_age,
                self.webhook_deliveries_pending,
                self.payments_processing,
            ):
                gauge.set(math.nan)  # fmt: skip
            return
        oldest = backlog.oldest_notification_at
        age = (now - oldest).total_seconds() if oldest is not None and now is not None else 0.0
        self.outbox_notifications.set(backlog.outbox_notifications)
        self.outbox_oldest_age.set(max(age, 0.0))
        self.webhook_deliveries_pending.set(backlog.webhook_deliveries_pending)
        self.payments_processing.set(backlog.payments_processing)

    def count_pass(self, name: str, outcome: str) -> None:
        self.passes.labels(name, outcome).inc()
        if outcome != "failed":
            self.last_pass.labels(name).set_to_current_time()

    def count_webhooks(self, report: WebhookReport) -> None:
        self.webhook_deliveries.labels("delivered").inc(report.delivered)
        self.webhook_deliveries.labels("failed").inc(report.failed)
        self.webhook_deliveries.labels("given_up").inc(report.given_up)
        self.webhook_endpoints_disabled.inc(len(report.disabled))

    def count_reconciliation(self, report: ReconcileReport) -> None:
        for result, count in (
            ("succeeded", report.succeeded),
            ("failed", report.failed),
            ("refund_settled", report.refunds_settled),
            ("already_settled", report.already_settled),
            ("unknown", len(report.unresolved)),
            ("error", len(report.errors)),
        ):
            self.reconciled.labels(result).inc(count)
        self.needs_attention.set(len(report.needs_attention))


# The label values of the background metrics: a fixed few, never ids.
PASSES: Final = ("delivery", "webhook", "reconciliation")
PASS_OUTCOMES: Final = ("ok", "stopped", "failed")
WEBHOOK_OUTCOMES: Final = ("delivered", "failed", "given_up")
RECONCILIATION_RESULTS: Final = (
    "succeeded", "failed", "refund_settled", "already_settled", "unknown", "error",
)  # fmt: skip


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
        # Starlette reads the app state here; servers without a lifespan give none.
        scope.setdefault("state", {})
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

        # On every line logged while it is served, and in every error body it gets.
        with bound(request_id=request_id):  # on every log line, and in error bodies
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
                _log_request(scope, request_id, route, status, elapsed, bug)


def _log_request(
    scope: Scope, request_id: str, route: str, status: int, elapsed: float,
    bug: BaseException | None,
) -> None:  # fmt: skip
    """The request's one line: its fields apart (and its id again, for handlers that do
    not read the context), the traceback of a bug inside it."""
    level = logging.ERROR if bug else logging.WARNING if status >= 500 else logging.INFO
    fields = {
        "request_id": request_id,
        "method": scope["method"],
        "route": route,
        "status": status,
        "duration_ms": round(elapsed * 1000, 1),
    }
    cause = scope["state"].get(CAUSE)
    if cause:
        fields["cause"] = cause
    logger.log(level, "request", extra=fields, exc_info=bug)


def _route_of(scope: Scope) -> str:
    """The route's pattern (never the raw path: ids would make every line unique)."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
