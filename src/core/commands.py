"""What callers ask for, already validated: built by `core.rules` from request bodies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal

import attrs

from core.model import InvoiceStatus, PaymentMethodType
from core.money import Money


def _fingerprint(operation: str, command: attrs.AttrsInstance) -> str:
    """A stable hash of a command's values, to tell a retry from a different request."""

    def plain(value: object) -> object:
        if isinstance(value, Money):
            return [str(value.amount), value.currency.code]
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if hasattr(value, "value") and not isinstance(value, (str, int, bool)):
            return plain(value.value)
        return value

    fields = {a.name: plain(getattr(command, a.name)) for a in attrs.fields(type(command))}
    canonical = json.dumps([operation, fields], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@attrs.frozen
class CreateCustomer:
    external_id: str
    name: str | None = None
    email: str | None = None
    gateway_customer_id: str | None = None

    def fingerprint(self) -> str:
        return _fingerprint("create_customer", self)


@attrs.frozen
class CreateInvoice:
    customer_id: str
    amount_due: Money
    external_id: str | None = None
    status: InvoiceStatus = InvoiceStatus.DRAFT

    def fingerprint(self) -> str:
        return _fingerprint("create_invoice", self)


@attrs.frozen
class CreatePayment:
    destination_id: str
    amount: Money
    method_type: PaymentMethodType
    process_payment: bool
    payment_method_id: str | None = None
    save_card_and_make_default: bool = False
    success_url: str | None = None
    cancel_url: str | None = None
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    gateway: str = "stripe"

    def fingerprint(self) -> str:
        return _fingerprint("create_payment", self)


@attrs.frozen
class RefundPayment:
    payment_id: str
    amount: Decimal | None = None
    reason: str | None = None

    def fingerprint(self) -> str:
        return _fingerprint("refund_payment", self)


@attrs.frozen
class SetupCard:
    customer_id: str
    success_url: str | None = None
    cancel_url: str | None = None

    def fingerprint(self) -> str:
        return _fingerprint("setup_card", self)
