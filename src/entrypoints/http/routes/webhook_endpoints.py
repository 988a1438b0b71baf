"""Webhook endpoints: where the environment's events are sent, signed. Admin keys only, as
they say where the environment's events go."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import ConcurrentUpdate, NotFound, WebhookUrlNotAllowed
from entrypoints import bodies
from entrypoints.http import params, wire
from entrypoints.http.auth import environment_of
from entrypoints.http.body import json_body
from entrypoints.http.routing import Access, Context, Routes, Tag
from entrypoints.http.schemas import list_of, ref

ENDPOINT = ref("WebhookEndpoint")
webhook_endpoints = Routes(
    Tag("Webhook endpoints", "Subscriber URLs for the environment's events (admin keys)."),
    access=Access.ADMIN_KEY,
)


@webhook_endpoints.route(
    "POST",
    "/webhook_endpoints",
    "createWebhookEndpoint",
    "Send the environment's events to a URL, signed (admin keys)",
    {201: ENDPOINT},
    body=bodies.CREATE_WEBHOOK_ENDPOINT,
    errors=(WebhookUrlNotAllowed,),
)  # No Idempotency-Key: creating an endpoint twice is seen and undone.
async def create_webhook_endpoint(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    body = await json_body(request)
    assert body is not None
    endpoint = await context.checkout.create_webhook_endpoint(environment, body)
    return JSONResponse(wire.webhook_endpoint_json(endpoint, with_secret=True), status_code=201)


@webhook_endpoints.route(
    "GET",
    "/webhook_endpoints",
    "listWebhookEndpoints",
    "The environment's webhook endpoints, oldest first (admin keys)",
    {200: list_of("WebhookEndpoint")},
    query=params.PAGE,
)
async def list_webhook_endpoints(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    endpoints = await context.checkout.list_webhook_endpoints(
        environment, **params.page_args(request)
    )
    return JSONResponse(wire.page_json(endpoints, wire.webhook_endpoint_json))


@webhook_endpoints.route(
    "GET",
    "/webhook_endpoints/{endpoint_id}",
    "getWebhookEndpoint",
    "Get a webhook endpoint (admin keys)",
    {200: ENDPOINT},
    errors=(NotFound,),
)
async def get_webhook_endpoint(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    endpoint = await context.checkout.get_webhook_endpoint(
        environment, request.path_params["endpoint_id"]
    )
    return JSONResponse(wire.webhook_endpoint_json(endpoint))


@webhook_endpoints.route(
    "DELETE",
    "/webhook_endpoints/{endpoint_id}",
    "deleteWebhookEndpoint",
    "Stop sending to a webhook endpoint (admin keys)",
    {200: ENDPOINT},
    errors=(NotFound, ConcurrentUpdate),
)
async def delete_webhook_endpoint(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    endpoint = await context.checkout.delete_webhook_endpoint(
        environment, request.path_params["endpoint_id"]
    )
    return JSONResponse(wire.webhook_endpoint_json(endpoint))


@webhook_endpoints.route(
    "GET",
    "/webhook_endpoints/{endpoint_id}/deliveries",
    "listWebhookDeliveries",
    "A webhook endpoint's deliveries with their attempts, newest first (admin keys)",
    {200: list_of("WebhookDelivery")},
    query=params.PAGE,
    errors=(NotFound,),
)
async def webhook_deliveries(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    deliveries = await context.checkout.webhook_deliveries(
        environment, request.path_params["endpoint_id"], **params.page_args(request)
    )
    return JSONResponse(wire.page_json(deliveries, wire.webhook_delivery_json))
