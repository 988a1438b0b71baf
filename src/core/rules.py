"""The domain's rules: the limits of what it stores, card data kept out, and the checks a
payment or a webhook endpoint must pass whatever the transport (bodies are read at the edge).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

from core.commands import CreatePayment
from core.errors import AmountMismatch, CurrencyMismatch, ValidationError, WebhookUrlNotAllowed
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

# Field names compared as letters and digits only, lower case (`cardNumber`, `card-number` and
# `Card Number` are one name); a name holding one of the fragments is card data too.
_CARD_FIELD_NAMES: Final = frozenset(
    {
        "card", "cardnumber", "number", "pan", "cvc", "cvv", "cvc2", "cvv2", "securitycode",
        "exp", "expiry", "expiration", "expmonth", "expyear", "expirymonth", "expiryyear",
        "expirationdate", "cardcvc", "cardexp",
    }
)  # fmt: skip
_CARD_FIELD_FRAGMENT: Final = re.compile("cardnumber|cardnum|creditcard|ccnum|cvv|cvc")
# Lower-cased first, so this keeps exactly the ASCII letters and digits.
_NOT_ASCII_LETTER_OR_DIGIT: Final = re.compile(r"[^a-z0-9]+")
# A run of digits standing on its own: inside a longer token of letters and digits (a UUID's
# hex, an order number) it is an identifier, not a card number typed by someone. Between digits,
# up to three separators as people type them: any space (two, no-break, narrow, tab), dashes,
# dots, commas, slashes.
_DIGITS_WITH_SEPARATORS: Final = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9][\s.,_/-]{0,3}){12,18}[0-9](?![0-9A-Za-z])"
)
HTTP_URL: Final = re.compile(r"^https?://[^\s]+$")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# One dotted part of an IPv4 address as a resolver reads it: decimal, octal (0...) or hex (0x...).
_IPV4_PART: Final = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")
# Well-known NAT64 prefix: the IPv4 address in its last 32 bits is the one reached.
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True for a 13-19 digit Luhn-valid run, bare or split by separators."""
    if len(text) < 13:  # too short to hold one (most field names and values): no regex
        return False
    for match in _DIGITS_WITH_SEPARATORS.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn_valid(digits):
            return True
    return False


def _is_card_field_name(key: str) -> bool:
    name = _NOT_ASCII_LETTER_OR_DIGIT.sub("", key.lower())
    return name in _CARD_FIELD_NAMES or _CARD_FIELD_FRAGMENT.search(name) is not None


def card_data_error(field: str) -> ValidationError:
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
                raise card_data_error(prefix.rstrip(".") or "body")
            if _is_card_field_name(key):
                raise card_data_error(f"{prefix}{key}")
        if isinstance(value, str):
            if looks_like_card_number(value):
                raise card_data_error(f"{prefix}{key}")
        elif isinstance(value, Mapping):
            reject_card_data(value, prefix=f"{prefix}{key}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    reject_card_data(item, prefix=f"{prefix}{key}[{index}].")
                elif isinstance(item, str) and looks_like_card_number(item):
                    raise card_data_error(f"{prefix}{key}[{index}]")


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
    _webhook_host(url)
    return url


def check_webhook_destination(url: str, *, allow_private: bool = False) -> str:
    """A webhook URL whose host may be on the public internet: unless `allow_private`, an
    inside address or a `localhost` name is refused. Other names are resolved (and checked
    with `are_public_addresses`) at registration and again by the sender at each delivery."""
    if not allow_private and not host_may_be_public(_webhook_host(url)):
        raise WebhookUrlNotAllowed(field="url")
    return url


def webhook_host_name(url: str) -> str | None:
    """The host name a webhook URL's address must be resolved from; None when the URL
    spells the address itself."""
    host = _webhook_host(url)
    return None if address_literal(host.rstrip(".")) is not None else host


def are_public_addresses(answers: Iterable[str]) -> bool:
    """True when a name's answers hold an address and every one is public; an answer that
    is not an address counts as inside (an IPv6 zone, `%eth0`, is dropped)."""
    addresses = []
    for answer in answers:
        try:
            addresses.append(ipaddress.ip_address(answer.partition("%")[0]))
        except ValueError:
            return False
    return bool(addresses) and all(is_public_address(address) for address in addresses)


def _webhook_host(url: str) -> str:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if len(url) > MAX_URL_LENGTH or not HTTP_URL.match(url) or not host:
        raise ValidationError(
            f"url must be an http:// or https:// URL of at most {MAX_URL_LENGTH} characters.",
            field="url",
        )
    return host


def host_may_be_public(host: str) -> bool:
    """False for a `localhost` name or an address literal that is not public; a name is
    given the benefit of the doubt (only resolving it tells)."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return False
    address = address_literal(name)
    return address is None or is_public_address(address)


def address_literal(host: str) -> IPAddress | None:
    """The address a URL's host spells, in any form a resolver takes (`127.1`, `2130706433`,
    `0x7f.1`, `0177.0.0.1`, `::ffff:127.0.0.1`), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(part) for part in parts):
        return None
    numbers = [_ipv4_part(part) for part in parts]
    # inet_aton: each leading part is one byte, the last fills the bytes that remain.
    last_bits = 8 * (5 - len(numbers))
    if any(not 0 <= n <= 255 for n in numbers[:-1]) or not 0 <= numbers[-1] < 1 << last_bits:
        return ipaddress.IPv4Address(0)  # unparseable as an address: treated as unspecified
    value = 0
    for number in numbers[:-1]:
        value = value << 8 | number
    return ipaddress.IPv4Address(value << last_bits | numbers[-1])


def _ipv4_part(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8) if part.isdigit() and "8" not in part and "9" not in part else -1
    return int(part)


def is_public_address(address: IPAddress) -> bool:
    """True for an address on the public internet: not loopback, private, link-local,
    unique-local, multicast, reserved or unspecified (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public_address(embedded)
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.is_site_local:  # fec0::/10: deprecated, yet `is_global` in Python 3.11
            return False
    return address.is_global and not address.is_multicast and not address.is_reserved


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
