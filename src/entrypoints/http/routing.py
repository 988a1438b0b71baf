"""Routes that carry their OpenAPI operation, declared beside the endpoint they serve.

A resource's module makes one `Routes` table; each endpoint is registered on it with its
operation (id, summary, responses, request body, query parameters, who may call it):

    payments = Routes(Tag("Payments", "..."))

    @payments.route("GET", "/payments/{payment_id}", "getPayment", "Get a payment", {200: ...})
    async def get_payment(request: Request, context: Context) -> Response: ...

`create_app` binds every table to one `Context`; the OpenAPI document is read off the routes
it serves, so a route without an operation cannot be served. A keyed route's request is let in
by the access its operation declares before the handler runs; the handler reads the
environment it may act in with `auth.environment_of(request)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from enum import Enum
from typing import Any, Final

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import (
    CheckoutError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    Unauthorized,
    ValidationError,
)
from core.model import Role
from core.rules import card_data_error, looks_like_card_number
from entrypoints.bodies import Body
from entrypoints.bodies.text import check_request_text
from entrypoints.http.auth import authorize
from entrypoints.http.errors import RateLimited
from entrypoints.http.observability import Metrics
from entrypoints.http.throttle import AuthThrottle, client_of
from entrypoints.library import CardCheckout

Schema = dict[str, Any]


@attrs.frozen
class Context:
    """What the endpoints work with: one per app."""

    checkout: CardCheckout
    metrics: Metrics
    # Stripe's webhook secrets, for environments that have none of their own.
    webhook_secrets: tuple[str, ...] = ()
    # The OpenAPI document, filled by `create_app` once every route is known.
    openapi: Schema = attrs.field(factory=dict)
    # Failed authentication per client: keyed routes refuse a client that keeps failing.
    auth_throttle: AuthThrottle = attrs.field(factory=AuthThrottle)


Handler = Callable[[Request, Context], Awaitable[Response]]


class Access(Enum):
    """Who may call an operation."""

    PUBLIC = "public"
    KEY = "key"  # an API key with the method's role (read for GET, write otherwise)
    ADMIN_KEY = "admin_key"
    STRIPE_SIGNATURE = "stripe_signature"


KEYED: Final = (Access.KEY, Access.ADMIN_KEY)
# What a request under an Idempotency-Key may be refused for, beside its route's own errors.
KEY_REUSE: Final = (IdempotencyKeyInUse, IdempotencyKeyReused)


@attrs.frozen
class Tag:
    name: str
    description: str


@attrs.frozen
class Query:
    """A query parameter as the document shows it (the endpoint reads it)."""

    name: str
    schema: Schema = attrs.field(factory=lambda: {"type": "string"})
    description: str | None = None


@attrs.frozen
class Operation:
    id: str
    summary: str
    tag: Tag
    responses: Mapping[int, Schema]
    # A body definition (its schema is derived), or the name of a hand-written schema.
    body: Body | str | None = None
    access: Access = Access.KEY
    # Takes an Idempotency-Key.
    idempotent: bool = False
    query: tuple[Query, ...] = ()
    media_type: str = "application/json"
    # The errors of its own it may answer; those of its access, its body and of every route
    # are added by the document (`openapi.declared_errors`).
    errors: tuple[type[CheckoutError], ...] = ()


class ApiRoute(Route):
    """A Starlette route for one method, with its operation."""

    def __init__(
        self,
        method: str,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        operation: Operation,
    ) -> None:
        super().__init__(path, endpoint, methods=[method], name=operation.id)
        self.method = method
        self.operation = operation


@attrs.frozen
class _Registered:
    method: str
    path: str
    handler: Handler
    operation: Operation


class Routes:
    """One resource's endpoints, each with its operation, bound to a context by `create_app`.

    `access`: who may call its endpoints, unless a route says otherwise.
    """

    def __init__(self, tag: Tag, prefix: str = "/api/v1", access: Access = Access.KEY) -> None:
        self.tag = tag
        self.prefix = prefix
        self.access = access
        self._registered: list[_Registered] = []

    def route(
        self,
        method: str,
        path: str,
        operation_id: str,
        summary: str,
        responses: Mapping[int, Schema],
        *,
        body: Body | str | None = None,
        access: Access | None = None,
        idempotent: bool = False,
        query: tuple[Query, ...] = (),
        media_type: str = "application/json",
        errors: tuple[type[CheckoutError], ...] = (),
    ) -> Callable[[Handler], Handler]:
        operation = Operation(
            operation_id,
            summary,
            self.tag,
            responses,
            body=body,
            access=self.access if access is None else access,
            idempotent=idempotent,
            query=query,
            media_type=media_type,
            errors=errors,
        )

        def register(handler: Handler) -> Handler:
            self._registered.append(_Registered(method, self.prefix + path, handler, operation))
            return handler

        return register

    def bind(self, context: Context) -> list[ApiRoute]:
        return [_bound(entry, context) for entry in self._registered]


def _bound(entry: _Registered, context: Context) -> ApiRoute:
    handler = entry.handler
    keyed = entry.operation.access in KEYED
    # What the key must be able to do: said once, by the access the document shows.
    needs = Role.ADMIN if entry.operation.access is Access.ADMIN_KEY else None
    known_query = frozenset(query.name for query in entry.operation.query)

    async def endpoint(request: Request) -> Response:
        if not keyed:
            check_request_text(_outside_body(request))
            return await handler(request, context)
        # A throttled client is refused before its key is looked at: a valid key must not
        # answer differently, or the refusal would tell a guesser which guess was right.
        client = client_of(request.client.host) if request.client else "unknown"
        throttle = context.auth_throttle
        wait = throttle.retry_after(client)
        if wait is not None:
            raise RateLimited(retry_after=wait)
        check_request_text(_outside_body(request))
        refuse_unknown_query(request, known_query)
        try:
            await authorize(context.checkout, request, needs)
        except Unauthorized:
            throttle.failed(client)
            raise
        return await handler(request, context)

    endpoint.__name__ = handler.__name__
    return ApiRoute(entry.method, entry.path, endpoint, entry.operation)


def refuse_unknown_query(request: Request, known: frozenset[str]) -> None:
    """400 naming the first query parameter the route does not declare: a misspelt filter
    would otherwise answer the unfiltered list. The declarations (`Operation.query`) are the
    ones the document shows, so the two cannot drift apart."""
    for name in request.query_params:
        if name not in known:
            if looks_like_card_number(name):  # never echoed
                raise card_data_error("query")
            takes = ", ".join(sorted(known)) or "none"
            raise ValidationError(
                f"Unknown query parameter {name!r}; this route takes: {takes}.", field=name
            )


# Headers that name something stored, as errors name them (the others are the server's to refuse).
_NAMING_HEADERS: Final = {
    "idempotency-key": "Idempotency-Key",
    "x-environment-id": "X-Environment-ID",
}


def _outside_body(request: Request) -> Iterator[tuple[str, str]]:
    """(field, text) for each path parameter, query parameter and naming header."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            yield name, value
    for name, value in request.query_params.multi_items():
        yield "query", name
        yield name, value
    for header, field in _NAMING_HEADERS.items():
        value = request.headers.get(header)
        if value is not None:
            yield field, value
