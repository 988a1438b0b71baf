"""The Starlette app of the contract, built by `create_app` from a `CardCheckout`.

The factory assembles the parts: the routes (one module per resource under `routes/`), the
OpenAPI document read off them, the middleware, the exception handlers and the lifespan that
runs the background work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from core.errors import CheckoutError
from entrypoints.http.errors import on_checkout_error, on_http_error, on_unexpected
from entrypoints.http.observability import Metrics, RequestObservability
from entrypoints.http.openapi import openapi_document
from entrypoints.http.routes import api_routes
from entrypoints.http.routing import Context
from entrypoints.http.sandbox_pages import sandbox_routes
from entrypoints.library import CardCheckout

logger = logging.getLogger("card_checkout.http")


def create_app(
    checkout: CardCheckout,
    *,
    notify_every: float | None = 1.0,
    reconcile_every: float | None = None,
    reconcile_older_than: float = 30.0,
    webhook_secrets: Sequence[str] = (),
    close_checkout: bool = True,
) -> Starlette:
    """The service over `checkout`. Background tasks deliver the outbox (and send the webhooks
    that are due, when `checkout` has a sender) every `notify_every` seconds, and reconcile
    payments in flight every `reconcile_every` seconds (None: never)."""
    metrics = Metrics()
    context = Context(checkout, metrics, tuple(webhook_secrets))
    routes: list[BaseRoute] = [*api_routes(context)]
    if checkout.sandbox is not None:
        routes.extend(sandbox_routes(checkout))
    context.openapi.update(openapi_document(routes))
    app = Starlette(
        routes=routes,
        lifespan=_lifespan(
            checkout,
            notify_every=notify_every,
            reconcile_every=reconcile_every,
            reconcile_older_than=reconcile_older_than,
            close_checkout=close_checkout,
        ),
        exception_handlers={
            CheckoutError: on_checkout_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.add_middleware(RequestObservability, metrics=metrics)
    return app


def _lifespan(
    checkout: CardCheckout,
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
            workers.append(_every(notify_every, checkout.deliver_notifications, "delivery"))
            if checkout.webhook_sender is not None:
                workers.append(_every(notify_every, checkout.send_webhooks, "webhook"))
        if reconcile_every:
            reconcile = _reconcile(checkout, timedelta(seconds=reconcile_older_than))
            workers.append(_every(reconcile_every, reconcile, "reconciliation"))
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


async def _every(seconds: float, work: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `work` forever, `seconds` apart; a failed pass is logged and the next one retries."""
    while True:
        try:
            await work()
        except Exception:
            logger.warning("%s pass failed; will retry", name, exc_info=True)
        await asyncio.sleep(seconds)


def _reconcile(checkout: CardCheckout, older_than: timedelta) -> Callable[[], Awaitable[object]]:
    async def once() -> object:
        report = await checkout.reconcile(older_than=older_than)
        if report.needs_attention:
            logger.error(
                "payments in flight for over an hour need a person: %s",
                ", ".join(report.needs_attention),
            )
        return report

    return once
