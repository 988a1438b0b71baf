"""Payments and their lifecycle: the transitions table and the one method that moves along it.

A payment is frozen: every change returns a new value with the next `version`, which the
storage uses to refuse a lost update. Only `transition` changes the status, and it always
returns the event that records the move.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import attrs

from core.errors import CheckoutError, InvalidStateTransition, payment_failure
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


class Actor(StrEnum):
    """Who moved a payment: the caller's request, a gateway event, or the reconciler."""

    API = "api"
    GATEWAY = "gateway"
    WEBHOOK = "webhook"
    RECONCILER = "reconciler"


@attrs.frozen
class Failure:
    """Why a payment or refund failed, as the caller and the gateway said it.

    `code` is one of the core's error codes (e.g. `card_declined`); the gateway's own words
    are in `gateway_code` and `decline_code`.
    """

    code: str
    message: str
    gateway_code: str | None = None
    decline_code: str | None = None


@attrs.frozen
class PaymentEvent:
    """One transition of a payment: append-only, numbered 1, 2, 3... within the payment."""

    payment_id: str
    environment_id: str
    sequence: int
    from_status: PaymentStatus | None
    to_status: PaymentStatus
    reason: str
    actor: Actor
    occurred_at: datetime


@attrs.frozen
class ChargeDetails:
    """What the gateway said about a payment's charge and card; None where it said nothing."""

    tracking_id: str | None = None
    payment_method_id: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None

    def news_for(self, payment: Payment) -> dict[str, str]:
        """The payment's fields these details would change."""
        fields = {
            "gateway_tracking_id": self.tracking_id,
            "payment_method_id": self.payment_method_id,
            "card_brand": self.card_brand,
            "card_last4": self.card_last4,
        }
        return {k: v for k, v in fields.items() if v is not None and getattr(payment, k) != v}


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
    # The events recorded so far (from its creation's): the next is numbered one more. Not
    # the version, which also moves when the payment changes without moving (a refund
    # reserving part of it, the gateway naming its charge).
    event_count: int = 1

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

    def failure_error(self) -> CheckoutError | None:
        """The error that says why this payment failed (None unless it failed)."""
        if self.status is not PaymentStatus.FAILED or self.failure is None:
            return None
        return payment_failure(
            self.failure.code,
            self.failure.message,
            payment_id=self.id,
            customer_id=self.customer_id,
            invoice_id=self.invoice_id,
            stripe_error_code=self.failure.gateway_code,
            decline_code=self.failure.decline_code,
        )

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
        return payment, payment._arrival(None, "payment created", actor, at)

    def transition(
        self,
        target: PaymentStatus,
        *,
        at: datetime,
        reason: str,
        actor: Actor,
        details: ChargeDetails | None = None,
        failure: Failure | None = None,
        amount_refunded: Money | None = None,
        refund_reserved: Money | None = None,
    ) -> tuple[Payment, PaymentEvent]:
        """Move to `target` along the table, with its event; anything else is refused.
        What the move learned (the charge's details, a failure, a refund) comes along."""
        if not can_transition(self.status, target):
            raise InvalidStateTransition(
                f"A payment cannot move from {self.status.value} to {target.value}.",
                payment_id=self.id,
                expected=sorted(s.value for s in TRANSITIONS[self.status]),
                actual=self.status.value,
            )
        changes: dict[str, Any] = details.news_for(self) if details else {}
        if target is PaymentStatus.SUCCEEDED:
            changes["succeeded_at"] = at
        elif target is PaymentStatus.FAILED:
            changes["failed_at"] = at
            changes["failure"] = failure
        elif target is PaymentStatus.REFUNDED:
            changes["refunded_at"] = at
        if amount_refunded is not None:
            changes["amount_refunded"] = amount_refunded
        if refund_reserved is not None:
            changes["refund_reserved"] = refund_reserved
        moved = self._changed(at, status=target, event_count=self.event_count + 1, **changes)
        return moved, moved._arrival(self.status, reason, actor, at)

    def _arrival(
        self, from_status: PaymentStatus | None, reason: str, actor: Actor, at: datetime
    ) -> PaymentEvent:
        """The event that records this version's arrival at its status."""
        return PaymentEvent(
            payment_id=self.id,
            environment_id=self.environment_id,
            sequence=self.event_count,
            from_status=from_status,
            to_status=self.status,
            reason=reason,
            actor=actor,
            occurred_at=at,
        )

    def with_details(self, details: ChargeDetails, at: datetime) -> Payment:
        """The same status, with what the gateway told of its charge (itself if nothing new)."""
        news = details.news_for(self)
        return self._changed(at, **news) if news else self

    def with_checkout(self, session_id: str, url: str | None, at: datetime) -> Payment:
        """A payment link's hosted page was opened: its session tracks the payment."""
        return self._changed(at, gateway_tracking_id=session_id, payment_url=url)

    def with_refund_reserved(self, reserved: Money, at: datetime) -> Payment:
        """Refunds in flight now hold `reserved` of what may still be refunded."""
        return self._changed(at, refund_reserved=reserved)

    def _changed(self, at: datetime, **changes: Any) -> Payment:
        return attrs.evolve(self, updated_at=at, version=self.version + 1, **changes)
