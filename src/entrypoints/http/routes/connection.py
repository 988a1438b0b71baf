"""The environment's gateway connection: which account it charges through (admin keys, as
the secret key moves its money)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import ConcurrentUpdate
from entrypoints import bodies
from entrypoints.http import wire
from entrypoints.http.auth import environment_of
from entrypoints.http.body import json_body
from entrypoints.http.routing import Access, Context, Routes, Tag
from entrypoints.http.schemas import ref

CONNECTION = ref("GatewayConnectionView")
connection = Routes(
    Tag("Gateway connection", "The Stripe account (or the sandbox) of the environment."),
    access=Access.ADMIN_KEY,
)


@connection.route(
    "GET",
    "/connection",
    "getConnection",
    "The environment's gateway, its secrets by their last four characters (admin keys)",
    {200: CONNECTION},
)
async def get_connection(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    view = await context.checkout.get_connection(environment)
    return JSONResponse(wire.connection_json(view))


@connection.route(
    "PUT",
    "/connection",
    "putConnection",
    "Connect the environment to the sandbox or a Stripe account (admin keys)",
    {200: CONNECTION},
    body=bodies.CONNECT_GATEWAY,
    errors=(ConcurrentUpdate,),
)
async def put_connection(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    body = await json_body(request)
    assert body is not None
    view = await context.checkout.connect_gateway(environment, body)
    return JSONResponse(wire.connection_json(view))
