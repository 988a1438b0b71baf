"""POST /api/v1/webhooks/stripe/{environment_id}: verified, applied once, never backwards."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from adapters.sandbox import Fault, SandboxFaults
from core.errors import CheckoutError
from core.model import Payment, PaymentMethodType, PaymentStatus
from core.money import Money
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    ENV,
    VISA,
    card_payment,
    customer_with_card,
    finalized_invoice,
    webhook_client,
)
from tests.unit.test_stripe_webhooks import signed

SECRET = "whsec_test"


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    async with webhook_client(checkout, SECRET) as client:
        yield client


async def _in_flight(checkout: CardCheckout, faults: SandboxFaults) -> Payment:
    """A payment charged at the gateway whose answer was lost: `processing`."""
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.PROCESSING
    return payment


def _event(payment: Payment, kind: str, event_id: str, env: str = ENV) -> bytes:
    status = "succeeded" if kind == "payment_intent.succeeded" else "requires_payment_method"
    intent = {
        "id": "pi_from_stripe", "object": "payment_intent", "status": status,
        "payment_method": "pm_1",
        "metadata": {"payment_id": payment.id, "environment_id": env},
        "last_payment_error": None if status == "succeeded" else {
            "code": "card_declined", "decline_code": "generic_decline", "message": "No."},
    }  # fmt: skip
    body = {"id": event_id, "type": kind, "created": 1_790_000_000, "data": {"object": intent}}
    return json.dumps(body).encode()


async def _post(client: httpx.AsyncClient, payload: bytes, signature: str) -> httpx.Response:
    return await client.post(
        f"/api/v1/webhooks/stripe/{ENV}",
        content=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


async def test_a_signed_success_event_settles_the_payment_once(
    checkout: CardCheckout, faults: SandboxFaults, client: httpx.AsyncClient
) -> None:
    payment = await _in_flight(checkout, faults)
    payload = _event(payment, "payment_intent.succeeded", "evt_1")
    first = await _post(client, payload, signed(payload, SECRET))
    assert first.status_code == 200
    assert first.json() == {"received": True, "handled": True}
    settled = await checkout.get_payment(ENV, payment.id)
    assert settled.status is PaymentStatus.SUCCEEDED
    again = await _post(client, payload, signed(payload, SECRET))
    assert again.status_code == 200
    assert await checkout.get_payment(ENV, payment.id) == settled
    late_failure = _event(payment, "payment_intent.payment_failed", "evt_2")
    assert (await _post(client, late_failure, signed(late_failure, SECRET))).status_code == 200
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED


async def test_a_bad_signature_is_400_and_changes_nothing(
    checkout: CardCheckout, faults: SandboxFaults, client: httpx.AsyncClient
) -> None:
    payment = await _in_flight(checkout, faults)
    payload = _event(payment, "payment_intent.succeeded", "evt_3")
    response = await _post(client, payload, signed(payload, "whsec_wrong"))
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "Stripe-Signature"
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING


async def test_an_event_naming_another_environment_is_acknowledged_and_ignored(
    checkout: CardCheckout, faults: SandboxFaults, client: httpx.AsyncClient
) -> None:
    payment = await _in_flight(checkout, faults)
    payload = _event(payment, "payment_intent.succeeded", "evt_4", env="env_elsewhere")
    response = await _post(client, payload, signed(payload, SECRET))
    assert response.json() == {"received": True, "handled": False}
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING


async def test_an_environments_own_secret_replaces_the_service_wide_one(
    checkout: CardCheckout, faults: SandboxFaults, client: httpx.AsyncClient
) -> None:
    await checkout.create_environment("t", "own secrets", environment_id=ENV)
    await checkout.set_webhook_secrets(ENV, ["whsec_env_old", "whsec_env_new"])
    payment = await _in_flight(checkout, faults)
    payload = _event(payment, "payment_intent.succeeded", "evt_5")
    service_wide = await _post(client, payload, signed(payload, SECRET))
    assert service_wide.status_code == 400
    rotated = await _post(client, payload, signed(payload, "whsec_env_old"))
    assert rotated.status_code == 200
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED


async def test_webhook_secrets_must_look_like_stripes(checkout: CardCheckout) -> None:
    await checkout.create_environment("t", "secrets", environment_id=ENV)
    with pytest.raises(CheckoutError) as refused:
        await checkout.set_webhook_secrets(ENV, ["not-a-secret"])
    assert refused.value.details["field"] == "webhook_secrets"
    cleared = await checkout.set_webhook_secrets(ENV, [])
    assert cleared.webhook_secrets == ()


async def test_an_event_for_an_unknown_payment_is_acknowledged_as_not_handled(
    checkout: CardCheckout, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    ghost = Payment.start(
        at=datetime(2026, 1, 1, tzinfo=UTC), id="pay_ghost", environment_id=ENV,
        invoice_id="inv_x", customer_id="cust_x", amount=Money.of("1.00", "usd"),
        method_type=PaymentMethodType.CARD,
    )[0]  # fmt: skip
    payload = _event(ghost, "payment_intent.succeeded", "evt_ghost")
    caplog.set_level(logging.INFO, logger="card_checkout.http")
    response = await _post(client, payload, signed(payload, SECRET))
    assert response.json() == {"received": True, "handled": False}
    assert "evt_ghost" in caplog.text
