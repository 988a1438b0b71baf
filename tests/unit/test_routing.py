"""Who may call an operation: said once for a resource's routes, and where one route differs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from entrypoints.http.observability import Metrics
from entrypoints.http.routing import Access, ApiRoute, Context, Routes, Tag


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
