"""The Starlette app of the contract, built by `create_app` from a `CardCheckout`.

Endpoints are thin: authenticate, parse, call one use case, shape the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.stripe_gateway.webhooks import parse_webhook
from core.errors import CheckoutError, ValidationError
from core.model import Payment, PaymentMethodType, PaymentStatus, Role
from core.usecases import Answer
from entrypoints.bootstrap import CardCheckout
from entrypoints.http import wire
from entrypoints.http.auth import environment_of
from entrypoints.http.body import MAX_WEBHOOK_BYTES, json_body, raw_body
from entrypoints.http.errors import (
    error_response,
    on_checkout_error,
    on_http_error,
    on_unexpected,
)
from entrypoints.http.observability import Metrics, RequestObservability

logger = logging.getLogger("card_checkout.http")
Endpoint = Callable[[Request], Awaitable[Response]]


def payment_status_code(payment: Payment) -> int:
    """201 when the answer is known (or a link is open), 202 while the gateway's is unknown."""
    if payment.status is PaymentStatus.PROCESSING and (
        payment.method_type is PaymentMethodType.CARD or payment.payment_url is None
    ):
        return 202
    return 201


def _replay_headers(replayed: bool) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if replayed else {}


def _idempotency_key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ValidationError(f"{name} must be a whole number.", field=name)
    return int(raw)


def _query_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time.", field=name) from None
    if value.tzinfo is None:
        raise ValidationError(f"{name} must include a time zone (e.g. Z).", field=name)
    return value


