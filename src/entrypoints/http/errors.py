"""Every error becomes the one error body, with its status from one table."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import (
    CheckoutError,
    NotFound,
    ServiceUnavailable,
    ValidationError,
    error_classes,
)
from entrypoints.http.wire import error_json
from entrypoints.logs import bound_value

STATUS_FOR_CODE: Final[dict[str, int]] = {
    "validation_error": 400,
    "invalid_json": 400,
    "missing_environment": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "invoice_not_found": 404,
    "payment_not_found": 404,
    "customer_not_found": 404,
    "method_not_allowed": 405,
    "invoice_not_finalized": 409,
    "invoice_voided": 409,
    "invoice_already_paid": 409,
    "payment_in_progress": 409,
    "invalid_state_transition": 409,
    "idempotency_key_in_use": 409,
    "customer_already_exists": 409,
    "concurrent_update": 409,
    "gateway_not_connected": 409,
    "amount_mismatch": 422,
    "currency_mismatch": 422,
    "customer_not_linked": 422,
    "refund_exceeds_payment": 422,
    "idempotency_key_reused": 422,
    "gateway_customer_not_owned": 422,
    "webhook_url_not_allowed": 422,
    "no_default_payment_method": 402,
    "payment_method_not_found": 402,
    "card_declined": 402,
    "insufficient_funds": 402,
    "authentication_required": 402,
    "expired_card": 402,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "request_header_fields_too_large": 431,
    "gateway_error": 502,
    "service_unavailable": 503,
    "internal_error": 500,
}
# The contract's kinds of error (Stripe's `type`), each for the statuses it answers with.
INVALID_REQUEST: Final = "invalid_request_error"
AUTHENTICATION: Final = "authentication_error"
CARD: Final = "card_error"
GATEWAY: Final = "gateway_error"
API: Final = "api_error"
ERROR_TYPES: Final = (INVALID_REQUEST, AUTHENTICATION, CARD, GATEWAY, API)
_TYPE_FOR_STATUS: Final = {401: AUTHENTICATION, 403: AUTHENTICATION, 402: CARD, 502: GATEWAY}
# Seconds a client should wait before retrying a request refused for an outage of ours.
RETRY_AFTER_SECONDS: Final = 2


class MethodNotAllowed(CheckoutError):
    code = "method_not_allowed"
    default_message = "This route does not take that method."


class RateLimited(CheckoutError):
    """Too many failed authentications from this client; `retry_after` (seconds) says when
    it may try again, and becomes the Retry-After header."""

    code = "rate_limited"
    default_message = "Too many requests with an unusable API key from this client; wait."


class RequestHeaderFieldsTooLarge(CheckoutError):
    code = "request_header_fields_too_large"
    default_message = "The request's headers are too large or too many."


def status_for(error: CheckoutError) -> int:
    return STATUS_FOR_CODE.get(error.code, 500)


def error_type(status: int) -> str:
    """The `type` of an error answered with `status`: the caller's key (401, 403), the card
    (402), the gateway (502), ours (other 5xx), or else the request itself."""
    if status in _TYPE_FOR_STATUS:
        return _TYPE_FOR_STATUS[status]
    return API if status >= 500 else INVALID_REQUEST


def error_response(error: CheckoutError, headers: Mapping[str, str] | None = None) -> Response:
    """The error body, with the id of the request being served (a replayed stored error
    names the request that replays it)."""
    headers = dict(headers or {})
    if isinstance(error, ServiceUnavailable):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif isinstance(error, RateLimited) and "retry_after" in error.details:
        headers["Retry-After"] = str(error.details["retry_after"])
    status = status_for(error)
    # Outside a request (never in the app, whose middleware sets one): an id of its own.
    request_id = bound_value("request_id") or uuid.uuid4().hex
    body = error_json(error, error_type=error_type(status), request_id=request_id)
    return JSONResponse(body, status_code=status, headers=headers)


async def on_checkout_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, CheckoutError)
    return error_response(error)


async def on_http_error(request: Request, error: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the same shape."""
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return error_response(NotFound("No route matches this path."))
    if error.status_code == 405:
        allowed = _methods_serving(request)
        return error_response(MethodNotAllowed(), headers={"Allow": ", ".join(allowed)})
    return error_response(ValidationError(str(error.detail), field="request"))


def _methods_serving(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def codes_without_status() -> set[str]:
    """Error codes the table forgets (a test keeps this empty)."""
    return set(error_classes()) - set(STATUS_FOR_CODE)
