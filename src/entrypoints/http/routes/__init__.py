"""The HTTP API's routes, one module per resource, each endpoint beside its operation."""

from __future__ import annotations

from entrypoints.http.routes.api_keys import api_keys
from entrypoints.http.routes.connection import connection
from entrypoints.http.routes.customers import customers
from entrypoints.http.routes.invoices import invoices
from entrypoints.http.routes.operations import operations
from entrypoints.http.routes.payments import payments
from entrypoints.http.routes.webhook_endpoints import webhook_endpoints
from entrypoints.http.routes.webhooks import webhooks
from entrypoints.http.routing import ApiRoute, Context

RESOURCES = (
    payments, customers, invoices, webhook_endpoints, connection, api_keys, webhooks, operations,
)  # fmt: skip


def api_routes(context: Context) -> list[ApiRoute]:
    """Every route of the contract, bound to `context`."""
    return [route for resource in RESOURCES for route in resource.bind(context)]


__all__ = ["RESOURCES", "api_routes"]
