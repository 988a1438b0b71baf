"""Invoices: what a customer owes, and how its payments have gone so far."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import attrs

from core.errors import (
    InvalidStateTransition,
    InvoiceAlreadyPaid,
    InvoiceNotFinalized,
    InvoiceVoided,
    require_status,
)
from core.money import Currency, Money


class InvoiceStatus(StrEnum):
    """Where the invoice is in its life: only a finalized invoice can be paid."""

    DRAFT = "DRAFT"
    FINALIZED = "FINALIZED"
    VOIDED = "VOIDED"


class InvoicePaymentStatus(StrEnum):
    """How far the invoice is paid, moved only along the table below."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# How an invoice's payments may go, in one place. Payments of one invoice interleave: an attempt
# may fail before it charges while another is still in flight, which then succeeds or fails. A
# payment may start on an invoice read as processing: storage refuses a second live payment, and
# a copy read before the first settled loses its versioned update and is read again.
PAYMENT_STATUS_TRANSITIONS: Final[
    Mapping[InvoicePaymentStatus, frozenset[InvoicePaymentStatus]]
] = {
    InvoicePaymentStatus.PENDING: frozenset(
        {InvoicePaymentStatus.PROCESSING, InvoicePaymentStatus.FAILED}
    ),
    InvoicePaymentStatus.PROCESSING: frozenset(
        {
            InvoicePaymentStatus.PROCESSING,
            InvoicePaymentStatus.SUCCEEDED,
            InvoicePaymentStatus.FAILED,
        }
    ),
    InvoicePaymentStatus.FAILED: frozenset(
        {
            InvoicePaymentStatus.PROCESSING,
            InvoicePaymentStatus.SUCCEEDED,
            InvoicePaymentStatus.FAILED,
        }
    ),
    InvoicePaymentStatus.SUCCEEDED: frozenset(
        {InvoicePaymentStatus.PARTIALLY_REFUNDED, InvoicePaymentStatus.REFUNDED}
    ),
    InvoicePaymentStatus.PARTIALLY_REFUNDED: frozenset(
        {InvoicePaymentStatus.PARTIALLY_REFUNDED, InvoicePaymentStatus.REFUNDED}
    ),
    InvoicePaymentStatus.REFUNDED: frozenset(),
}


@attrs.frozen
class Invoice:
    id: str
    environment_id: str
    customer_id: str
    amount_due: Money = attrs.field()
    status: InvoiceStatus
    created_at: datetime
    updated_at: datetime
    external_id: str | None = None
    payment_status: InvoicePaymentStatus = InvoicePaymentStatus.PENDING
    amount_paid: Money = attrs.field()
    amount_refunded: Money = attrs.field()
    finalized_at: datetime | None = None
    voided_at: datetime | None = None
    paid_at: datetime | None = None
    version: int = 1

    @amount_paid.default
    def _nothing_paid(self) -> Money:
        return Money.zero(self.amount_due.currency)

    @amount_refunded.default
    def _nothing_refunded(self) -> Money:
        return Money.zero(self.amount_due.currency)

    @amount_due.validator
    def _positive(self, _: attrs.Attribute[Money], value: Money) -> None:
        if not value.is_positive:
            raise ValueError("an invoice's amount_due must be positive")

    @property
    def currency(self) -> Currency:
        return self.amount_due.currency

    @property
    def amount_remaining(self) -> Money:
        return self.amount_due - self.amount_paid

    def ensure_payable(self) -> None:
        """Raise unless the invoice is finalized and has something left to pay."""
        if self.status is InvoiceStatus.VOIDED:
            raise InvoiceVoided(invoice_id=self.id)
        if self.status is InvoiceStatus.DRAFT:
            raise InvoiceNotFinalized(invoice_id=self.id)
        if not self.amount_remaining.is_positive:
            raise InvoiceAlreadyPaid(invoice_id=self.id)

    def finalize(self, at: datetime) -> Invoice:
        require_status(
            self.status,
            InvoiceStatus.DRAFT,
            "Only a DRAFT invoice can be finalized",
            invoice_id=self.id,
        )
        return self._changed(at, status=InvoiceStatus.FINALIZED, finalized_at=at)

    def void(self, at: datetime) -> Invoice:
        if self.status is InvoiceStatus.VOIDED:
            raise InvoiceVoided(invoice_id=self.id)
        if self.amount_paid.is_positive:
            raise InvoiceAlreadyPaid(
                "A paid invoice cannot be voided; refund its payment instead.",
                invoice_id=self.id,
            )
        return self._changed(at, status=InvoiceStatus.VOIDED, voided_at=at)

    def with_payment_status(self, status: InvoicePaymentStatus, at: datetime) -> Invoice:
        """Its payments moved to `status`, along the table; anything else is refused."""
        if status not in PAYMENT_STATUS_TRANSITIONS[self.payment_status]:
            raise InvalidStateTransition(
                f"An invoice's payments cannot go from {self.payment_status.value} "
                f"to {status.value}.",
                invoice_id=self.id,
                expected=sorted(s.value for s in PAYMENT_STATUS_TRANSITIONS[self.payment_status]),
                actual=self.payment_status.value,
            )
        return self._changed(at, payment_status=status)

    def record_payment(self, amount: Money, at: datetime) -> Invoice:
        """A payment of `amount` succeeded: the invoice is paid by it."""
        paid = self.with_payment_status(InvoicePaymentStatus.SUCCEEDED, at)
        return attrs.evolve(paid, amount_paid=self.amount_paid + amount, paid_at=at)

    def record_refund(self, amount: Money, *, fully_refunded: bool, at: datetime) -> Invoice:
        status = (
            InvoicePaymentStatus.REFUNDED
            if fully_refunded
            else InvoicePaymentStatus.PARTIALLY_REFUNDED
        )
        refunded = self.with_payment_status(status, at)
        return attrs.evolve(refunded, amount_refunded=self.amount_refunded + amount)

    def _changed(self, at: datetime, **changes: Any) -> Invoice:
        return attrs.evolve(self, updated_at=at, version=self.version + 1, **changes)
