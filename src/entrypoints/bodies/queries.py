"""List queries as a caller spells them (filters as text), read into the core's queries.

Every list takes `limit`, `starting_after` and `ending_before`: its `core.lists.Window`,
which refuses a limit out of range and two cursors.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from core.errors import ValidationError
from core.lists import Window
from core.model import InvoiceStatus, PaymentStatus
from core.ports import CustomerQuery, InvoiceQuery, PaymentQuery
from core.rules import DEFAULT_PAGE_SIZE


class PageArgs(TypedDict, total=False):
    """A list's page as the caller gives it (every list method takes these)."""

    limit: int
    starting_after: str | None
    ending_before: str | None


def customer_query(
    environment_id: str,
    *,
    external_id: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> CustomerQuery:
    window = Window(limit, starting_after, ending_before)
    return CustomerQuery(environment_id, window, external_id=external_id)


def invoice_query(
    environment_id: str,
    *,
    customer_id: str | None = None,
    invoice_status: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> InvoiceQuery:
    window = Window(limit, starting_after, ending_before)
    statuses = None
    if invoice_status is not None:
        try:
            statuses = frozenset({InvoiceStatus(invoice_status.upper())})
        except ValueError:
            raise ValidationError(
                "invoice_status must be DRAFT, FINALIZED or VOIDED.", field="invoice_status"
            ) from None
    return InvoiceQuery(environment_id, window, customer_id=customer_id, statuses=statuses)


def payment_query(
    environment_id: str,
    *,
    destination_id: str | None = None,
    customer_id: str | None = None,
    payment_status: str | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> PaymentQuery:
    window = Window(limit, starting_after, ending_before)
    statuses = None
    if payment_status is not None:
        try:
            statuses = frozenset({PaymentStatus(payment_status.lower())})
        except ValueError:
            raise ValidationError(
                f"payment_status must be one of {', '.join(s.value for s in PaymentStatus)}.",
                field="payment_status",
            ) from None
    return PaymentQuery(
        environment_id,
        window,
        invoice_id=destination_id,
        customer_id=customer_id,
        statuses=statuses,
        created_gte=created_gte,
        created_lt=created_lt,
    )
