"""Payments: create (and charge), process, read, list, refund, and their events."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import (
    PAYMENT_FAILURES,
    AmountMismatch,
    CheckoutError,
    ConcurrentUpdate,
    CurrencyMismatch,
    CustomerNotFound,
    CustomerNotLinked,
    GatewayError,
    GatewayNotConnected,
    InvalidStateTransition,
    InvoiceAlreadyPaid,
    InvoiceNotFinalized,
    InvoiceNotFound,
    InvoiceVoided,
    PaymentInProgress,
    PaymentNotFound,
    RefundExceedsPayment,
)
from entrypoints import bodies
from entrypoints.http import keyed, params, wire
from entrypoints.http.answers import answer, payment_answer
from entrypoints.http.auth import environment_of
from entrypoints.http.body import json_body
from entrypoints.http.routing import KEY_REUSE, Context, Routes, Tag
from entrypoints.http.schemas import list_of, ref

PAYMENT = ref("Payment")
# Why charging an invoice may be refused or fail, whether the payment is created or processed.
CHARGING: tuple[type[CheckoutError], ...] = (
    InvoiceNotFound,
    InvoiceNotFinalized,
    InvoiceVoided,
    InvoiceAlreadyPaid,
    PaymentInProgress,
    InvalidStateTransition,
    ConcurrentUpdate,
    CustomerNotLinked,
    *PAYMENT_FAILURES.values(),
    GatewayError,
    GatewayNotConnected,
    *KEY_REUSE,
)
payments = Routes(Tag("Payments", "Charging invoices, by saved card or hosted payment link."))


@payments.route(
    "POST",
    "/payments",
    "createPayment",
    "Create (and charge) a payment for an invoice",
    {201: PAYMENT, 202: PAYMENT},
    body=bodies.CREATE_PAYMENT,
    idempotent=True,
    errors=(*CHARGING, AmountMismatch, CurrencyMismatch),
)
async def create_payment(request: Request, context: Context) -> Response:
    creating = await keyed.create(request, context.checkout.create_payment_answer)
    return await payment_answer(creating, context.metrics)


@payments.route(
    "GET",
    "/payments",
    "listPayments",
    "List payments, newest first",
    {200: list_of("Payment")},
    query=(
        params.DESTINATION_ID,
        params.CUSTOMER_ID,
        params.PAYMENT_STATUS,
        params.CREATED_GTE,
        params.CREATED_LT,
        *params.PAGE,
    ),
)
async def list_payments(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    query = request.query_params
    page = await context.checkout.list_payments(
        environment,
        destination_id=query.get("destination_id"),
        customer_id=query.get("customer_id"),
        payment_status=query.get("payment_status"),
        created_gte=params.query_time(request, "created_gte"),
        created_lt=params.query_time(request, "created_lt"),
        **params.page_args(request),
    )
    return JSONResponse(wire.page_json(page, wire.payment_json))


@payments.route(
    "GET",
    "/payments/{payment_id}",
    "getPayment",
    "Get a payment",
    {200: PAYMENT},
    errors=(PaymentNotFound,),
)
async def get_payment(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    payment = await context.checkout.get_payment(environment, request.path_params["payment_id"])
    return JSONResponse(wire.payment_json(payment))


@payments.route(
    "POST",
    "/payments/{payment_id}/process",
    "processPayment",
    "Charge an initiated payment",
    {201: PAYMENT, 202: PAYMENT},
    idempotent=True,
    errors=(*CHARGING, PaymentNotFound, CustomerNotFound),
)
async def process_payment(request: Request, context: Context) -> Response:
    processing = await keyed.act(request, "payment_id", context.checkout.process_payment_answer)
    return await payment_answer(processing, context.metrics)


@payments.route(
    "POST",
    "/payments/{payment_id}/refunds",
    "refundPayment",
    "Refund all or part of a payment",
    {201: ref("Refund")},
    body=bodies.REFUND,
    idempotent=True,
    errors=(
        PaymentNotFound,
        InvalidStateTransition,
        RefundExceedsPayment,
        ConcurrentUpdate,
        GatewayError,
        GatewayNotConnected,
        *KEY_REUSE,
    ),
)
async def refund_payment(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    body = await json_body(request, optional=True)
    return await answer(
        context.checkout.refund_payment_answer(
            environment,
            request.path_params["payment_id"],
            body,
            idempotency_key=params.idempotency_key(request),
        ),
        wire.refund_json,
    )


@payments.route(
    "GET",
    "/payments/{payment_id}/refunds",
    "listRefunds",
    "A payment's refunds, oldest first",
    {200: list_of("Refund")},
    query=params.PAGE,
    errors=(PaymentNotFound,),
)
async def list_refunds(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    refunds = await context.checkout.list_refunds(
        environment, request.path_params["payment_id"], **params.page_args(request)
    )
    return JSONResponse(wire.page_json(refunds, wire.refund_json))


@payments.route(
    "GET",
    "/payments/{payment_id}/events",
    "listPaymentEvents",
    "A payment's transitions, oldest first, numbered 1, 2, 3...",
    {200: list_of("PaymentEvent")},
    query=params.EVENT_PAGE,
    errors=(PaymentNotFound,),
)
async def payment_events(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    events = await context.checkout.payment_events(
        environment, request.path_params["payment_id"], **params.page_args(request)
    )
    return JSONResponse(wire.page_json(events, wire.event_json))
