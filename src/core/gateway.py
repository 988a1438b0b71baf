"""What the core exchanges with a card gateway: plain values, no SDK types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

import attrs

from core.model.payment import ChargeDetails, Failure
from core.money import Money


class GatewayUnavailable(Exception):
    """The gateway's answer is unknown (timeout, lost connection): a charge may have happened."""


@attrs.frozen
class GatewayPaymentMethod:
    """A saved card as the gateway describes it: never more than this."""

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool = False


@attrs.frozen
class CustomerRequest:
    idempotency_key: str
    name: str | None = None
    email: str | None = None
    metadata: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class GatewayCustomer:
    id: str
    default_payment_method: GatewayPaymentMethod | None = None
    # What the service attached when it created the customer (its environment_id, customer_id).
    metadata: Mapping[str, str] = attrs.field(factory=dict)


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The gateway accepted the charge but has not settled it: an event will tell.
    PROCESSING = "processing"


# A definite refusal is the very failure a payment records, so it needs no conversion.
GatewayFailure = Failure


@attrs.frozen
class ChargeRequest:
    amount: Money
    gateway_customer_id: str
    payment_method_id: str
    idempotency_key: str
    metadata: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ChargeResult(ChargeDetails):
    """A charge's outcome, with the details of the charge and card the payment keeps."""

    # The gateway calls it the payment intent; the payment keeps it as its tracking id.
    tracking_id: str | None = attrs.field(default=None, alias="intent_id")
    status: ChargeStatus
    failure: GatewayFailure | None = None

    @property
    def intent_id(self) -> str | None:
        return self.tracking_id


@attrs.frozen
class RefundRequest:
    intent_id: str
    amount: Money
    idempotency_key: str
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    reason: str | None = None


class RefundOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


@attrs.frozen
class GatewayRefund:
    id: str
    outcome: RefundOutcome
    failure: GatewayFailure | None = None


class CheckoutMode(StrEnum):
    PAYMENT = "payment"
    SETUP = "setup"


class CheckoutSessionStatus(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


@attrs.frozen
class CheckoutSessionRequest:
    mode: CheckoutMode
    gateway_customer_id: str
    idempotency_key: str
    amount: Money | None = None
    save_card_and_make_default: bool = False
    success_url: str | None = None
    cancel_url: str | None = None
    metadata: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class CheckoutSession:
    id: str
    url: str
    mode: CheckoutMode
    status: CheckoutSessionStatus
    gateway_customer_id: str
    save_card_and_make_default: bool = False
    paid: bool = False
    # The completed payment (payment mode), or the card saved (setup mode: its
    # payment_method_id, card_brand and card_last4).
    charge: ChargeResult | None = None
    metadata: Mapping[str, str] = attrs.field(factory=dict)


class GatewayEventType(StrEnum):
    """What a gateway event tells, in the core's words: each adapter maps its gateway's names.

    The value is written to the gateway event log, which is never read back (a repeat is
    found by the event's id); rows older than these words hold the gateway's own names.
    """

    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    REFUND_UPDATED = "refund_updated"
    CHECKOUT_COMPLETED = "checkout_completed"
    CHECKOUT_EXPIRED = "checkout_expired"


@attrs.frozen
class GatewayEvent:
    """An event from the gateway, already verified and parsed by its adapter.

    `metadata` is what the project attached to the object (payment, invoice, environment ids).
    """

    id: str
    type: GatewayEventType
    created_at: datetime
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    charge: ChargeResult | None = None
    session: CheckoutSession | None = None
    refund: GatewayRefund | None = None
