"""The OpenAPI 3.1 document, read off the app's own routes.

Each operation comes from its `ApiRoute` (declared beside its endpoint), each request schema
from its body definition, and the response schemas from `schemas`. A route served in the
schema without an operation is a bug, refused when the app is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final

from starlette.routing import BaseRoute, Route

from core.errors import (
    CheckoutError,
    Forbidden,
    InternalError,
    InvalidJson,
    MissingEnvironment,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from core.rules import MAX_IDEMPOTENCY_KEY_LENGTH
from entrypoints.bodies import Body
from entrypoints.http.errors import (
    STATUS_FOR_CODE,
    RateLimited,
    RequestHeaderFieldsTooLarge,
    error_type,
)
from entrypoints.http.routing import KEYED, Access, ApiRoute, Operation
from entrypoints.http.schemas import ERROR, SCHEMAS, ref

Schema = dict[str, Any]

_IDEMPOTENCY_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Repeat a request safely: the same key and body get the first answer again.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
}
_STRIPE_SIGNATURE: Final = {
    "name": "Stripe-Signature",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
}
_KEYED: Final[list[Schema]] = [{"bearer": [], "environment": []}, {"apiKey": [], "environment": []}]

# Any route: hostile text in its path, query or naming headers (400), headers too large (431),
# a bug (500).
_ANY_ROUTE: Final = (ValidationError, RequestHeaderFieldsTooLarge, InternalError)
# A keyed route: no usable key, no environment named, or a client refused for failing too
# often; storage down.
_KEY_REFUSALS: Final = (
    Unauthorized, MissingEnvironment, Forbidden, RateLimited, ServiceUnavailable,
)  # fmt: skip
# A keyed write reads a JSON body, even where the body is optional.
_JSON_BODY: Final = (InvalidJson, PayloadTooLarge, UnsupportedMediaType)
_WRITES: Final = frozenset({"POST", "PUT", "PATCH"})
_RETRY_AFTER: Final = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def declared_errors(route: ApiRoute) -> dict[int, list[str]]:
    """The error codes `route` may answer, by status: those of every route, of its access and
    body, and its own."""
    operation = route.operation
    errors: list[type[CheckoutError]] = [*_ANY_ROUTE, *operation.errors]
    if operation.access in KEYED:
        errors += _KEY_REFUSALS
        if route.method in _WRITES:
            errors += _JSON_BODY
    by_status: dict[int, set[str]] = {}
    for error in errors:
        by_status.setdefault(STATUS_FOR_CODE[error.code], set()).add(error.code)
    return {status: sorted(codes) for status, codes in sorted(by_status.items())}


def _error_response(status: int, codes: list[str]) -> Schema:
    """The one error shape, its `code` narrowed to what this status answers here and its
    `type` to the status's."""
    narrowed = {
        "properties": {
            "error": {
                "properties": {"code": {"enum": codes}, "type": {"const": error_type(status)}}
            }
        }
    }
    response: Schema = {
        "description": f"{HTTPStatus(status).phrase}: {', '.join(codes)}",
        "content": {"application/json": {"schema": {"allOf": [ERROR, narrowed]}}},
    }
    if status in (HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE):
        response["headers"] = _RETRY_AFTER
    return response


def _operation(route: ApiRoute, bodies: dict[str, Schema]) -> Schema:
    operation: Operation = route.operation
    document: Schema = {
        "operationId": operation.id,
        "summary": operation.summary,
        "tags": [operation.tag.name],
        "responses": {
            str(status): {
                "description": operation.summary,
                "content": {operation.media_type: {"schema": schema}},
            }
            for status, schema in operation.responses.items()
        },
    }
    parameters: list[Schema] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    parameters += [
        {"name": query.name, "in": "query", "required": False, "schema": query.schema}
        | ({"description": query.description} if query.description else {})
        for query in operation.query
    ]
    if operation.access is Access.STRIPE_SIGNATURE:
        parameters.append(_STRIPE_SIGNATURE)
    if operation.idempotent:
        parameters.append(_IDEMPOTENCY_KEY)
    if parameters:
        document["parameters"] = parameters
    if operation.body is not None:
        document["requestBody"] = _request_body(operation.body, bodies)
    for status, codes in declared_errors(route).items():
        if str(status) in document["responses"]:
            raise ValueError(f"{operation.id} answers {status} both as a success and an error")
        document["responses"][str(status)] = _error_response(status, codes)
    if operation.access in KEYED:
        document["security"] = _KEYED
    if operation.access is Access.ADMIN_KEY:
        document["description"] = "Needs an admin key."
    return document


def _request_body(body: Body | str, bodies: dict[str, Schema]) -> Schema:
    if isinstance(body, str):  # a hand-written schema (what another system sends us)
        return {"required": True, "content": {"application/json": {"schema": ref(body)}}}
    schema = body.schema()
    if bodies.setdefault(body.name, schema) != schema or body.name in SCHEMAS:
        raise ValueError(f"two request schemas are named {body.name}")
    return {
        "required": not body.optional,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body.name}"}}},
    }


def openapi_document(routes: Sequence[BaseRoute]) -> Schema:
    paths: dict[str, Schema] = {}
    bodies: dict[str, Schema] = {}
    tags: dict[str, str] = {}
    operation_ids: set[str] = set()
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        if not isinstance(route, ApiRoute):
            raise TypeError(f"{route.path} is served without an OpenAPI operation")
        operation = route.operation
        if operation.id in operation_ids:
            raise ValueError(f"two operations are named {operation.id}")
        operation_ids.add(operation.id)
        tags.setdefault(operation.tag.name, operation.tag.description)
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, bodies)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Card Checkout",
            "version": "1.0.0",
            "description": "Charge a customer's saved card off-session to pay an invoice.",
        },
        "servers": [{"url": "/", "description": "The server that serves this document"}],
        "tags": [{"name": name, "description": text} for name, text in tags.items()],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS | dict(sorted(bodies.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "environment": {"type": "apiKey", "in": "header", "name": "X-Environment-ID"},
            },
        },
    }
