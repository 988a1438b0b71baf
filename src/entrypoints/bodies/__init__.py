"""Request bodies, each defined once: a table of fields that both parses and documents it.

A body is a plain mapping as parsed from JSON (numbers as Decimal or int). Each `parse_*`
either returns a command or raises one `ValidationError` listing every field refused
(`details.fields`, the first also as `details.field`); nothing else escapes.
The library facade and the HTTP routes share these parsers, and the OpenAPI document takes
each body's request schema from the same table (`Body.schema`). The domain's own rules (card
data never accepted, a payment against its invoice, a webhook endpoint's url and events) stay
in `core.rules`; a body only calls them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

import attrs

from core.commands import (
    ConnectGateway,
    CreateCustomer,
    CreateInvoice,
    CreatePayment,
    RefundPayment,
    SetupCard,
)
from core.errors import ValidationError
from core.model import GatewayProvider, InvoiceStatus, NotificationType, PaymentMethodType
from core.rules import (
    ALL_EVENTS,
    HTTP_URL,
    MAX_ID_LENGTH,
    MAX_URL_LENGTH,
    check_webhook_events,
    check_webhook_url,
)
from entrypoints.bodies.fields import Body, Field, refused
from entrypoints.bodies.kinds import (
    Amount,
    Choice,
    CurrencyCode,
    Flag,
    Metadata,
    Schema,
    Strings,
    Text,
)

# What the contract lets a caller name today; spelled out so that a second one is one edit.
DESTINATION_TYPES: Final = ("INVOICE",)
PAYMENT_GATEWAYS: Final = ("stripe",)
MAX_EMAIL_LENGTH: Final = 320
EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

C = TypeVar("C", bound=attrs.AttrsInstance)


_ID: Final = Text(max_length=MAX_ID_LENGTH)
_URL: Final = Text(max_length=MAX_URL_LENGTH, pattern=HTTP_URL, format="uri")
_LINK_ONLY: Final = ("payment_method_type", PaymentMethodType.PAYMENT_LINK.value)

CREATE_PAYMENT: Final = Body(
    "CreatePayment",
    (
        Field("destination_type", Choice(DESTINATION_TYPES), required=True),
        Field("destination_id", _ID, required=True, description="An invoice's id."),
        Field("payment_method_type", Choice(tuple(PaymentMethodType)), required=True),
        Field("payment_gateway", Choice(PAYMENT_GATEWAYS), required=True),
        Field("currency", CurrencyCode(), required=True),
        Field("amount", Amount(currency="currency"), required=True),
        Field("process_payment", Flag(), required=True),
        Field(
            "payment_method_id",
            _ID,
            description="A saved card; default: the customer's default card.",
        ),
        Field("save_card_and_make_default", Flag(), only_with=_LINK_ONLY),
        Field("success_url", _URL, only_with=_LINK_ONLY),
        Field("cancel_url", _URL, only_with=_LINK_ONLY),
        Field("metadata", Metadata()),
    ),
)
CREATE_CUSTOMER: Final = Body(
    "CreateCustomer",
    (
        Field("external_id", _ID, required=True),
        Field("name", Text()),
        Field("email", Text(max_length=MAX_EMAIL_LENGTH, pattern=EMAIL, format="email")),
        Field(
            "gateway_customer_id",
            _ID,
            description="Link a customer the gateway has; without it one is created there.",
        ),
    ),
)
CREATE_INVOICE: Final = Body(
    "CreateInvoice",
    (
        Field("customer_id", _ID, required=True),
        Field("currency", CurrencyCode(), required=True),
        Field("amount_due", Amount(currency="currency"), required=True),
        Field("external_id", _ID),
        Field(
            "status",
            Choice((InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED)),
            default=InvoiceStatus.DRAFT.value,
        ),
    ),
)
REFUND: Final = Body(
    "CreateRefund",
    (
        Field("amount", Amount(), description="Default: all that is left to refund."),
        Field("reason", Text(free=True)),
    ),
    optional=True,
)
SETUP_CARD: Final = Body(
    "CardSetup", (Field("success_url", _URL), Field("cancel_url", _URL)), optional=True
)
CREATE_WEBHOOK_ENDPOINT: Final = Body(
    "CreateWebhookEndpoint",
    (
        Field("url", Text(max_length=MAX_URL_LENGTH, format="uri"), required=True),
        Field(
            "events",
            Strings(items=(ALL_EVENTS, *NotificationType)),
            description=f'The event types to send; none, or ["{ALL_EVENTS}"], means all.',
        ),
    ),
)
CONNECT_GATEWAY: Final = Body(
    "GatewayConnection",
    (
        Field("provider", Choice(tuple(GatewayProvider)), required=True),
        Field(
            "secret_key",
            Text(max_length=255),
            description="The Stripe account's secret key (sk_...) or restricted key (rk_...).",
        ),
        Field(
            "webhook_secrets",
            Strings(),
            description="The secrets (whsec_...) that sign its webhooks; several while rotating.",
        ),
    ),
)
BODIES: Final = (
    CONNECT_GATEWAY,
    CREATE_PAYMENT,
    CREATE_CUSTOMER,
    CREATE_INVOICE,
    REFUND,
    SETUP_CARD,
    CREATE_WEBHOOK_ENDPOINT,
)


# --- bodies into commands -------------------------------------------------------------------------

# CreatePayment's attributes that the contract's body names otherwise.
_PAYMENT_FIELDS: Final = {"method_type": "payment_method_type", "gateway": "payment_gateway"}


def parse_create_payment(body: object) -> CreatePayment:
    return _command(CreatePayment, CREATE_PAYMENT.read(body), _PAYMENT_FIELDS)


def parse_create_customer(body: object) -> CreateCustomer:
    return _command(CreateCustomer, CREATE_CUSTOMER.read(body))


def parse_create_invoice(body: object) -> CreateInvoice:
    return _command(CreateInvoice, CREATE_INVOICE.read(body))


def parse_refund(payment_id: str, body: object) -> RefundPayment:
    return _command(RefundPayment, REFUND.read(body), payment_id=payment_id)


def parse_setup_card(customer_id: str, body: object) -> SetupCard:
    return _command(SetupCard, SETUP_CARD.read(body), customer_id=customer_id)


def parse_connect_gateway(body: object) -> ConnectGateway:
    return _command(ConnectGateway, CONNECT_GATEWAY.read(body))


def parse_create_webhook_endpoint(body: object) -> tuple[str, list[str]]:
    """The url and event names of a new webhook endpoint (checked again by the use case)."""
    fields = CREATE_WEBHOOK_ENDPOINT.read(body)
    problems = []
    for name, check in (("url", check_webhook_url), ("events", check_webhook_events)):
        try:
            check(fields[name])
        except ValidationError as error:  # reported with the others, as the body's are
            problems.append(error)
    if problems:
        raise refused(problems)
    return fields["url"], fields["events"]


def _command(
    command: type[C],
    fields: Mapping[str, Any],
    renamed: Mapping[str, str] = MappingProxyType({}),
    **given: object,
) -> C:
    """`command` from the fields read, each under its own name unless `renamed` gives the
    body's; `given` holds what the path says (an id) rather than the body."""
    values = {
        attribute.name: fields[renamed.get(attribute.name, attribute.name)]
        for attribute in attrs.fields(command)
        if attribute.name not in given
    }
    return command(**values, **given)


__all__ = [
    "BODIES",
    "CONNECT_GATEWAY",
    "CREATE_CUSTOMER",
    "CREATE_INVOICE",
    "CREATE_PAYMENT",
    "CREATE_WEBHOOK_ENDPOINT",
    "REFUND",
    "SETUP_CARD",
    "Body",
    "Field",
    "Schema",
    "parse_connect_gateway",
    "parse_create_customer",
    "parse_create_invoice",
    "parse_create_payment",
    "parse_create_webhook_endpoint",
    "parse_refund",
    "parse_setup_card",
]
