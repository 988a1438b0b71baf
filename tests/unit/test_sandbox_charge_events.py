"""The sandbox announces its charges by event, as Stripe's webhooks do, through the same path."""

from __future__ import annotations

from adapters.clock import ManualClock
from adapters.sandbox import Fault, SandboxFaults
from core.model import PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    ENV,
    card_payment,
    customer_with_card,
    finalized_invoice,
    in_memory_checkout,
    notifier,
    sandbox,
)


def announcing(faults: SandboxFaults) -> CardCheckout:
    checkout = in_memory_checkout(clock=ManualClock(), faults=faults)
    sandbox(checkout).emit_charge_events = True
    return checkout


async def test_a_charge_whose_answer_was_lost_is_settled_by_its_event() -> None:
    faults = SandboxFaults()
    checkout = announcing(faults)
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.PROCESSING
    await sandbox(checkout).drain_events()
    settled = await checkout.get_payment(ENV, payment.id)
    assert settled.status is PaymentStatus.SUCCEEDED
    assert [e.actor.value for e in await checkout.payment_events(ENV, payment.id)][-1] == "webhook"
    assert len(await sandbox(checkout).charges_for(payment.id)) == 1


async def test_the_event_of_an_answered_charge_changes_nothing() -> None:
    checkout = announcing(SandboxFaults())
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    await sandbox(checkout).drain_events()
    assert await checkout.get_payment(ENV, payment.id) == payment
    succeeded = notifier(checkout).of_type("payment.succeeded")
    assert [n.data["payment_id"] for n in succeeded] == [payment.id]
