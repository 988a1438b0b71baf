"""Stripe webhook events: signatures checked with the SDK, events parsed for the core."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from adapters.stripe_gateway import parse_webhook
from adapters.stripe_gateway.webhooks import STRIPE_EVENT_TYPES
from core.errors import ValidationError
from core.gateway import ChargeStatus, CheckoutMode, GatewayEventType, RefundOutcome

OLD, NEW = "whsec_old", "whsec_new"


def signed(payload: bytes, secret: str, at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at
    signature = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={signature}"


def event(kind: str, obj: dict[str, object]) -> bytes:
    body = {"id": "evt_1", "type": kind, "created": 1_790_000_000, "data": {"object": obj}}
    return json.dumps(body).encode()


INTENT = {
    "id": "pi_1",
    "object": "payment_intent",
    "status": "succeeded",
    "payment_method": "pm_1",
    "metadata": {"payment_id": "pay_1", "environment_id": "env_a"},
}


def test_any_current_secret_is_accepted_while_secrets_rotate() -> None:
    payload = event("payment_intent.succeeded", INTENT)
    for secret in (OLD, NEW):
        parsed = parse_webhook(payload, signed(payload, secret), [OLD, NEW])
        assert parsed is not None
        assert parsed.type is GatewayEventType.PAYMENT_SUCCEEDED


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "t=1,v1=deadbeef",
        "garbage",
    ],
)
def test_a_missing_or_wrong_signature_is_refused(signature: str | None) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_webhook(event("payment_intent.succeeded", INTENT), signature, [OLD])
    assert refused.value.details["field"] == "Stripe-Signature"


def test_a_signature_older_than_300_seconds_is_refused() -> None:
    payload = event("payment_intent.succeeded", INTENT)
    stale = signed(payload, OLD, at=int(time.time()) - 301)
    with pytest.raises(ValidationError):
        parse_webhook(payload, stale, [OLD])
    fresh = signed(payload, OLD, at=int(time.time()) - 290)
    assert parse_webhook(payload, fresh, [OLD]) is not None


def test_a_tampered_body_is_refused() -> None:
    payload = event("payment_intent.succeeded", INTENT)
    signature = signed(payload, OLD)
    with pytest.raises(ValidationError):
        parse_webhook(payload.replace(b"pay_1", b"pay_2"), signature, [OLD])


def test_a_failed_intent_keeps_stripes_codes() -> None:
    failed = {
        **INTENT,
        "status": "requires_payment_method",
        "last_payment_error": {
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "No money.",
        },
    }
    payload = event("payment_intent.payment_failed", failed)
    parsed = parse_webhook(payload, signed(payload, OLD), [OLD])
    assert parsed is not None
    assert parsed.charge is not None
    assert parsed.charge.status is ChargeStatus.FAILED
    assert parsed.charge.failure is not None
    assert parsed.charge.failure.code == "insufficient_funds"
    assert parsed.metadata == {"payment_id": "pay_1", "environment_id": "env_a"}


def test_a_completed_checkout_and_a_refund_are_parsed() -> None:
    session = {
        "id": "cs_1",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "customer": "cus_1",
        "url": None,
        "payment_intent": "pi_1",
        "metadata": {"payment_id": "pay_1", "save_card_and_make_default": "true"},
    }
    payload = event("checkout.session.completed", session)
    parsed = parse_webhook(payload, signed(payload, OLD), [OLD])
    assert parsed is not None
    assert parsed.session is not None
    assert parsed.session.mode is CheckoutMode.PAYMENT
    assert parsed.session.paid
    assert parsed.session.save_card_and_make_default
    refund = {
        "id": "re_1",
        "object": "refund",
        "status": "succeeded",
        "metadata": {"refund_id": "re_ours", "environment_id": "env_a"},
    }
    payload = event("refund.updated", refund)
    parsed = parse_webhook(payload, signed(payload, OLD), [OLD])
    assert parsed is not None
    assert parsed.refund is not None
    assert parsed.refund.outcome is RefundOutcome.SUCCEEDED
    assert parsed.metadata["refund_id"] == "re_ours"


def test_events_the_service_does_not_act_on_are_none() -> None:
    payload = event("customer.updated", {"id": "cus_1", "object": "customer"})
    assert parse_webhook(payload, signed(payload, OLD), [OLD]) is None


def test_every_event_the_core_knows_has_a_stripe_name_and_the_core_keeps_its_own_words() -> None:
    assert set(STRIPE_EVENT_TYPES.values()) == set(GatewayEventType)
    for kind in GatewayEventType:
        assert kind.value not in STRIPE_EVENT_TYPES
        assert "." not in kind.value
    assert STRIPE_EVENT_TYPES["payment_intent.succeeded"].value == "payment_succeeded"
    assert STRIPE_EVENT_TYPES["checkout.session.completed"].value == "checkout_completed"


@pytest.mark.parametrize(
    ("stripe_kind", "expected"),
    [
        ("checkout.session.expired", GatewayEventType.CHECKOUT_EXPIRED),
        ("refund.created", GatewayEventType.REFUND_UPDATED),
        ("charge.refund.updated", GatewayEventType.REFUND_UPDATED),
    ],
)
def test_stripes_names_map_to_the_cores(stripe_kind: str, expected: GatewayEventType) -> None:
    obj = {
        "id": "cs_1" if stripe_kind.startswith("checkout") else "re_1",
        "object": "checkout.session" if stripe_kind.startswith("checkout") else "refund",
        "mode": "payment",
        "status": "expired" if stripe_kind.startswith("checkout") else "pending",
        "payment_status": "unpaid",
        "customer": "cus_1",
        "url": None,
        "payment_intent": None,
        "metadata": {"payment_id": "pay_1", "refund_id": "re_ours", "environment_id": "env_a"},
    }
    payload = event(stripe_kind, obj)
    parsed = parse_webhook(payload, signed(payload, OLD), [OLD])
    assert parsed is not None
    assert parsed.type is expected


def test_a_charge_refunded_event_names_the_latest_of_our_refunds() -> None:
    charge = {
        "id": "ch_1",
        "object": "charge",
        "refunds": {
            "data": [
                {"id": "re_2", "status": "succeeded", "metadata": {"refund_id": "re_ours"}},
                {"id": "re_1", "status": "succeeded", "metadata": {}},
            ]
        },
    }
    payload = event("charge.refunded", charge)
    parsed = parse_webhook(payload, signed(payload, OLD), [OLD])
    assert parsed is not None
    assert parsed.type is GatewayEventType.REFUND_UPDATED
    assert parsed.refund is not None
    assert parsed.refund.id == "re_2"
    assert parsed.metadata == {"refund_id": "re_ours"}
    unrelated = event("charge.refunded", {**charge, "refunds": {"data": []}})
    assert parse_webhook(unrelated, signed(unrelated, OLD), [OLD]) is None
