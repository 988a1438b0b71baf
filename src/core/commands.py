"""What callers ask for, already validated: built by `entrypoints.bodies` from request bodies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

import attrs

from core.model import GatewayProvider, InvoiceStatus, PaymentMethodType
from core.money import Money

# Sorted keys and no spaces: the same values always give the same text, hence the same hash.
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _plain(value: object) -> object:
    """A command's field value as JSON can hold it."""
    if value is None or type(value) in (str, int, bool):
        return value  # most fields: nothing to look into
    if isinstance(value, Money):
        return [str(value.amount), value.currency.code]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and not isinstance(value, (str, int, bool)):
        return _plain(value.value)
    return value


def _fingerprint(operation: str, command: attrs.AttrsInstance) -> str:
    """A stable hash of a command's values, to tell a retry from a different request."""
    fields = {a.name: _plain(getattr(command, a.name)) for a in attrs.fields(type(command))}
    return hashlib.sha256(_CANONICAL.encode([operation, fields]).encode()).hexdigest()


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


@attrs.frozen
class ConnectGateway:
    """An environment's gateway: the sandbox, or a Stripe account by its secret key."""

    provider: GatewayProvider
    secret_key: str | None = None
    webhook_secrets: tuple[str, ...] = attrs.field(default=(), converter=tuple)
