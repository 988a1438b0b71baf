"""A reconciliation pass reports only what it changed, and one bad item does not stop it."""

from __future__ import annotations

from datetime import timedelta

from adapters.clock import ManualClock
from adapters.sandbox import Fault, SandboxFaults
from core.errors import ServiceUnavailable
from core.model import Payment, PaymentStatus, RefundStatus
from core.usecases import Policies
from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, card_payment, customer_with_card, finalized_invoice
from tests.reconcile_doubles import FailingStorage, HookedFaults, hooked_checkout, stuck_payments


async def test_two_racing_passes_count_each_settled_payment_once() -> None:
    clock, faults = ManualClock(), HookedFaults()
    checkout = hooked_checkout(faults, clock)
    stuck = await stuck_payments(checkout, faults, 3)
    clock.advance(timedelta(seconds=1))
    reports = []

    async def other_pass() -> None:
        reports.append(await checkout.reconcile(older_than=timedelta(0)))

    # While this pass asks the gateway about its first payment, another pass settles all three.
    faults.arm("find_charge", other_pass)
    this = await checkout.reconcile(older_than=timedelta(0))

    [other] = reports
    assert (other.succeeded, other.already_settled) == (3, 0)
    assert (this.examined, this.succeeded, this.failed, this.already_settled) == (3, 0, 0, 3)
    assert this.unresolved == ()
    for payment_id in stuck:
        assert (await checkout.get_payment(ENV, payment_id)).status is PaymentStatus.SUCCEEDED


async def test_two_racing_passes_count_each_settled_refund_once() -> None:
    clock, faults = ManualClock(), HookedFaults()
    checkout = hooked_checkout(faults, clock)
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    faults.schedule("refund", Fault.TIMEOUT_AFTER)
    refund = await checkout.refund_payment(ENV, payment.id, {"amount": "40.00"})
    assert refund.status is RefundStatus.PENDING
    clock.advance(timedelta(seconds=1))
    reports = []

    async def other_pass() -> None:
        reports.append(await checkout.reconcile(older_than=timedelta(0)))

    faults.arm("refund", other_pass)
    this = await checkout.reconcile(older_than=timedelta(0))

    [other] = reports
    assert (other.refunds_settled, this.refunds_settled, this.already_settled) == (1, 0, 1)
    assert this.unresolved == ()
    after = await checkout.get_payment(ENV, payment.id)
    assert str(after.amount_refunded) == "40.00"


async def test_a_payment_whose_lookup_raises_leaves_the_others_to_settle() -> None:
    clock, faults = ManualClock(), HookedFaults()
    checkout = hooked_checkout(faults, clock)
    broken, *others = await stuck_payments(checkout, faults, 3)
    clock.advance(timedelta(seconds=1))

    async def explode() -> None:
        raise RuntimeError("the gateway's answer could not be read")

    faults.arm("find_charge", explode)  # strikes the first look-up: the oldest payment's
    report = await checkout.reconcile(older_than=timedelta(0))

    assert (report.examined, report.succeeded, report.unresolved) == (3, 2, ())
    [error] = report.errors
    assert (error.id, error.environment_id) == (broken, ENV)
    assert "the gateway's answer could not be read" in error.error
    assert report.stopped_by is None
    assert (await checkout.get_payment(ENV, broken)).status is PaymentStatus.PROCESSING
    for payment_id in others:
        assert (await checkout.get_payment(ENV, payment_id)).status is PaymentStatus.SUCCEEDED


async def test_a_refund_whose_send_raises_leaves_the_others_to_settle() -> None:
    clock, faults = ManualClock(), HookedFaults()
    checkout = hooked_checkout(faults, clock)
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    faults.schedule("refund", Fault.TIMEOUT_AFTER, Fault.TIMEOUT_AFTER)
    first = await checkout.refund_payment(ENV, payment.id, {"amount": "40.00"})
    clock.advance(timedelta(seconds=1))
    second = await checkout.refund_payment(ENV, payment.id, {"amount": "10.00"})
    clock.advance(timedelta(seconds=1))

    async def explode() -> None:
        raise RuntimeError("the refund's answer could not be read")

    faults.arm("refund", explode)
    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.refunds_settled == 1
    assert [(e.id, e.environment_id) for e in report.errors] == [(first.id, ENV)]
    [*settled] = await checkout.list_refunds(ENV, payment.id)
    statuses = {refund.id: refund.status for refund in settled}
    assert statuses == {first.id: RefundStatus.PENDING, second.id: RefundStatus.SUCCEEDED}


async def test_a_storage_outage_stops_the_pass_instead_of_failing_every_payment() -> None:
    clock, faults, storage = ManualClock(), HookedFaults(), FailingStorage()
    checkout = hooked_checkout(faults, clock, storage)
    await stuck_payments(checkout, faults, 3)
    clock.advance(timedelta(seconds=1))

    async def outage() -> None:
        storage.down = True

    faults.arm("find_charge", outage)  # the database goes away during the first look-up
    report = await checkout.reconcile(older_than=timedelta(0))

    assert isinstance(report.stopped_by, ServiceUnavailable)
    assert (report.succeeded, report.errors) == (0, ())
    assert storage.opened_while_down == 1  # no unit of work tried for the other two


async def _unknown_card_payment(checkout: CardCheckout, faults: SandboxFaults) -> Payment:
    """A card payment whose charge never reached the gateway, which stays down."""
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.ERROR_BEFORE)
    faults.schedule("find_charge", *[Fault.ERROR_BEFORE] * 5)  # still down for look-ups
    return await checkout.create_payment(ENV, card_payment(invoice))


async def test_a_payment_unknown_for_minutes_is_reported_with_its_environment_and_age() -> None:
    clock, faults = ManualClock(), SandboxFaults()
    checkout = hooked_checkout(faults, clock)
    payment = await _unknown_card_payment(checkout, faults)

    clock.advance(timedelta(minutes=4))
    early = await checkout.reconcile(older_than=timedelta(0))
    clock.advance(timedelta(minutes=2))
    late = await checkout.reconcile(older_than=timedelta(0))

    assert early.unresolved == (payment.id,)
    assert early.needs_attention == ()
    [stuck] = late.needs_attention
    assert (stuck.payment_id, stuck.environment_id) == (payment.id, ENV)
    assert stuck.in_flight_for == timedelta(minutes=6)


async def test_attention_counts_from_the_charge_not_from_the_payments_creation() -> None:
    clock, faults = ManualClock(), SandboxFaults()
    checkout = hooked_checkout(faults, clock)
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))
    clock.advance(timedelta(days=1))
    faults.schedule("charge", Fault.ERROR_BEFORE)
    faults.schedule("find_charge", *[Fault.ERROR_BEFORE] * 5)  # still down for look-ups
    processing = await checkout.process_payment(ENV, initiated.id)
    assert processing.status is PaymentStatus.PROCESSING

    clock.advance(timedelta(seconds=5))
    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.unresolved == (initiated.id,)
    assert report.needs_attention == ()  # charged 5 s ago, though created a day ago


def test_the_attention_bound_is_minutes_by_default_and_a_policy() -> None:
    assert Policies().attention_after == timedelta(minutes=5)
    assert Policies(attention_after=timedelta(seconds=30)).attention_after.total_seconds() == 30
