"""The aggregates: payments with their state machine, invoices, customers, refunds.

Entities are frozen: every change returns a new value (and, for payments, the event that
records it), and a `version` that the storage uses to refuse a lost update.
"""

from __future__ import annotations

import hashlib
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
)
from core.money import Currency, Money


class PaymentStatus(StrEnum):
    INITIATED = "initiated"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"


# The whole lifecycle, in one place. A partial refund after a partial refund is a move
# of its own so that every refund leaves an event.
TRANSITIONS: Final[Mapping[PaymentStatus, frozenset[PaymentStatus]]] = {
    PaymentStatus.INITIATED: frozenset({PaymentStatus.PROCESSING, PaymentStatus.FAILED}),
    PaymentStatus.PROCESSING: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.PARTIALLY_REFUNDED: frozenset(
        {PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
    ),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.FAILED: frozenset(),
}
LIVE_STATUSES: Final = frozenset({PaymentStatus.INITIATED, PaymentStatus.PROCESSING})
PAID_STATUSES: Final = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)
TERMINAL_STATUSES: Final = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


def can_transition(source: PaymentStatus, target: PaymentStatus) -> bool:
    return target in TRANSITIONS[source]


class PaymentMethodType(StrEnum):
    CARD = "CARD"
    PAYMENT_LINK = "PAYMENT_LINK"


class InvoiceStatus(StrEnum):
    DRAFT = "DRAFT"
    FINALIZED = "FINALIZED"
    VOIDED = "VOIDED"


class InvoicePaymentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Actor(StrEnum):
    """Who moved a payment: the caller's request, a gateway event, or the reconciler."""

    API = "api"
    GATEWAY = "gateway"
    WEBHOOK = "webhook"
    RECONCILER = "reconciler"


@attrs.frozen
class Failure:
    """Why a payment or refund failed, as the caller and the gateway said it."""

    code: str
    message: str
    gateway_code: str | None = None
    decline_code: str | None = None


@attrs.frozen
class PaymentEvent:
    """One transition of a payment: append-only, numbered by the payment's version."""

    payment_id: str
    environment_id: str
    sequence: int
    from_status: PaymentStatus | None
    to_status: PaymentStatus
    reason: str
    actor: Actor
    occurred_at: datetime


@attrs.frozen
class Customer:
    id: str
    environment_id: str
    external_id: str
    created_at: datetime
    name: str | None = None
    email: str | None = None
    gateway_customer_id: str | None = None
    version: int = 1


