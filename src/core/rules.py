"""Validation: request bodies into commands, and the rules a payment must satisfy.

A body is a plain mapping as parsed from JSON (numbers as Decimal or int). Each parser either
returns a command or raises `ValidationError` naming the field; nothing else escapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Final, TypeVar
from urllib.parse import urlsplit

from core.commands import CreateCustomer, CreateInvoice, CreatePayment, RefundPayment, SetupCard
from core.errors import AmountMismatch, CurrencyMismatch, ValidationError
from core.model import Invoice, InvoiceStatus, NotificationType, PaymentMethodType
from core.money import Money, currency, parse_decimal

T = TypeVar("T")

MAX_METADATA_KEYS: Final = 50
MAX_METADATA_KEY_LENGTH: Final = 40
MAX_METADATA_VALUE_LENGTH: Final = 500
MAX_ID_LENGTH: Final = 255
MAX_TEXT_LENGTH: Final = 500
MAX_URL_LENGTH: Final = 2048
# A webhook endpoint that names no event type (or this) gets them all, new ones included.
ALL_EVENTS: Final = "*"
# Set by the service from the charge; a caller may not put them in metadata.
RESERVED_METADATA_KEYS: Final = frozenset({"stripe_payment_intent_id", "card_last4", "card_brand"})

_CARD_FIELD_NAMES: Final = frozenset(
    {
        "card", "card_number", "cardnumber", "number", "pan", "cvc", "cvv", "cvc2", "cvv2",
        "security_code", "exp", "expiry", "expiration", "exp_month", "exp_year",
        "expiry_month", "expiry_year", "expiration_date", "card_cvc", "card_exp",
    }
)  # fmt: skip
# A run of digits standing on its own: inside a longer token of letters and digits (a UUID's
# hex, an order number) it is an identifier, not a card number typed by someone.
_DIGITS_WITH_SEPARATORS: Final = re.compile(
    r"(?<![0-9A-Za-z])(?:\d[ ._/-]?){12,18}\d(?![0-9A-Za-z])"
)
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL: Final = re.compile(r"^https?://[^\s]+$")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True for a 13-19 digit Luhn-valid run, with or without spaces or dashes."""
    if len(text) < 13:  # too short to hold one (most field names and values): no regex
        return False
    for match in _DIGITS_WITH_SEPARATORS.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn_valid(digits):
            return True
    return False


def _card_data_error(field: str) -> ValidationError:
    # The value is never echoed: it may be a real card.
    return ValidationError(
        "Card data (number, cvc, expiry) must never be sent to this service; cards are "
        "entered only on the gateway's hosted pages.",
        field=field,
    )


