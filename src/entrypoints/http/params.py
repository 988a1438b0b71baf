"""What a request says outside its body: query parameters and the Idempotency-Key header.

The readers turn text into values; ranges and enum values are the use cases' to check. The
`Query` declarations document the same parameters in the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from starlette.requests import Request

from core.errors import ValidationError
from core.model import InvoiceStatus, PaymentStatus
from core.rules import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, card_data_error, looks_like_card_number
from entrypoints.bodies.queries import PageArgs
from entrypoints.http.routing import Query

IDEMPOTENCY_KEY: Final = "Idempotency-Key"
LIMIT: Final = Query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
)
STARTING_AFTER: Final = Query(
    "starting_after",
    description="An item's id: the page after it (give the last id of the page before). "
    "An id that is not an item of this list is refused.",
)
ENDING_BEFORE: Final = Query(
    "ending_before",
    description="An item's id: the page just before it, still in the list's order (give the "
    "first id of the page after). Not with starting_after.",
)
# Every list takes these.
PAGE: Final = (LIMIT, STARTING_AFTER, ENDING_BEFORE)
# A payment's events are named by their sequence (1, 2, 3...).
EVENT_PAGE: Final = (
    LIMIT,
    Query("starting_after", {"type": "integer"}, "An event's sequence: the events after it."),
    Query("ending_before", {"type": "integer"}, "An event's sequence: the events before it."),
)
CUSTOMER_ID: Final = Query("customer_id")
EXTERNAL_ID: Final = Query("external_id", description="Your own id of the customer.")
DESTINATION_ID: Final = Query("destination_id", description="An invoice's id.")
PAYMENT_STATUS: Final = Query("payment_status", {"enum": [s.value for s in PaymentStatus]})
INVOICE_STATUS: Final = Query("invoice_status", {"enum": [s.value for s in InvoiceStatus]})
CREATED_GTE: Final = Query("created_gte", {"type": "string", "format": "date-time"})
CREATED_LT: Final = Query("created_lt", {"type": "string", "format": "date-time"})


def idempotency_key(request: Request) -> str | None:
    """The header as given, unless it is a card number: keys are stored and logged."""
    key = request.headers.get("idempotency-key")
    if key is not None and looks_like_card_number(key):
        raise card_data_error(IDEMPOTENCY_KEY)
    return key


def page_args(request: Request) -> PageArgs:
    """The page of a list the request asks for."""
    return {
        "limit": query_int(request, "limit", DEFAULT_PAGE_SIZE),
        "starting_after": request.query_params.get("starting_after"),
        "ending_before": request.query_params.get("ending_before"),
    }


def query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() and int("١٢") == 12
        raise ValidationError(f"{name} must be a whole number.", field=name)
    return int(raw)


def query_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time.", field=name) from None
    if value.tzinfo is None:
        raise ValidationError(f"{name} must include a time zone (e.g. Z).", field=name)
    return value
