"""An invoice's payment status under interleavings of its payments.

A payment in flight and a second attempt on the same invoice may interleave: the second can
fail before it charges (no usable card) while the first is still out, or read the invoice while
the first is processing and record after the first settled. The invoice must end as its
payments did, and the second attempt must be judged on the invoice as it is then, not as read.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from adapters.clock import ManualClock
from adapters.sandbox import Fault, SandboxFaults
from core.model import InvoicePaymentStatus, PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    DECLINED,
    ENV,
    VISA,
    HeldGateway,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
    in_memory_checkout,
    sandbox,
)


class _HoldNth:
    """Sandbox faults that hold the n-th call of each named operation until released."""

    def __init__(self, holds: dict[str, int]) -> None:
        self.holds = holds
        self.calls: dict[str, int] = {}
        self.started = {name: asyncio.Event() for name in holds}
        self.release = {name: asyncio.Event() for name in holds}

    async def before(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if self.holds.get(operation) == self.calls[operation]:
            self.started[operation].set()
            await self.release[operation].wait()

    @staticmethod
    def after(fault: object, operation: str) -> None:
        return None


async def _fails_before_charging(checkout: CardCheckout, invoice_id: str) -> None:
    """A second attempt naming a card the customer does not have: recorded as failed."""
    invoice = await checkout.get_invoice(ENV, invoice_id)
    attempt = card_payment(invoice, payment_method_id="pm_not_theirs")
    assert (await error_of(checkout.create_payment(ENV, attempt))).code == (
        "payment_method_not_found"
    )
    assert (await checkout.get_invoice(ENV, invoice_id)).payment_status is (
        InvoicePaymentStatus.FAILED
    )


async def test_a_charge_settled_after_a_failed_attempt_pays_the_invoice() -> None:
    clock, faults = ManualClock(), SandboxFaults()
    checkout = in_memory_checkout(clock=clock, faults=faults)
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    faults.schedule("charge", Fault.TIMEOUT_AFTER)  # charged; the answer is lost
    first = await checkout.create_payment(ENV, card_payment(invoice))
    assert first.status is PaymentStatus.PROCESSING
    await _fails_before_charging(checkout, invoice.id)

    clock.advance(timedelta(minutes=5))
    report = await checkout.reconcile()

    assert report.succeeded == 1
    assert (await checkout.get_payment(ENV, first.id)).status is PaymentStatus.SUCCEEDED
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert (paid.payment_status, paid.amount_paid) == (InvoicePaymentStatus.SUCCEEDED, first.amount)


async def test_the_answer_of_a_charge_in_flight_pays_the_invoice_after_a_failed_attempt() -> None:
    checkout = in_memory_checkout()
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    hold = HeldGateway("charge")
    sandbox(checkout).faults = hold  # type: ignore[assignment]
    first = asyncio.create_task(
        checkout.create_payment(ENV, card_payment(invoice), idempotency_key="order-1")
    )
    await hold.started.wait()
    await _fails_before_charging(checkout, invoice.id)
    hold.release.set()

    answered = await first
    assert answered.status is PaymentStatus.SUCCEEDED
    again = await checkout.create_payment(ENV, card_payment(invoice), idempotency_key="order-1")
    assert (again.id, again.status) == (answered.id, PaymentStatus.SUCCEEDED)
    paid = await checkout.get_invoice(ENV, invoice.id)
    assert (paid.payment_status, paid.amount_paid) == (
        InvoicePaymentStatus.SUCCEEDED,
        answered.amount,
    )


async def _second_reads_while_first_processes(card: str) -> tuple[CardCheckout, str, object]:
    """The second payment reads the invoice while the first is charging; the first then
    settles before the second records. Returns the second's answer or error."""
    checkout = in_memory_checkout()
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout, card))
    # get_customer: the 1st is the first payment's card look-up, the 2nd the second's.
    holds = _HoldNth({"charge": 1, "get_customer": 2})
    sandbox(checkout).faults = holds  # type: ignore[assignment]
    first = asyncio.create_task(checkout.create_payment(ENV, card_payment(invoice)))
    await holds.started["charge"].wait()
    second = asyncio.create_task(checkout.create_payment(ENV, card_payment(invoice)))
    await holds.started["get_customer"].wait()
    holds.release["charge"].set()
    await asyncio.gather(first, return_exceptions=True)
    holds.release["get_customer"].set()
    [answer] = await asyncio.gather(second, return_exceptions=True)
    return checkout, invoice.id, answer


async def test_a_second_payment_read_while_the_first_charged_is_judged_on_the_paid_invoice() -> (
    None
):
    checkout, invoice_id, answer = await _second_reads_while_first_processes(VISA)
    assert getattr(answer, "code", None) == "invoice_already_paid"
    page = await checkout.list_payments(ENV, destination_id=invoice_id)
    assert [p.status for p in page.items] == [PaymentStatus.SUCCEEDED]


async def test_a_second_payment_read_while_the_first_was_declined_is_charged() -> None:
    checkout, invoice_id, answer = await _second_reads_while_first_processes(DECLINED)
    assert getattr(answer, "code", None) == "card_declined"  # charged, and declined in turn
    page = await checkout.list_payments(ENV, destination_id=invoice_id)
    assert [p.status for p in page.items] == [PaymentStatus.FAILED, PaymentStatus.FAILED]
    assert {p.failure.code for p in page.items if p.failure} == {"card_declined"}
