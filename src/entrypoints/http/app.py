"""The Starlette app of the contract, built by `create_app` from a `CardCheckout`.

The factory assembles the parts: the routes (one module per resource under `routes/`), the
OpenAPI document read off them, the middleware, the exception handlers and the lifespan that
runs the background work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from core.errors import CheckoutError, ServiceUnavailable
from core.usecases import ReconcileReport
from entrypoints.http.errors import on_checkout_error, on_http_error
from entrypoints.http.header_limits import HeaderLimits
from entrypoints.http.headers import SecurityHeaders
from entrypoints.http.observability import Metrics, RequestObservability
from entrypoints.http.openapi import openapi_document
from entrypoints.http.reference import reference_assets
from entrypoints.http.routes import api_routes
from entrypoints.http.routing import Context
from entrypoints.http.sandbox_pages import sandbox_routes
from entrypoints.http.throttle import AuthThrottle
from entrypoints.library import CardCheckout
from entrypoints.logs import bound

logger = logging.getLogger("card_checkout.http")


def create_app(
    checkout: CardCheckout,
    *,
    notify_every: float | None = 1.0,
    reconcile_every: float | None = None,
    reconcile_older_than: float = 30.0,
    webhook_secrets: Sequence[str] = (),
    close_checkout: bool = True,
    auth_throttle: AuthThrottle | None = None,
) -> Starlette:
    """The service over `checkout`. Background tasks deliver the outbox (and send the webhooks
    that are due, when `checkout` has a sender) every `notify_every` seconds, and reconcile
    payments in flight every `reconcile_every` seconds (None: never)."""
    metrics = Metrics()
    throttle = AuthThrottle() if auth_throttle is None else auth_throttle
    context = Context(checkout, metrics, tuple(webhook_secrets), auth_throttle=throttle)
    routes: list[BaseRoute] = [*api_routes(context)]
    if checkout.sandbox is not None:
        routes.extend(sandbox_routes(checkout))
    routes.extend(reference_assets())
    context.openapi.update(openapi_document(routes))
    checkout.newest_schema()  # /readyz compares with it: read the migrations now, not when polled
    app = Starlette(
        routes=routes,
        lifespan=_lifespan(
            checkout,
            metrics,
            notify_every=notify_every,
            reconcile_every=reconcile_every,
            reconcile_older_than=reconcile_older_than,
            close_checkout=close_checkout,
        ),
        exception_handlers={
            CheckoutError: on_checkout_error,
            HTTPException: on_http_error,
        },  # a bug is answered (and logged, once) by RequestObservability
    )
    app.add_middleware(HeaderLimits)  # before any route, yet logged and counted
    app.add_middleware(RequestObservability, metrics=metrics)
    app.add_middleware(SecurityHeaders)  # outermost: on the 500 of a bug too
    return app


def _lifespan(
    checkout: CardCheckout,
    metrics: Metrics,
    *,
    notify_every: float | None,
    reconcile_every: float | None,
    reconcile_older_than: float,
    close_checkout: bool,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        workers = []
        if notify_every:
            deliver = _delivery(checkout, metrics)
            workers.append(_every(notify_every, deliver, "delivery", metrics))
            if checkout.webhook_sender is not None:
                send = _webhooks(checkout, metrics)
                workers.append(_every(notify_every, send, "webhook", metrics))
        if reconcile_every:
            reconcile = _reconcile(checkout, timedelta(seconds=reconcile_older_than), metrics)
            workers.append(_every(reconcile_every, reconcile, "reconciliation", metrics))
        tasks = [asyncio.create_task(worker) for worker in workers]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if close_checkout:
                await checkout.aclose()

    return lifespan


async def _every(
    seconds: float, work: Callable[[], Awaitable[object]], name: str,
    metrics: Metrics | None = None,
) -> None:  # fmt: skip
    """Run `work` forever, `seconds` apart; a failed pass is logged and the next one retries.
    Each pass's lines carry its `pass_id`."""
    while True:
        outcome = "failed"
        with bound(background_pass=name, pass_id=uuid.uuid4().hex):
            try:
                done = await work()
                stopped = isinstance(done, ReconcileReport) and done.stopped_by is not None
                outcome = "stopped" if stopped else "ok"
            except ServiceUnavailable as error:  # an outage, not a bug: one line, no traceback
                logger.warning("%s pass failed: %s; will retry", name, error.message)
            except Exception:
                logger.warning("%s pass failed; will retry", name, exc_info=True)
        if metrics is not None:
            metrics.count_pass(name, outcome)
        await asyncio.sleep(seconds)


def _delivery(checkout: CardCheckout, metrics: Metrics) -> Callable[[], Awaitable[object]]:
    async def once() -> object:
        delivered = await checkout.deliver_notifications()
        metrics.notifications_delivered.inc(delivered)
        return delivered

    return once


def _webhooks(checkout: CardCheckout, metrics: Metrics) -> Callable[[], Awaitable[object]]:
    async def once() -> object:
        report = await checkout.send_webhooks()
        metrics.count_webhooks(report)
        return report

    return once


def _reconcile(
    checkout: CardCheckout, older_than: timedelta, metrics: Metrics
) -> Callable[[], Awaitable[object]]:
    async def once() -> object:
        report = await checkout.reconcile(older_than=older_than)
        metrics.count_reconciliation(report)
        _log_reconciliation(report)
        return report

    return once


def _log_reconciliation(report: ReconcileReport) -> None:
    """One line for what the pass changed, one per item that failed or needs a person."""
    if report.examined:
        logger.info(
            "reconciliation: %d succeeded, %d failed, %d refunds settled, %d already settled "
            "by another process, %d still unknown, %d errors",
            report.succeeded, report.failed, report.refunds_settled, report.already_settled,
            len(report.unresolved), len(report.errors),
        )  # fmt: skip
    for item in report.errors:
        logger.warning(
            "reconciliation could not handle %s in %s: %s",
            item.id, item.environment_id, item.error,
        )  # fmt: skip
    for stuck in report.needs_attention:
        logger.error(
            "payment %s in %s still unknown after %.0f s: it needs a person",
            stuck.payment_id, stuck.environment_id, stuck.in_flight_for.total_seconds(),
        )  # fmt: skip
    if report.stopped_by is not None:
        logger.warning(
            "reconciliation stopped early: %s: %s",
            report.stopped_by.code, report.stopped_by.message,
        )  # fmt: skip
