"""List queries as a caller spells them (filters as text), read into the core's queries."""

from __future__ import annotations

from datetime import datetime

from core.errors import ValidationError
from core.model import InvoiceStatus, PaymentStatus
from core.ports import CustomerQuery, InvoiceQuery, PaymentQuery
from core.rules import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


def page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE_SIZE}.", field="limit")
    return limit


def customer_query(
    environment_id: str,
    *,
    external_id: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
) -> CustomerQuery:
    return CustomerQuery(
        environment_id=environment_id,
        external_id=external_id,
        limit=page_size(limit),
        starting_after=starting_after,
    )


def invoice_query(
    environment_id: str,
    *,
    customer_id: str | None = None,
    invoice_status: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    starting_after: str | None = None,
) -> InvoiceQuery:
    statuses = None
    if invoice_status is not None:
        try:
            statuses = frozenset({InvoiceStatus(invoice_status.upper())})
        except ValueError:
            raise ValidationError(
                "invoice_status must be DRAFT, FINALIZED or VOIDED.", field="invoice_status"
            ) from None
    return InvoiceQuery(
        environment_id=environment_id,
        customer_id=customer_id,
        statuses=statuses,
        limit=page_size(limit),
        starting_after=starting_after,
    )


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
) -> PaymentQuery:
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
        environment_id=environment_id,
        invoice_id=destination_id,
        customer_id=customer_id,
        statuses=statuses,
        created_gte=created_gte,
        created_lt=created_lt,
        limit=page_size(limit),
        starting_after=starting_after,
    )
