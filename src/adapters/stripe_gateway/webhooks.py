"""Stripe webhook events: verified with the SDK, parsed into the core's `GatewayEvent`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import stripe

from adapters.stripe_gateway.objects import REFUND_OUTCOMES, intent_result, session_from
from core.errors import InvalidJson, ValidationError
from core.gateway import GatewayEvent, GatewayEventType, GatewayRefund, RefundOutcome

SIGNATURE_TOLERANCE_SECONDS: Final = 300
# The Stripe events this service acts on, each with what it tells the core. (Until the core
# had its own words, the gateway event log was written with Stripe's names: its older rows
# hold payment_intent.succeeded, payment_intent.payment_failed, checkout.session.completed,
# checkout.session.expired and refund.updated.)
STRIPE_EVENT_TYPES: Final = {
    "payment_intent.succeeded": GatewayEventType.PAYMENT_SUCCEEDED,
    "payment_intent.payment_failed": GatewayEventType.PAYMENT_FAILED,
    "checkout.session.completed": GatewayEventType.CHECKOUT_COMPLETED,
    "checkout.session.expired": GatewayEventType.CHECKOUT_EXPIRED,
    "refund.updated": GatewayEventType.REFUND_UPDATED,
    "refund.created": GatewayEventType.REFUND_UPDATED,
    "charge.refund.updated": GatewayEventType.REFUND_UPDATED,
    # A charge's refunds: the latest of ours among them.
    "charge.refunded": GatewayEventType.REFUND_UPDATED,
}
_CHARGE_EVENTS: Final = (GatewayEventType.PAYMENT_SUCCEEDED, GatewayEventType.PAYMENT_FAILED)
_SESSION_EVENTS: Final = (GatewayEventType.CHECKOUT_COMPLETED, GatewayEventType.CHECKOUT_EXPIRED)


def verify_signature(payload: bytes, signature: str | None, secrets: Sequence[str]) -> None:
    """Accept the payload if any of `secrets` (several while they rotate) signed it recently."""
    if not signature or not secrets:
        raise ValidationError("A valid Stripe-Signature is required.", field="Stripe-Signature")
    text = payload.decode("utf-8", errors="replace")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                text, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            continue
        if _signed_at(signature) <= time.time() + SIGNATURE_TOLERANCE_SECONDS:
            return
        break  # the SDK checks only the past: a time ahead is refused like an old one
    raise ValidationError(
        "The Stripe-Signature is wrong or more than 300 seconds from now.",
        field="Stripe-Signature",
    )


def _signed_at(signature: str) -> int:
    """The header's `t=` (the SDK has just read it, so it is there and a number)."""
    stamps = [item[2:] for item in signature.split(",") if item.startswith("t=")]
    return int(stamps[0])


def parse_webhook(
    payload: bytes, signature: str | None, secrets: Sequence[str]
) -> GatewayEvent | None:
    """The verified event, or None for a kind of event this service does not act on."""
    verify_signature(payload, signature, secrets)
    return parse_event(payload)


def parse_event(payload: bytes) -> GatewayEvent | None:
    """An event already verified, or None for a kind this service does not act on; one
    that is not the shape Stripe documents is a `ValidationError` (or `InvalidJson`)."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise InvalidJson() from None
    if not isinstance(event, dict):
        raise InvalidJson()
    if not _storable(event):
        raise _malformed("body")
    event_id, stripe_kind = event.get("id"), event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not event_id:
        raise _malformed("id")
    if not isinstance(stripe_kind, str) or not stripe_kind:
        raise _malformed("type")
    if not isinstance(obj, dict):
        raise _malformed("data.object")
    try:
        created = datetime.fromtimestamp(int(event["created"]), tz=UTC)
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        raise _malformed("created") from None
    kind = STRIPE_EVENT_TYPES.get(stripe_kind)
    if kind is None:
        return None
    try:
        return _parsed(event_id, kind, stripe_kind, created, obj)
    except (ValueError, KeyError, TypeError, AttributeError):
        # Signed by Stripe yet not the shape its API documents: a 400, never a 500 to retry.
        raise _malformed("data.object") from None


def _storable(value: object) -> bool:
    """No NUL and no lone surrogate anywhere: text a database can hold and look up."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True


def _malformed(field: str) -> ValidationError:
    return ValidationError(f"The event's {field} is not what a Stripe event holds.", field=field)


def _parsed(
    event_id: str,
    kind: GatewayEventType,
    stripe_kind: str,
    created: datetime,
    obj: dict[str, Any],
) -> GatewayEvent | None:
    metadata = _metadata(obj)
    if kind in _CHARGE_EVENTS:
        charge = intent_result(obj)
        return GatewayEvent(event_id, kind, created, metadata, charge=charge)
    if kind in _SESSION_EVENTS:
        session = session_from(obj)
        return GatewayEvent(event_id, kind, created, dict(session.metadata), session=session)
    if stripe_kind != "charge.refunded":
        return GatewayEvent(event_id, kind, created, metadata, refund=_refund(obj))
    refunds = (obj.get("refunds") or {}).get("data") or []
    events = [r for r in refunds if _metadata(r).get("refund_id")]
    if events:
        latest = events[0]
        return GatewayEvent(event_id, kind, created, _metadata(latest), refund=_refund(latest))
    return None


def _metadata(obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TypeError("metadata is not an object")
    return {str(k): str(v) for k, v in metadata.items()}


def _refund(obj: dict[str, Any]) -> GatewayRefund:
    outcome = REFUND_OUTCOMES.get(str(obj.get("status")), RefundOutcome.PENDING)
    return GatewayRefund(id=str(obj.get("id")), outcome=outcome)
