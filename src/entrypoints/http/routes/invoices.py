"""Invoices: create, read, list, finalize, void."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import (
    ConcurrentUpdate,
    CustomerNotFound,
    InvalidStateTransition,
    InvoiceAlreadyPaid,
    InvoiceNotFound,
    InvoiceVoided,
    PaymentInProgress,
)
from entrypoints import bodies
from entrypoints.http import keyed, params, wire
from entrypoints.http.answers import answer
from entrypoints.http.auth import environment_of
from entrypoints.http.routing import KEY_REUSE, Context, Routes, Tag
from entrypoints.http.schemas import list_of, ref

INVOICE = ref("Invoice")
invoices = Routes(Tag("Invoices", "What a customer owes; payments pay them."))


@invoices.route(
    "POST",
    "/invoices",
    "createInvoice",
    "Create an invoice",
    {201: INVOICE},
    body=bodies.CREATE_INVOICE,
    idempotent=True,
    errors=(CustomerNotFound, *KEY_REUSE),
)
async def create_invoice(request: Request, context: Context) -> Response:
    creating = await keyed.create(request, context.checkout.create_invoice_answer)
    return await answer(creating, wire.invoice_json)


@invoices.route(
    "GET",
    "/invoices",
    "listInvoices",
    "List invoices, newest first",
    {200: list_of("Invoice")},
    query=(params.CUSTOMER_ID, params.INVOICE_STATUS, *params.PAGE),
)
async def list_invoices(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    page = await context.checkout.list_invoices(
        environment,
        customer_id=request.query_params.get("customer_id"),
        invoice_status=request.query_params.get("invoice_status"),
        **params.page_args(request),
    )
    return JSONResponse(wire.page_json(page, wire.invoice_json))


@invoices.route(
    "GET",
    "/invoices/{invoice_id}",
    "getInvoice",
    "Get an invoice",
    {200: INVOICE},
    errors=(InvoiceNotFound,),
)
async def get_invoice(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    invoice = await context.checkout.get_invoice(environment, request.path_params["invoice_id"])
    return JSONResponse(wire.invoice_json(invoice))


@invoices.route(
    "POST",
    "/invoices/{invoice_id}/finalize",
    "finalizeInvoice",
    "Finalize a draft invoice",
    {200: INVOICE},
    idempotent=True,
    errors=(InvoiceNotFound, InvalidStateTransition, ConcurrentUpdate, *KEY_REUSE),
)
async def finalize_invoice(request: Request, context: Context) -> Response:
    finalizing = await keyed.act(request, "invoice_id", context.checkout.finalize_invoice_answer)
    return await answer(finalizing, wire.invoice_json, status=200)


@invoices.route(
    "POST",
    "/invoices/{invoice_id}/void",
    "voidInvoice",
    "Void an unpaid invoice",
    {200: INVOICE},
    idempotent=True,
    errors=(
        InvoiceNotFound,
        InvoiceVoided,
        InvoiceAlreadyPaid,
        PaymentInProgress,
        ConcurrentUpdate,
        *KEY_REUSE,
    ),
)
async def void_invoice(request: Request, context: Context) -> Response:
    voiding = await keyed.act(request, "invoice_id", context.checkout.void_invoice_answer)
    return await answer(voiding, wire.invoice_json, status=200)
