"""Stripe webhook events: verified with the SDK, parsed into the core's `GatewayEvent`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import stripe

from adapters.stripe_gateway.objects import REFUND_OUTCOMES, intent_result, session_from
from core.errors import ValidationError
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
        return
    raise ValidationError(
        "The Stripe-Signature is wrong or older than 300 seconds.", field="Stripe-Signature"
    )


def parse_webhook(
    payload: bytes, signature: str | None, secrets: Sequence[str]
) -> GatewayEvent | None:
    """The verified event, or None for a kind of event this service does not act on."""
    verify_signature(payload, signature, secrets)
    try:
        event = json.loads(payload)
        stripe_kind, obj = str(event["type"]), event["data"]["object"]
        created = datetime.fromtimestamp(int(event["created"]), tz=UTC)
        event_id = str(event["id"])
    except (ValueError, KeyError, TypeError):
        raise ValidationError("The event is not a Stripe event.", field="body") from None
    kind = STRIPE_EVENT_TYPES.get(stripe_kind)
    if kind is None:
        return None
    metadata = {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}
    if kind in _CHARGE_EVENTS:
        charge = intent_result(obj)
        return GatewayEvent(event_id, kind, created, metadata, charge=charge)
    if kind in _SESSION_EVENTS:
        session = session_from(obj)
        return GatewayEvent(event_id, kind, created, dict(session.metadata), session=session)
    if stripe_kind != "charge.refunded":
        return GatewayEvent(event_id, kind, created, metadata, refund=_refund(obj))
    refunds = (obj.get("refunds") or {}).get("data") or []
    events = [r for r in refunds if (r.get("metadata") or {}).get("refund_id")]
    if events:
        latest = events[0]
        refund_metadata = {str(k): str(v) for k, v in latest["metadata"].items()}
        return GatewayEvent(event_id, kind, created, refund_metadata, refund=_refund(latest))
    return None


def _refund(obj: dict[str, Any]) -> GatewayRefund:
    outcome = REFUND_OUTCOMES.get(str(obj.get("status")), RefundOutcome.PENDING)
    return GatewayRefund(id=str(obj.get("id")), outcome=outcome)