def reject_card_data(body: Mapping[str, object], prefix: str = "") -> None:
    """Refuse a body that carries anything shaped like card data, at any depth."""
    for key, value in body.items():
        if isinstance(key, str):
            if looks_like_card_number(key):
                # Name the enclosing object, never the key: the key is the card number.
                raise _card_data_error(prefix.rstrip(".") or "body")
            if key.strip().lower() in _CARD_FIELD_NAMES:
                raise _card_data_error(f"{prefix}{key}")
        if isinstance(value, str):
            if looks_like_card_number(value):
                raise _card_data_error(f"{prefix}{key}")
        elif isinstance(value, Mapping):
            reject_card_data(value, prefix=f"{prefix}{key}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    reject_card_data(item, prefix=f"{prefix}{key}[{index}].")
                elif isinstance(item, str) and looks_like_card_number(item):
                    raise _card_data_error(f"{prefix}{key}[{index}]")


class _Body:
    """Typed access to a request body that remembers which fields were read."""

    def __init__(self, body: object, allowed: frozenset[str]) -> None:
        if not isinstance(body, Mapping):
            raise ValidationError("The request body must be a JSON object.", field="body")
        for key in body:
            if not isinstance(key, str):
                raise ValidationError("Field names must be strings.", field=str(key))
        reject_card_data(body)
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ValidationError(f"Unknown field {unknown[0]!r}.", field=unknown[0])
        self._body: Mapping[str, object] = body

    def _get(self, field: str, required: bool) -> object:
        value = self._body.get(field)
        if value is None and required:
            raise ValidationError(f"{field} is required.", field=field)
        return value

    def text(
        self,
        field: str,
        *,
        required: bool = False,
        max_length: int = MAX_TEXT_LENGTH,
        pattern: re.Pattern[str] | None = None,
    ) -> str | None:
        value = self._get(field, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValidationError(f"{field} must be a string.", field=field)
        value = value.strip()
        if not value:
            raise ValidationError(f"{field} must not be empty.", field=field)
        if len(value) > max_length:
            raise ValidationError(f"{field} must be at most {max_length} characters.", field=field)
        if pattern is not None and not pattern.match(value):
            raise ValidationError(f"{field} is not well formed.", field=field)
        return value

    def required_text(self, field: str, *, max_length: int = MAX_TEXT_LENGTH) -> str:
        value = self.text(field, required=True, max_length=max_length)
        assert value is not None
        return value

    def strings(self, field: str, *, max_items: int = 50) -> list[str]:
        """A list of strings; an empty list when the field is absent."""
        value = self._get(field, required=False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationError(f"{field} must be a list of strings.", field=field)
        if len(value) > max_items:
            raise ValidationError(f"{field} may have at most {max_items} items.", field=field)
        return list(value)

    def boolean(self, field: str, *, required: bool = False, default: bool = False) -> bool:
        value = self._get(field, required)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ValidationError(f"{field} must be true or false.", field=field)
        return value

    def choice(self, field: str, parse: Callable[[str], T], allowed: str) -> T:
        value = self.required_text(field)
        try:
            return parse(value)
        except ValueError:
            raise ValidationError(
                f"{field} must be {allowed}.", field=field, expected=allowed, actual=value
            ) from None

    def decimal(self, field: str, *, required: bool = False) -> Decimal | None:
        value = self._get(field, required)
        if value is None:
            return None
        number = parse_decimal(value, field=field)
        if number <= 0:
            raise ValidationError(f"{field} must be greater than 0.", field=field)
        return number

    def money(self, amount_field: str, currency_field: str = "currency") -> Money:
        code = self.required_text(currency_field, max_length=3)
        amount = self.decimal(amount_field, required=True)
        return Money.of(amount, currency(code, field=currency_field), field=amount_field)

    def metadata(self, field: str = "metadata") -> dict[str, str]:
        value = self._get(field, required=False)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValidationError(f"{field} must be an object.", field=field)
        if len(value) > MAX_METADATA_KEYS:
            raise ValidationError(
                f"{field} may have at most {MAX_METADATA_KEYS} keys.", field=field
            )
        result: dict[str, str] = {}
        for key, item in value.items():
            where = f"{field}.{key}"
            if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY_LENGTH:
                raise ValidationError(
                    f"{field} keys must be 1 to {MAX_METADATA_KEY_LENGTH} characters.",
                    field=where,
                )
            if key in RESERVED_METADATA_KEYS:
                raise ValidationError(f"{key} is set by the service.", field=where)
            if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_LENGTH:
                raise ValidationError(
                    f"{field} values must be strings of at most "
                    f"{MAX_METADATA_VALUE_LENGTH} characters.",
                    field=where,
                )
            result[key] = item
        return result


_PAYMENT_FIELDS: Final = frozenset(
    {
        "destination_type", "destination_id", "payment_method_type", "payment_gateway",
        "amount", "currency", "process_payment", "payment_method_id",
        "save_card_and_make_default", "success_url", "cancel_url", "metadata",
    }
)  # fmt: skip


def _exact(expected: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value != expected:
            raise ValueError(value)
        return value

    return parse


def parse_create_payment(body: object) -> CreatePayment:
    fields = _Body(body, _PAYMENT_FIELDS)
    fields.choice("destination_type", _exact("INVOICE"), '"INVOICE"')
    destination_id = fields.required_text("destination_id", max_length=MAX_ID_LENGTH)
    method_type = fields.choice(
        "payment_method_type", PaymentMethodType, '"CARD" or "PAYMENT_LINK"'
    )
    gateway = fields.choice("payment_gateway", _exact("stripe"), '"stripe"')
    amount = fields.money("amount")
    process_payment = fields.boolean("process_payment", required=True)
    payment_method_id = fields.text("payment_method_id", max_length=MAX_ID_LENGTH)
    save_card = fields.boolean("save_card_and_make_default")
    success_url = fields.text("success_url", max_length=2048, pattern=_URL)
    cancel_url = fields.text("cancel_url", max_length=2048, pattern=_URL)
    if method_type is PaymentMethodType.CARD:
        for field, value in (
            ("save_card_and_make_default", save_card or None),
            ("success_url", success_url),
            ("cancel_url", cancel_url),
        ):
            if value is not None:
                raise ValidationError(f"{field} applies to PAYMENT_LINK only.", field=field)
    return CreatePayment(
        destination_id=destination_id,
        amount=amount,
        method_type=method_type,
        process_payment=process_payment,
        payment_method_id=payment_method_id,
        save_card_and_make_default=save_card,
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=fields.metadata(),
        gateway=gateway,
    )


def parse_create_customer(body: object) -> CreateCustomer:
    fields = _Body(body, frozenset({"external_id", "name", "email", "gateway_customer_id"}))
    return CreateCustomer(
        external_id=fields.required_text("external_id", max_length=MAX_ID_LENGTH),
        name=fields.text("name"),
        email=fields.text("email", max_length=320, pattern=_EMAIL),
        gateway_customer_id=fields.text("gateway_customer_id", max_length=MAX_ID_LENGTH),
    )


def parse_create_invoice(body: object) -> CreateInvoice:
    fields = _Body(
        body, frozenset({"customer_id", "currency", "amount_due", "external_id", "status"})
    )
    customer_id = fields.required_text("customer_id", max_length=MAX_ID_LENGTH)
    amount_due = fields.money("amount_due")
    external_id = fields.text("external_id", max_length=MAX_ID_LENGTH)
    status = InvoiceStatus.DRAFT
    if fields.text("status") is not None:
        status = fields.choice("status", InvoiceStatus, '"DRAFT" or "FINALIZED"')
        if status is InvoiceStatus.VOIDED:
            raise ValidationError(
                'status must be "DRAFT" or "FINALIZED".', field="status", actual="VOIDED"
            )
    return CreateInvoice(
        customer_id=customer_id, amount_due=amount_due, external_id=external_id, status=status
    )


def parse_refund(payment_id: str, body: object) -> RefundPayment:
    fields = _Body(body if body is not None else {}, frozenset({"amount", "reason"}))
    return RefundPayment(
        payment_id=payment_id, amount=fields.decimal("amount"), reason=fields.text("reason")
    )


def parse_setup_card(customer_id: str, body: object) -> SetupCard:
    fields = _Body(body if body is not None else {}, frozenset({"success_url", "cancel_url"}))
    return SetupCard(
        customer_id=customer_id,
        success_url=fields.text("success_url", max_length=2048, pattern=_URL),
        cancel_url=fields.text("cancel_url", max_length=2048, pattern=_URL),
    )


def check_payment_matches_invoice(command: CreatePayment, invoice: Invoice) -> None:
    """The invoice must be payable, in the payment's currency, for exactly what remains."""
    invoice.ensure_payable()
    if command.amount.currency != invoice.currency:
        raise CurrencyMismatch(
            invoice_id=invoice.id,
            field="currency",
            expected=invoice.currency.code,
            actual=command.amount.currency.code,
        )
    if command.amount != invoice.amount_remaining:
        raise AmountMismatch(
            invoice_id=invoice.id,
            field="amount",
            expected=str(invoice.amount_remaining),
            actual=str(command.amount),
        )


def check_webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host: where a webhook endpoint's deliveries go."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if len(url) > MAX_URL_LENGTH or not _URL.match(url) or not host:
        raise ValidationError(
            f"url must be an http:// or https:// URL of at most {MAX_URL_LENGTH} characters.",
            field="url",
        )
    return url


def check_webhook_events(events: Iterable[str]) -> frozenset[NotificationType]:
    """The event types named (each one the service emits); none, or "*", means all."""
    names = list(events)
    if names == [ALL_EVENTS]:
        return frozenset()
    known = sorted(kind.value for kind in NotificationType)
    kinds: set[NotificationType] = set()
    for name in names:
        try:
            kinds.add(NotificationType(name))
        except ValueError:
            raise ValidationError(
                f'Unknown event type {name!r}; use "*" alone or some of: {", ".join(known)}.',
                field="events",
                expected=known,
                actual=name,
            ) from None
    return frozenset(kinds)


def parse_create_webhook_endpoint(body: object) -> tuple[str, list[str]]:
    """The url and event names of a new webhook endpoint (checked again by the service)."""
    fields = _Body(body, frozenset({"url", "events"}))
    url = fields.text("url", required=True, max_length=MAX_URL_LENGTH)
    assert url is not None
    events = fields.strings("events")
    check_webhook_events(events)
    return check_webhook_url(url), events
