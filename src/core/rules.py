"""The domain's rules: the limits of what it stores, card data kept out, and the checks a
payment or a webhook endpoint must pass whatever the transport (bodies are read at the edge).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

from core.commands import CreatePayment
from core.errors import AmountMismatch, CurrencyMismatch, ValidationError
from core.model import Invoice, NotificationType

MAX_METADATA_KEYS: Final = 50
MAX_METADATA_KEY_LENGTH: Final = 40
MAX_METADATA_VALUE_LENGTH: Final = 500
MAX_ID_LENGTH: Final = 255
MAX_TEXT_LENGTH: Final = 500
MAX_URL_LENGTH: Final = 2048
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
# Items in one page of a list.
MAX_PAGE_SIZE: Final = 100
DEFAULT_PAGE_SIZE: Final = 20
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
HTTP_URL: Final = re.compile(r"^https?://[^\s]+$")


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
    if len(url) > MAX_URL_LENGTH or not HTTP_URL.match(url) or not host:
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