@attrs.frozen
class Payment:
    id: str
    environment_id: str
    invoice_id: str
    customer_id: str
    amount: Money = attrs.field()
    method_type: PaymentMethodType
    status: PaymentStatus
    created_at: datetime
    updated_at: datetime
    gateway: str = "stripe"
    payment_method_id: str | None = None
    gateway_tracking_id: str | None = None
    payment_url: str | None = None
    save_card_and_make_default: bool = False
    success_url: str | None = None
    cancel_url: str | None = None
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    card_brand: str | None = None
    card_last4: str | None = None
    failure: Failure | None = None
    amount_refunded: Money = attrs.field()
    refund_reserved: Money = attrs.field()
    succeeded_at: datetime | None = None
    failed_at: datetime | None = None
    refunded_at: datetime | None = None
    version: int = 1

    @amount_refunded.default
    def _no_refund(self) -> Money:
        return Money.zero(self.amount.currency)

    @refund_reserved.default
    def _no_reservation(self) -> Money:
        return Money.zero(self.amount.currency)

    @amount.validator
    def _positive(self, _: attrs.Attribute[Money], value: Money) -> None:
        if not value.is_positive:
            raise ValueError("a payment's amount must be positive")

    @property
    def currency(self) -> Currency:
        return self.amount.currency

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def refundable(self) -> Money:
        """What may still be refunded, counting refunds in flight."""
        return self.amount - self.amount_refunded - self.refund_reserved

    @property
    def charge_idempotency_key(self) -> str:
        """The gateway key of this payment's one charge: a retry can never charge twice."""
        return f"{self.id}:charge"

    @classmethod
    def start(
        cls, *, at: datetime, actor: Actor = Actor.API, **fields: Any
    ) -> tuple[Payment, PaymentEvent]:
        """A new `initiated` payment and the event that records its creation."""
        payment = cls(status=PaymentStatus.INITIATED, created_at=at, updated_at=at, **fields)
        event = PaymentEvent(
            payment_id=payment.id,
            environment_id=payment.environment_id,
            sequence=payment.version,
            from_status=None,
            to_status=PaymentStatus.INITIATED,
            reason="payment created",
            actor=actor,
            occurred_at=at,
        )
        return payment, event

    def transition(
        self, target: PaymentStatus, *, at: datetime, reason: str, actor: Actor, **changes: Any
    ) -> tuple[Payment, PaymentEvent]:
        """Move to `target` along the table, with its event; anything else is refused."""
        if not can_transition(self.status, target):
            raise InvalidStateTransition(
                f"A payment cannot move from {self.status.value} to {target.value}.",
                payment_id=self.id,
                expected=sorted(s.value for s in TRANSITIONS[self.status]),
                actual=self.status.value,
            )
        stamps: dict[str, Any] = {"updated_at": at}
        if target is PaymentStatus.SUCCEEDED:
            stamps["succeeded_at"] = at
        elif target is PaymentStatus.FAILED:
            stamps["failed_at"] = at
        elif target is PaymentStatus.REFUNDED:
            stamps["refunded_at"] = at
        moved = attrs.evolve(self, status=target, version=self.version + 1, **stamps, **changes)
        event = PaymentEvent(
            payment_id=self.id,
            environment_id=self.environment_id,
            sequence=moved.version,
            from_status=self.status,
            to_status=target,
            reason=reason,
            actor=actor,
            occurred_at=at,
        )
        return moved, event

    def updated(self, *, at: datetime, **changes: Any) -> Payment:
        """The same status with other fields changed (no event: not a transition)."""
        return attrs.evolve(self, updated_at=at, version=self.version + 1, **changes)


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
        if self.status is not InvoiceStatus.DRAFT:
            raise InvalidStateTransition(
                f"Only a DRAFT invoice can be finalized; this one is {self.status.value}.",
                invoice_id=self.id,
                expected=InvoiceStatus.DRAFT.value,
                actual=self.status.value,
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
        return self._changed(at, payment_status=status)

    def record_payment(self, amount: Money, at: datetime) -> Invoice:
        """A payment of `amount` succeeded: the invoice is paid by it."""
        return self._changed(
            at,
            amount_paid=self.amount_paid + amount,
            payment_status=InvoicePaymentStatus.SUCCEEDED,
            paid_at=at,
        )

    def record_refund(self, amount: Money, *, fully_refunded: bool, at: datetime) -> Invoice:
        status = (
            InvoicePaymentStatus.REFUNDED
            if fully_refunded
            else InvoicePaymentStatus.PARTIALLY_REFUNDED
        )
        return self._changed(
            at, amount_refunded=self.amount_refunded + amount, payment_status=status
        )

    def _changed(self, at: datetime, **changes: Any) -> Invoice:
        return attrs.evolve(self, updated_at=at, version=self.version + 1, **changes)


@attrs.frozen
class Refund:
    id: str
    environment_id: str
    payment_id: str
    invoice_id: str
    amount: Money
    status: RefundStatus
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    gateway_refund_id: str | None = None
    failure: Failure | None = None
    version: int = 1

    @property
    def idempotency_key(self) -> str:
        """The gateway key of this refund: each refund is sent at most once."""
        return f"{self.id}:refund"

    def settled(
        self,
        status: RefundStatus,
        *,
        at: datetime,
        gateway_refund_id: str | None = None,
        failure: Failure | None = None,
    ) -> Refund:
        if self.status is not RefundStatus.PENDING:
            raise InvalidStateTransition(
                f"The refund is already {self.status.value}.",
                expected=RefundStatus.PENDING.value,
                actual=self.status.value,
            )
        return attrs.evolve(
            self,
            status=status,
            updated_at=at,
            gateway_refund_id=gateway_refund_id or self.gateway_refund_id,
            failure=failure,
            version=self.version + 1,
        )


class Role(StrEnum):
    """What an API key may do: read (GET only), write (all but key management), admin."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@attrs.frozen
class Environment:
    """An isolated space of data (live, test, a customer's staging...) of one tenant."""

    id: str
    tenant_id: str
    name: str
    created_at: datetime
    # Secrets that sign the gateway's webhooks for this environment (several while rotating);
    # empty: the service-wide secret applies.
    webhook_secrets: tuple[str, ...] = ()
    version: int = 1


@attrs.frozen
class ApiKey:
    """An API key as stored: its SHA-256 hash only, never the key itself."""

    id: str
    tenant_id: str
    key_hash: str
    role: Role
    environment_ids: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None = None
    version: int = 1

    @staticmethod
    def hash(raw_key: str) -> str:
        # Keys are long random tokens: a plain SHA-256 cannot be brute-forced back.
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may_use(self, environment_id: str) -> bool:
        return self.active and environment_id in self.environment_ids

    def revoked(self, at: datetime) -> ApiKey:
        return attrs.evolve(self, revoked_at=at, version=self.version + 1)


class NotificationType(StrEnum):
    PAYMENT_CREATED = "payment.created"
    PAYMENT_PROCESSING = "payment.processing"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REFUNDED = "payment.refunded"
    PAYMENT_PARTIALLY_REFUNDED = "payment.partially_refunded"
    INVOICE_PAID = "invoice.paid"


NOTIFICATION_FOR_STATUS: Final[Mapping[PaymentStatus, NotificationType]] = {
    PaymentStatus.INITIATED: NotificationType.PAYMENT_CREATED,
    PaymentStatus.PROCESSING: NotificationType.PAYMENT_PROCESSING,
    PaymentStatus.SUCCEEDED: NotificationType.PAYMENT_SUCCEEDED,
    PaymentStatus.FAILED: NotificationType.PAYMENT_FAILED,
    PaymentStatus.REFUNDED: NotificationType.PAYMENT_REFUNDED,
    PaymentStatus.PARTIALLY_REFUNDED: NotificationType.PAYMENT_PARTIALLY_REFUNDED,
}


@attrs.frozen
class Notification:
    """An outbound event, written to the outbox with the change it reports."""

    id: str
    environment_id: str
    type: NotificationType
    occurred_at: datetime
    data: Mapping[str, str | None]


@attrs.frozen
class WebhookEndpoint:
    """A subscriber's URL in one environment, and the events it wants (none named: all)."""

    id: str
    environment_id: str
    url: str
    events: frozenset[NotificationType]
    # Signs every delivery; shown to the caller once, when the endpoint is created.
    secret: str = attrs.field(repr=False)
    created_at: datetime
    disabled_at: datetime | None = None
    deleted_at: datetime | None = None
    # When the first of the failures since the last success happened.
    failing_since: datetime | None = None
    version: int = 1

    @property
    def active(self) -> bool:
        return self.disabled_at is None and self.deleted_at is None

    def wants(self, kind: NotificationType) -> bool:
        return self.active and (not self.events or kind in self.events)

    def deleted(self, at: datetime) -> WebhookEndpoint:
        return attrs.evolve(self, deleted_at=at, version=self.version + 1)

    def answered(self) -> WebhookEndpoint:
        """A delivery got through: the endpoint is healthy again."""
        if self.failing_since is None:
            return self
        return attrs.evolve(self, failing_since=None, version=self.version + 1)

    def failed(self, at: datetime, *, disable: bool = False) -> WebhookEndpoint:
        """A delivery failed: failing since now unless it already was; `disable` stops it."""
        since = self.failing_since or at
        disabled_at = self.disabled_at or (at if disable else None)
        if (since, disabled_at) == (self.failing_since, self.disabled_at):
            return self
        return attrs.evolve(
            self, failing_since=since, disabled_at=disabled_at, version=self.version + 1
        )


@attrs.frozen
class WebhookDelivery:
    """One notification on its way to one endpoint, with what its attempts gave."""

    id: str
    environment_id: str
    endpoint_id: str
    notification: Notification
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    first_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    version: int = 1

    @property
    def pending(self) -> bool:
        return self.delivered_at is None and self.failed_at is None

    def rescheduled(self, at: datetime) -> WebhookDelivery:
        """Next tried at `at`: a dispatcher's lease on it, or a wait for its endpoint."""
        return attrs.evolve(self, next_attempt_at=at, version=self.version + 1)

    def succeeded(self, at: datetime) -> WebhookDelivery:
        return attrs.evolve(
            self,
            attempts=self.attempts + 1,
            first_attempt_at=self.first_attempt_at or at,
            last_attempt_at=at,
            last_error=None,
            delivered_at=at,
            version=self.version + 1,
        )

    def attempt_failed(
        self, at: datetime, error: str, *, retry_at: datetime | None
    ) -> WebhookDelivery:
        """A failed attempt: tried again at `retry_at`, or never again when it is None."""
        return attrs.evolve(
            self,
            attempts=self.attempts + 1,
            first_attempt_at=self.first_attempt_at or at,
            last_attempt_at=at,
            last_error=error,
            next_attempt_at=retry_at or at,
            failed_at=None if retry_at else at,
            version=self.version + 1,
        )

    def abandoned(self, at: datetime, reason: str) -> WebhookDelivery:
        """Given up without an attempt (its endpoint was disabled or deleted)."""
        return attrs.evolve(self, last_error=reason, failed_at=at, version=self.version + 1)
