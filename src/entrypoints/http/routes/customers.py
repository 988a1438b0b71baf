"""Customers: create, read, their saved cards, and a hosted page that saves one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import (
    CustomerAlreadyExists,
    CustomerNotFound,
    CustomerNotLinked,
    GatewayCustomerNotOwned,
    GatewayError,
    GatewayNotConnected,
)
from entrypoints import bodies
from entrypoints.http import keyed, params, wire
from entrypoints.http.answers import answer
from entrypoints.http.auth import environment_of
from entrypoints.http.body import json_body
from entrypoints.http.routing import KEY_REUSE, Context, Routes, Tag
from entrypoints.http.schemas import list_of, ref

CUSTOMER = ref("Customer")
# What a customer's saved cards are asked of the gateway for.
AT_THE_GATEWAY = (CustomerNotFound, CustomerNotLinked, GatewayError, GatewayNotConnected)
customers = Routes(Tag("Customers", "Who pays, here and at the gateway, and their saved cards."))


@customers.route(
    "POST",
    "/customers",
    "createCustomer",
    "Create a customer (and at the gateway)",
    {201: CUSTOMER},
    body=bodies.CREATE_CUSTOMER,
    idempotent=True,
    errors=(
        CustomerAlreadyExists,
        CustomerNotLinked,  # the gateway customer it names does not exist
        GatewayCustomerNotOwned,
        GatewayError,
        GatewayNotConnected,
        *KEY_REUSE,
    ),
)
async def create_customer(request: Request, context: Context) -> Response:
    creating = await keyed.create(request, context.checkout.create_customer_answer)
    return await answer(creating, wire.customer_json)


@customers.route(
    "GET",
    "/customers",
    "listCustomers",
    "List customers, newest first, or find one by your own id",
    {200: list_of("Customer")},
    query=(params.EXTERNAL_ID, *params.PAGE),
)
async def list_customers(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    page = await context.checkout.list_customers(
        environment,
        external_id=request.query_params.get("external_id"),
        **params.page_args(request),
    )
    return JSONResponse(wire.page_json(page, wire.customer_json))


@customers.route(
    "GET",
    "/customers/{customer_id}",
    "getCustomer",
    "Get a customer",
    {200: CUSTOMER},
    errors=(CustomerNotFound,),
)
async def get_customer(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    customer = await context.checkout.get_customer(environment, request.path_params["customer_id"])
    return JSONResponse(wire.customer_json(customer))


@customers.route(
    "GET",
    "/customers/{customer_id}/payment_methods",
    "listPaymentMethods",
    "The customer's saved cards",
    {200: list_of("PaymentMethod")},
    query=params.PAGE,
    errors=AT_THE_GATEWAY,
)
async def payment_methods(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    cards = await context.checkout.list_payment_methods(
        environment, request.path_params["customer_id"], **params.page_args(request)
    )
    return JSONResponse(wire.page_json(cards, wire.payment_method_json))


@customers.route(
    "POST",
    "/customers/{customer_id}/payment_methods/setup",
    "setupCard",
    "A hosted page that saves a card as the default",
    {201: ref("CheckoutSession")},
    body=bodies.SETUP_CARD,
    idempotent=True,  # passed on to the gateway, which replays its page
    errors=AT_THE_GATEWAY,
)
async def setup_card(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    body = await json_body(request, optional=True)
    session = await context.checkout.setup_card(
        environment,
        request.path_params["customer_id"],
        body,
        idempotency_key=params.idempotency_key(request),
    )
    return JSONResponse(wire.checkout_session_json(session), status_code=201)
