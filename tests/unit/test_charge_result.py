"""core.gateway: a charge's answer is recorded on its payment as the gateway gave it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from core.gateway import ChargeResult, ChargeStatus, GatewayFailure
from core.model import Actor, Failure, Payment, PaymentMethodType, PaymentStatus
from core.money import Money

T0 = datetime(2024, 1, 20, 10, 30, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)


def processing_payment() -> Payment:
    return Payment(
        id="pay_1",
        environment_id="env_test",
        invoice_id="inv_1",
        customer_id="cust_1",
        amount=Money.of("150.00", "usd"),
        method_type=PaymentMethodType.CARD,
        status=PaymentStatus.PROCESSING,
        created_at=T0,
        updated_at=T0,
    )


def test_a_charge_result_gives_the_payment_its_charge_and_card_as_they_are() -> None:
    result = ChargeResult(
        status=ChargeStatus.PROCESSING,
        intent_id="pi_1",
        payment_method_id="pm_1",
        card_brand="visa",
        card_last4="4242",
    )
    told = processing_payment().with_details(result, T1)
    assert (told.gateway_tracking_id, told.payment_method_id, told.card_brand, told.card_last4) == (
        "pi_1",
        "pm_1",
        "visa",
        "4242",
    )
    assert result.intent_id == "pi_1"


def test_a_charge_result_keeps_its_intent_when_its_status_changes() -> None:
    result = ChargeResult(status=ChargeStatus.PROCESSING, intent_id="pi_1", card_last4="4242")
    settled = attrs.evolve(result, status=ChargeStatus.SUCCEEDED)
    assert (settled.status, settled.intent_id, settled.card_last4) == (
        ChargeStatus.SUCCEEDED,
        "pi_1",
        "4242",
    )


def test_a_gateway_refusal_is_recorded_with_every_word_the_gateway_gave() -> None:
    refusal = GatewayFailure(
        "insufficient_funds", "No funds.", "card_declined", "insufficient_funds"
    )
    result = ChargeResult(status=ChargeStatus.FAILED, intent_id="pi_1", failure=refusal)
    failed, _ = processing_payment().transition(
        PaymentStatus.FAILED,
        at=T1,
        reason="charge failed",
        actor=Actor.GATEWAY,
        details=result,
        failure=result.failure,
    )
    assert failed.failure == Failure(
        "insufficient_funds", "No funds.", "card_declined", "insufficient_funds"
    )
    assert failed.gateway_tracking_id == "pi_1"
