"""Stripe's objects (from the SDK, or a webhook's plain dicts) read as the core's values."""

from __future__ import annotations

from typing import Any, Final

from adapters.stripe_vocabulary import classify_card_error
from core.errors import GatewayError
from core.gateway import (
    ChargeResult,
    ChargeStatus,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionStatus,
    GatewayFailure,
    GatewayPaymentMethod,
    RefundOutcome,
)

REFUND_OUTCOMES: Final = {
    "succeeded": RefundOutcome.SUCCEEDED,
    "pending": RefundOutcome.PENDING,
    "requires_action": RefundOutcome.PENDING,
    "failed": RefundOutcome.FAILED,
    "canceled": RefundOutcome.FAILED,
}


def field(obj: Any, name: str) -> Any:
    """A field of a Stripe object or a plain dict, None when absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def plain(obj: Any) -> Any:
    """An SDK object as the plain dict Stripe sent (webhook payloads are plain already)."""
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else obj


def id_of(value: Any) -> str | None:
    """The id of an expanded object, or the id itself."""
    if value is None or isinstance(value, str):
        return value
    return str(field(value, "id"))


def payment_method_from(pm: Any, *, is_default: bool) -> GatewayPaymentMethod | None:
    card = field(pm, "card")
    if card is None:
        return None
    return GatewayPaymentMethod(
        id=str(field(pm, "id")),
        brand=str(field(card, "brand")),
        last4=str(field(card, "last4")),
        exp_month=int(field(card, "exp_month")),
        exp_year=int(field(card, "exp_year")),
        is_default=is_default,
    )


def intent_result(intent: Any) -> ChargeResult:
    """Read the intent's status, not only the absence of an error."""
    intent = plain(intent)
    status = field(intent, "status")
    pm = field(intent, "payment_method")
    card = field(pm, "card") if not isinstance(pm, str) else None
    found = {
        "intent_id": str(field(intent, "id")),
        "payment_method_id": id_of(pm),
        "card_brand": field(card, "brand"),
        "card_last4": field(card, "last4"),
    }
    if status == "succeeded":
        return ChargeResult(status=ChargeStatus.SUCCEEDED, **found)
    if status == "processing":
        return ChargeResult(status=ChargeStatus.PROCESSING, **found)
    error = field(intent, "last_payment_error")
    if status == "requires_action" or (status == "requires_payment_method" and not error):
        failure = classify_card_error(
            "authentication_required",
            "authentication_required",
            "The card requires authentication; use a payment link.",
        )
    elif error is not None:
        failure = classify_card_error(
            field(error, "code"), field(error, "decline_code"), str(field(error, "message"))
        )
    else:
        failure = GatewayFailure(GatewayError.code, f"The PaymentIntent is {status}.")
    return ChargeResult(status=ChargeStatus.FAILED, failure=failure, **found)


# What an intent's status says on its own; the rest may be a charge still under way.
_SETTLED_STATUSES: Final = frozenset({"succeeded", "processing", "requires_action", "canceled"})


def settled(intent: Any) -> bool:
    """Whether an intent (found by a search, not returned by its request) is an answer: a
    charge confirmed off-session is only briefly in another status, without an error."""
    status = field(intent, "status")
    if status == "requires_payment_method":
        return field(intent, "last_payment_error") is not None
    return status in _SETTLED_STATUSES


def charge_rank(intent: Any) -> tuple[bool, bool, int]:
    """The order in which a payment's intents answer for it: succeeded, processing, newest."""
    status = field(intent, "status")
    return status == "succeeded", status == "processing", int(field(intent, "created") or 0)


def session_from(session: Any) -> CheckoutSession:
    """A Checkout Session (an SDK object or a webhook's plain dict) as the core sees it."""
    session = plain(session)
    metadata = dict(field(session, "metadata") or {})
    mode = CheckoutMode(str(field(session, "mode")))
    intent = field(session, "payment_intent") or field(session, "setup_intent")
    pm = field(intent, "payment_method") if not isinstance(intent, str) else None
    card = field(pm, "card") if pm is not None and not isinstance(pm, str) else None
    charge = None
    if intent is not None:
        charge = ChargeResult(
            status=ChargeStatus.SUCCEEDED,
            intent_id=id_of(intent) if mode is CheckoutMode.PAYMENT else None,
            payment_method_id=id_of(pm),
            card_brand=field(card, "brand"),
            card_last4=field(card, "last4"),
        )
    return CheckoutSession(
        id=str(field(session, "id")),
        url=str(field(session, "url") or ""),
        mode=mode,
        status=CheckoutSessionStatus(str(field(session, "status") or "open")),
        gateway_customer_id=str(id_of(field(session, "customer"))),
        save_card_and_make_default=metadata.pop("save_card_and_make_default", "") == "true",
        paid=field(session, "payment_status") == "paid",
        charge=charge,
        metadata=metadata,
    )
