"""Who may call an operation: said once for a resource's routes, and where one route differs."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from core.errors import CheckoutError
from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from entrypoints.http.auth import environment_of
from entrypoints.http.errors import on_checkout_error
from entrypoints.http.observability import Metrics
from entrypoints.http.routing import Access, ApiRoute, Context, Routes, Tag
from tests.helpers import ENV, keys_by_role


async def _endpoint(request: Request, context: Context) -> Response:
    return Response()


def test_a_route_is_called_as_its_resource_says_unless_it_says_otherwise(
    checkout: CardCheckout,
) -> None:
    admin = Routes(Tag("Admin", "Admin things."), access=Access.ADMIN_KEY)
    admin.route("GET", "/things", "listThings", "Things", {200: {}})(_endpoint)
    admin.route("POST", "/signed", "signed", "Signed", {200: {}}, access=Access.STRIPE_SIGNATURE)(
        _endpoint
    )
    bound = admin.bind(Context(checkout, Metrics()))
    assert {route.operation.id: route.operation.access for route in bound} == {
        "listThings": Access.ADMIN_KEY,
        "signed": Access.STRIPE_SIGNATURE,
    }
    plain = Routes(Tag("Plain", "Keyed things."))
    plain.route("GET", "/keyed", "keyed", "Keyed", {200: {}})(_endpoint)
    assert [route.operation.access for route in plain.bind(Context(checkout, Metrics()))] == [
        Access.KEY
    ]


def test_endpoints_and_connection_need_an_admin_key_and_probes_need_none(
    checkout: CardCheckout,
) -> None:
    app = create_app(checkout, notify_every=None)
    access = {
        (route.method, route.path): route.operation.access
        for route in app.routes
        if isinstance(route, ApiRoute)
    }
    admin = {key for key, needs in access.items() if needs is Access.ADMIN_KEY}
    assert admin == {
        key
        for key in access
        if key[1].startswith(
            ("/api/v1/webhook_endpoints", "/api/v1/connection", "/api/v1/api_keys")
        )
    }
    assert len(admin) == 9
    public = {key for key, needs in access.items() if needs is Access.PUBLIC}
    assert public == {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
    }
    assert access[("POST", "/api/v1/payments")] is Access.KEY


async def _environment(request: Request, context: Context) -> Response:
    return Response(environment_of(request))


@pytest.mark.parametrize(
    ("table_access", "method", "role", "status"),
    [
        (Access.ADMIN_KEY, "GET", "read", 403),
        (Access.ADMIN_KEY, "POST", "write", 403),
        (Access.ADMIN_KEY, "GET", "admin", 200),
        (Access.ADMIN_KEY, "GET", "other", 403),  # an admin of another environment
        (Access.ADMIN_KEY, "GET", None, 401),
        (Access.KEY, "GET", "read", 200),
        (Access.KEY, "POST", "read", 403),
        (Access.KEY, "POST", "write", 200),
        (Access.KEY, "POST", None, 401),
    ],
)
async def test_a_keyed_route_lets_in_only_what_its_declared_access_allows(
    checkout: CardCheckout, table_access: Access, method: str, role: str | None, status: int
) -> None:
    """The handlers here say nothing of roles: the operation's access is the one rule."""
    keys = await keys_by_role(checkout)
    table = Routes(Tag("Things", "Things."), access=table_access)
    for verb in ("GET", "POST"):
        table.route(verb, "/things", f"{verb.lower()}Things", "Things", {200: {}})(_environment)
    app = Starlette(
        routes=table.bind(Context(checkout, Metrics())),
        exception_handlers={CheckoutError: on_checkout_error},
    )
    headers = {"X-Environment-ID": ENV}
    if role is not None:
        headers["Authorization"] = f"Bearer {keys[role]}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.request(method, "/api/v1/things", headers=headers)
    assert response.status_code == status
    if status == 200:
        assert response.text == ENV