class Api:
    """The endpoints, over one `CardCheckout`."""

    def __init__(
        self, checkout: CardCheckout, metrics: Metrics, webhook_secrets: Sequence[str] = ()
    ) -> None:
        self.checkout = checkout
        self.metrics = metrics
        self.webhook_secrets = tuple(webhook_secrets)

    async def _answer(
        self,
        work: Awaitable[Answer[Any]],
        render: Callable[[Any], wire.Json],
        status: int = 201,
    ) -> Response:
        """Run an idempotent use case; a replay answers with what the first answered."""
        try:
            answer = await work
        except CheckoutError as error:
            return error_response(error, headers=_replay_headers(error.replayed))
        return JSONResponse(
            render(answer.value), status_code=status, headers=_replay_headers(answer.replayed)
        )

    async def _payment_answer(self, work: Awaitable[Answer[Payment]]) -> Response:
        try:
            answer = await work
        except CheckoutError as error:
            self.metrics.payments.labels(error.code).inc()
            return error_response(error, headers=_replay_headers(error.replayed))
        payment = answer.value
        self.metrics.payments.labels(payment.status.value).inc()
        return JSONResponse(
            wire.payment_json(payment),
            status_code=payment_status_code(payment),
            headers=_replay_headers(answer.replayed),
        )

    # Payments

    async def create_payment(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        body = await json_body(request)
        assert body is not None
        return await self._payment_answer(
            self.checkout.create_payment_answer(
                environment, body, idempotency_key=_idempotency_key(request)
            )
        )

    async def process_payment(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        await json_body(request, optional=True)
        return await self._payment_answer(
            self.checkout.process_payment_answer(
                environment,
                request.path_params["payment_id"],
                idempotency_key=_idempotency_key(request),
            )
        )

    async def get_payment(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        payment = await self.checkout.get_payment(environment, request.path_params["payment_id"])
        return JSONResponse(wire.payment_json(payment))

    async def list_payments(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        query = request.query_params
        page = await self.checkout.list_payments(
            environment,
            destination_id=query.get("destination_id"),
            customer_id=query.get("customer_id"),
            payment_status=query.get("payment_status"),
            created_gte=_query_time(request, "created_gte"),
            created_lt=_query_time(request, "created_lt"),
            limit=_query_int(request, "limit", 20),
            starting_after=query.get("starting_after"),
        )
        return JSONResponse(wire.page_json(page, wire.payment_json))

    async def payment_events(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        events = await self.checkout.payment_events(environment, request.path_params["payment_id"])
        return JSONResponse(wire.items_json(events, wire.event_json))

    async def refund_payment(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        body = await json_body(request, optional=True)
        return await self._answer(
            self.checkout.refund_payment_answer(
                environment,
                request.path_params["payment_id"],
                body,
                idempotency_key=_idempotency_key(request),
            ),
            wire.refund_json,
        )

    async def list_refunds(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        refunds = await self.checkout.list_refunds(environment, request.path_params["payment_id"])
        return JSONResponse(wire.items_json(refunds, wire.refund_json))

    # Customers

    async def create_customer(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        body = await json_body(request)
        assert body is not None
        return await self._answer(
            self.checkout.create_customer_answer(
                environment, body, idempotency_key=_idempotency_key(request)
            ),
            wire.customer_json,
        )

    async def get_customer(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        customer = await self.checkout.get_customer(environment, request.path_params["customer_id"])
        return JSONResponse(wire.customer_json(customer))

    async def payment_methods(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        cards = await self.checkout.list_payment_methods(
            environment, request.path_params["customer_id"]
        )
        return JSONResponse(wire.items_json(cards, wire.payment_method_json))

    async def setup_card(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        body = await json_body(request, optional=True)
        session = await self.checkout.setup_card(
            environment,
            request.path_params["customer_id"],
            body,
            idempotency_key=_idempotency_key(request),
        )
        return JSONResponse(wire.checkout_session_json(session), status_code=201)

    # Invoices

    async def create_invoice(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        body = await json_body(request)
        assert body is not None
        return await self._answer(
            self.checkout.create_invoice_answer(
                environment, body, idempotency_key=_idempotency_key(request)
            ),
            wire.invoice_json,
        )

    async def get_invoice(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        invoice = await self.checkout.get_invoice(environment, request.path_params["invoice_id"])
        return JSONResponse(wire.invoice_json(invoice))

    async def list_invoices(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        page = await self.checkout.list_invoices(
            environment,
            customer_id=request.query_params.get("customer_id"),
            invoice_status=request.query_params.get("invoice_status"),
            limit=_query_int(request, "limit", 20),
            starting_after=request.query_params.get("starting_after"),
        )
        return JSONResponse(wire.page_json(page, wire.invoice_json))

    async def finalize_invoice(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        await json_body(request, optional=True)
        return await self._answer(
            self.checkout.finalize_invoice_answer(
                environment,
                request.path_params["invoice_id"],
                idempotency_key=_idempotency_key(request),
            ),
            wire.invoice_json,
            status=200,
        )

    async def void_invoice(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request)
        await json_body(request, optional=True)
        return await self._answer(
            self.checkout.void_invoice_answer(
                environment,
                request.path_params["invoice_id"],
                idempotency_key=_idempotency_key(request),
            ),
            wire.invoice_json,
            status=200,
        )

    # Webhook endpoints: admin keys only, as they say where the environment's events go.

    async def create_webhook_endpoint(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request, Role.ADMIN)
        body = await json_body(request)
        assert body is not None
        endpoint = await self.checkout.create_webhook_endpoint(environment, body)
        return JSONResponse(wire.webhook_endpoint_json(endpoint, with_secret=True), status_code=201)

    async def list_webhook_endpoints(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request, Role.ADMIN)
        endpoints = await self.checkout.list_webhook_endpoints(environment)
        return JSONResponse(wire.items_json(endpoints, wire.webhook_endpoint_json))

    async def get_webhook_endpoint(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request, Role.ADMIN)
        endpoint = await self.checkout.get_webhook_endpoint(
            environment, request.path_params["endpoint_id"]
        )
        return JSONResponse(wire.webhook_endpoint_json(endpoint))

    async def delete_webhook_endpoint(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request, Role.ADMIN)
        endpoint = await self.checkout.delete_webhook_endpoint(
            environment, request.path_params["endpoint_id"]
        )
        return JSONResponse(wire.webhook_endpoint_json(endpoint))

    async def webhook_deliveries(self, request: Request) -> Response:
        environment = await environment_of(self.checkout, request, Role.ADMIN)
        deliveries = await self.checkout.webhook_deliveries(
            environment,
            request.path_params["endpoint_id"],
            limit=_query_int(request, "limit", 20),
        )
        return JSONResponse(wire.items_json(deliveries, wire.webhook_delivery_json))

    # Gateway webhooks

    async def stripe_webhook(self, request: Request) -> Response:
        """Stripe's events: verified, applied once, acknowledged; a failure answers 5xx so
        Stripe retries."""
        environment_id = request.path_params["environment_id"]
        payload = await raw_body(request, limit=MAX_WEBHOOK_BYTES)
        secrets = await self.checkout.webhook_secrets(environment_id, self.webhook_secrets)
        event = parse_webhook(payload, request.headers.get("stripe-signature"), secrets)
        if event is None:
            return JSONResponse({"received": True, "handled": False})
        named = event.metadata.get("environment_id")
        if named is not None and named != environment_id:
            logger.warning("webhook %s names environment %s, not %s", event.id, named,
                           environment_id)  # fmt: skip
            return JSONResponse({"received": True, "handled": False})
        known = await self.checkout.handle_gateway_event(event)
        if not known:
            logger.info("gateway event %s (%s) names nothing known here; acknowledged",
                        event.id, event.type.value)  # fmt: skip
        return JSONResponse({"received": True, "handled": known})

    # Operations

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        try:
            await self.checkout.ping()
        except Exception:
            logger.warning("readiness check failed", exc_info=True)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_text(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def api_routes(api: Api) -> list[BaseRoute]:
    """Every route of the contract; the OpenAPI document is checked against this list."""
    v1 = "/api/v1"
    return [
        Route(f"{v1}/payments", api.create_payment, methods=["POST"]),
        Route(f"{v1}/payments", api.list_payments, methods=["GET"]),
        Route(f"{v1}/payments/{{payment_id}}", api.get_payment, methods=["GET"]),
        Route(f"{v1}/payments/{{payment_id}}/process", api.process_payment, methods=["POST"]),
        Route(f"{v1}/payments/{{payment_id}}/refunds", api.refund_payment, methods=["POST"]),
        Route(f"{v1}/payments/{{payment_id}}/refunds", api.list_refunds, methods=["GET"]),
        Route(f"{v1}/payments/{{payment_id}}/events", api.payment_events, methods=["GET"]),
        Route(f"{v1}/customers", api.create_customer, methods=["POST"]),
        Route(f"{v1}/customers/{{customer_id}}", api.get_customer, methods=["GET"]),
        Route(
            f"{v1}/customers/{{customer_id}}/payment_methods", api.payment_methods, methods=["GET"]
        ),
        Route(
            f"{v1}/customers/{{customer_id}}/payment_methods/setup",
            api.setup_card,
            methods=["POST"],
        ),
        Route(f"{v1}/invoices", api.create_invoice, methods=["POST"]),
        Route(f"{v1}/invoices", api.list_invoices, methods=["GET"]),
        Route(f"{v1}/invoices/{{invoice_id}}", api.get_invoice, methods=["GET"]),
        Route(f"{v1}/invoices/{{invoice_id}}/finalize", api.finalize_invoice, methods=["POST"]),
        Route(f"{v1}/invoices/{{invoice_id}}/void", api.void_invoice, methods=["POST"]),
        Route(f"{v1}/webhook_endpoints", api.create_webhook_endpoint, methods=["POST"]),
        Route(f"{v1}/webhook_endpoints", api.list_webhook_endpoints, methods=["GET"]),
        Route(f"{v1}/webhook_endpoints/{{endpoint_id}}", api.get_webhook_endpoint, methods=["GET"]),
        Route(
            f"{v1}/webhook_endpoints/{{endpoint_id}}",
            api.delete_webhook_endpoint,
            methods=["DELETE"],
        ),
        Route(
            f"{v1}/webhook_endpoints/{{endpoint_id}}/deliveries",
            api.webhook_deliveries,
            methods=["GET"],
        ),
        Route(f"{v1}/webhooks/stripe/{{environment_id}}", api.stripe_webhook, methods=["POST"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        Route("/metrics", api.metrics_text, methods=["GET"]),
    ]


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
    from entrypoints.http.openapi import openapi_route
    from entrypoints.http.sandbox_pages import sandbox_routes

    metrics = Metrics()
    api = Api(checkout, metrics, webhook_secrets)
    routes = api_routes(api)
    routes.append(openapi_route(routes))
    if checkout.sandbox is not None:
        routes.extend(sandbox_routes(checkout))

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

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            CheckoutError: on_checkout_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.add_middleware(RequestObservability, metrics=metrics)
    return app


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
