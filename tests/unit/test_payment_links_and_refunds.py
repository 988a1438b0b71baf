"""Payment links (hosted checkout, gateway events) and refunds, through the library facade.

A PAYMENT_LINK payment waits in `processing` with a `payment_url` until the sandbox's hosted
page completes or expires; with `save_card_and_make_default` the card it takes becomes the
customer's default for later off-session CARD payments. Refunds return all or part of a
succeeded payment, never more than it, and each one is recorded on the payment and the invoice.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from adapters.clock import ManualClock
from adapters.sandbox import Fault, SandboxFaults
from core.gateway import (
    CheckoutSessionStatus,
    GatewayEvent,
    GatewayEventType,
    GatewayRefund,
    RefundOutcome,
)
from core.model import (
    Actor,
    Invoice,
    InvoicePaymentStatus,
    Payment,
    PaymentMethodType,
    PaymentStatus,
    RefundStatus,
)
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    AUTHENTICATION_REQUIRED,
    DECLINED,
    ENV,
    EXPIRED,
    OTHER_ENV,
    VISA,
    HeldGateway,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
    notifier,
    sandbox,
)


def payment_link(invoice: Invoice, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "payment_method_type": "PAYMENT_LINK",
        "save_card_and_make_default": True,
    }
    body.update(overrides)
    return card_payment(invoice, **body)


def session_id(payment: Payment) -> str:
    assert payment.gateway_tracking_id is not None
    return payment.gateway_tracking_id


async def complete_with_event_lost(checkout: CardCheckout, session: str, card: str) -> None:
    """The customer pays on the hosted page, but its completion event never arrives."""
    gateway = sandbox(checkout)
    sink, gateway.event_sink = gateway.event_sink, None
    try:
        await checkout.complete_sandbox_checkout(session, card)
    finally:
        gateway.event_sink = sink


async def paid_by_card(
    checkout: CardCheckout, amount: str = "150.00", currency: str = "usd"
) -> Payment:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer, amount, currency)
    return await checkout.create_payment(ENV, card_payment(invoice))


# Payment links --------------------------------------------------------------------------------


async def test_payment_link_payment_is_processing_with_a_payment_url(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)

    payment = await checkout.create_payment(
        ENV, payment_link(invoice, success_url="https://shop.test/ok")
    )

    assert payment.status is PaymentStatus.PROCESSING
    assert payment.method_type is PaymentMethodType.PAYMENT_LINK
    assert payment.gateway_tracking_id is not None
    assert payment.gateway_tracking_id.startswith("cs_")
    assert payment.payment_url == (
        f"http://127.0.0.1:8000/sandbox/checkout/{payment.gateway_tracking_id}"
    )
    assert payment.success_url == "https://shop.test/ok"
    assert payment.save_card_and_make_default is True
    assert await sandbox(checkout).succeeded_charges() == []
    page = await sandbox(checkout).checkout_page(session_id(payment))
    assert page["mode"] == "payment"
    assert page["amount"] == 15000
    assert page["currency"] == "usd"
    assert page["status"] == "open"
    waiting = await checkout.get_invoice(ENV, invoice.id)
    assert waiting.payment_status is InvoicePaymentStatus.PROCESSING
    assert str(waiting.amount_paid) == "0.00"


async def test_completing_the_hosted_checkout_succeeds_the_payment_and_pays_the_invoice(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, payment_link(invoice))
    clock.advance(timedelta(minutes=3))

    event = await checkout.complete_sandbox_checkout(session_id(payment), VISA)

    assert event.type is GatewayEventType.CHECKOUT_COMPLETED
    paid = await checkout.get_payment(ENV, payment.id)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert paid.card_brand == "visa"
    assert paid.card_last4 == "4242"
    assert paid.succeeded_at == clock.now()
    [charge] = await sandbox(checkout).charges_for(payment.id)
    assert paid.gateway_tracking_id == charge["id"]
    assert paid.payment_method_id == charge["payment_method"]
    assert charge["amount"] == 15000
    settled = await checkout.get_invoice(ENV, invoice.id)
    assert settled.payment_status is InvoicePaymentStatus.SUCCEEDED
    assert str(settled.amount_paid) == "150.00"
    assert str(settled.amount_remaining) == "0.00"
    assert settled.paid_at == clock.now()


async def test_card_saved_by_a_payment_link_becomes_default_for_later_off_session_payments(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    first = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(first))
    await checkout.complete_sandbox_checkout(session_id(link), VISA)

    [card] = await checkout.list_payment_methods(ENV, customer.id)
    assert card.is_default is True
    assert card.last4 == "4242"

    second = await finalized_invoice(checkout, customer, "20.00")
    payment = await checkout.create_payment(ENV, card_payment(second))

    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.payment_method_id == card.id
    assert payment.card_last4 == "4242"
    [charge] = await sandbox(checkout).charges_for(payment.id)
    assert charge["amount"] == 2000


async def test_payment_link_without_save_card_leaves_no_default_card(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    first = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(first, save_card_and_make_default=False))
    await checkout.complete_sandbox_checkout(session_id(link), VISA)
    assert (await checkout.get_payment(ENV, link.id)).status is PaymentStatus.SUCCEEDED

    second = await finalized_invoice(checkout, customer, "20.00")
    error = await error_of(checkout.create_payment(ENV, card_payment(second)))

    assert error.code == "no_default_payment_method"
    assert all(
        not card.is_default for card in await checkout.list_payment_methods(ENV, customer.id)
    )


async def test_card_needing_3ds_pays_the_link_on_session_but_fails_later_off_session(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    first = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(first))
    await checkout.complete_sandbox_checkout(session_id(link), AUTHENTICATION_REQUIRED)
    assert (await checkout.get_payment(ENV, link.id)).status is PaymentStatus.SUCCEEDED

    second = await finalized_invoice(checkout, customer, "20.00")
    error = await error_of(checkout.create_payment(ENV, card_payment(second)))

    assert error.code == "authentication_required"
    assert error.details["next_action"] == "create_payment_link"


async def test_card_declined_on_the_hosted_page_leaves_the_link_open_until_a_good_card(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, payment_link(invoice))

    declined = await error_of(checkout.complete_sandbox_checkout(session_id(payment), DECLINED))

    assert declined.code == "card_declined"
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.PROCESSING
    assert (await checkout.list_payment_methods(ENV, customer.id)).items == []

    await checkout.complete_sandbox_checkout(session_id(payment), VISA)

    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED
    assert len(await sandbox(checkout).charges_for(payment.id)) == 1


async def test_expired_payment_link_fails_the_payment_and_leaves_the_invoice_payable(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, payment_link(invoice))
    clock.advance(timedelta(hours=24))

    event = await sandbox(checkout).expire_checkout_session(session_id(payment))

    assert event.type is GatewayEventType.CHECKOUT_EXPIRED
    expired = await checkout.get_payment(ENV, payment.id)
    assert expired.status is PaymentStatus.FAILED
    assert expired.failure is not None
    assert expired.failure.code == "checkout_expired"
    assert expired.failed_at == clock.now()
    assert await sandbox(checkout).succeeded_charges() == []
    unpaid = await checkout.get_invoice(ENV, invoice.id)
    assert unpaid.payment_status is InvoicePaymentStatus.FAILED
    assert str(unpaid.amount_remaining) == "150.00"
    [failed] = notifier(checkout).of_type("payment.failed")
    assert failed.data["payment_id"] == payment.id
    assert failed.data["error_code"] == "checkout_expired"

    retry = await checkout.create_payment(ENV, payment_link(invoice))
    await checkout.complete_sandbox_checkout(session_id(retry), VISA)
    assert (await checkout.get_payment(ENV, retry.id)).status is PaymentStatus.SUCCEEDED


async def test_completed_checkout_cannot_then_expire(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, payment_link(invoice))
    await checkout.complete_sandbox_checkout(session_id(payment), VISA)

    error = await error_of(sandbox(checkout).expire_checkout_session(session_id(payment)))

    assert error.code == "validation_error"
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED


async def test_duplicate_delivery_of_the_completed_event_changes_nothing(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    event = await checkout.complete_sandbox_checkout(session_id(link), VISA)
    payment = await checkout.get_payment(ENV, link.id)
    paid = await checkout.get_invoice(ENV, invoice.id)
    events = await checkout.payment_events(ENV, link.id)
    delivered = list(notifier(checkout).delivered)
    cards = await checkout.list_payment_methods(ENV, customer.id)

    await checkout.handle_gateway_event(event)
    await checkout.handle_gateway_event(event)

    assert await checkout.get_payment(ENV, link.id) == payment
    assert await checkout.get_invoice(ENV, invoice.id) == paid
    assert await checkout.payment_events(ENV, link.id) == events
    assert notifier(checkout).delivered == delivered
    assert await checkout.list_payment_methods(ENV, customer.id) == cards
    assert len(await sandbox(checkout).charges_for(link.id)) == 1
    assert str(paid.amount_paid) == "150.00"


async def test_duplicate_delivery_of_the_expired_event_changes_nothing(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    event = await sandbox(checkout).expire_checkout_session(session_id(link))
    failed = await checkout.get_payment(ENV, link.id)
    delivered = list(notifier(checkout).delivered)

    await checkout.handle_gateway_event(event)

    assert await checkout.get_payment(ENV, link.id) == failed
    assert notifier(checkout).delivered == delivered


async def test_expiry_event_arriving_after_completion_never_moves_the_payment_back(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    completed = await checkout.complete_sandbox_checkout(session_id(link), VISA)
    assert completed.session is not None
    paid = await checkout.get_payment(ENV, link.id)
    stale = attrs.evolve(
        completed,
        id="evt_out_of_order",
        type=GatewayEventType.CHECKOUT_EXPIRED,
        session=attrs.evolve(completed.session, status=CheckoutSessionStatus.EXPIRED, paid=False),
    )

    await checkout.handle_gateway_event(stale)

    assert await checkout.get_payment(ENV, link.id) == paid
    assert (await checkout.get_invoice(ENV, invoice.id)).payment_status is (
        InvoicePaymentStatus.SUCCEEDED
    )
    assert notifier(checkout).of_type("payment.failed") == []


async def test_payment_link_events_and_notifications(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    assert [n.type.value for n in notifier(checkout).delivered] == [
        "payment.created",
        "payment.processing",
    ]

    await checkout.complete_sandbox_checkout(session_id(link), VISA)

    events = await checkout.payment_events(ENV, link.id)
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [
        (None, PaymentStatus.INITIATED, Actor.API),
        (PaymentStatus.INITIATED, PaymentStatus.PROCESSING, Actor.API),
        (PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED, Actor.WEBHOOK),
    ]
    assert [n.type.value for n in notifier(checkout).delivered] == [
        "payment.created",
        "payment.processing",
        "payment.succeeded",
        "invoice.paid",
    ]


async def test_payment_link_created_for_later_opens_its_page_when_processed(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(ENV, payment_link(invoice, process_payment=False))
    assert initiated.status is PaymentStatus.INITIATED
    assert initiated.payment_url is None

    processing = await checkout.process_payment(ENV, initiated.id)

    assert processing.status is PaymentStatus.PROCESSING
    assert processing.payment_url is not None
    await checkout.complete_sandbox_checkout(session_id(processing), VISA)
    assert (await checkout.get_payment(ENV, initiated.id)).status is PaymentStatus.SUCCEEDED


async def test_second_payment_while_a_link_is_open_is_payment_in_progress(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "payment_in_progress"
    assert error.details["payment_id"] == link.id
    assert await sandbox(checkout).succeeded_charges() == []


async def test_payment_link_replayed_with_its_key_opens_one_checkout(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)

    first = await checkout.create_payment(ENV, payment_link(invoice), idempotency_key="link-1")
    again = await checkout.create_payment(ENV, payment_link(invoice), idempotency_key="link-1")

    assert again == first
    assert again.payment_url == first.payment_url
    assert len((await checkout.list_payments(ENV, destination_id=invoice.id)).items) == 1


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        pytest.param("1500", "jpy", 1500, id="jpy"),
        pytest.param("1.250", "kwd", 1250, id="kwd"),
    ],
)
async def test_payment_link_in_zero_and_three_decimal_currencies(
    checkout: CardCheckout, amount: str, currency: str, units: int
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer, amount, currency)
    link = await checkout.create_payment(ENV, payment_link(invoice))

    assert (await sandbox(checkout).checkout_page(session_id(link)))["amount"] == units
    await checkout.complete_sandbox_checkout(session_id(link), VISA)

    paid = await checkout.get_payment(ENV, link.id)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert str(paid.amount) == amount
    [charge] = await sandbox(checkout).charges_for(link.id)
    assert charge["amount"] == units
    assert charge["currency"] == currency
    assert str((await checkout.get_invoice(ENV, invoice.id)).amount_paid) == amount


async def test_checkout_session_error_before_is_recovered_by_reconcile(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("create_checkout_session", Fault.ERROR_BEFORE)

    payment = await checkout.create_payment(ENV, payment_link(invoice))

    assert payment.status is PaymentStatus.PROCESSING
    assert payment.payment_url is None
    clock.advance(timedelta(seconds=1))
    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.unresolved == (payment.id,)  # the page is open now, not yet paid
    opened = await checkout.get_payment(ENV, payment.id)
    assert opened.payment_url is not None
    await checkout.complete_sandbox_checkout(session_id(opened), VISA)
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED


async def test_reconcile_settles_a_completed_link_whose_event_was_lost(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    await complete_with_event_lost(checkout, session_id(link), VISA)
    assert (await checkout.get_payment(ENV, link.id)).status is PaymentStatus.PROCESSING
    clock.advance(timedelta(minutes=1))

    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.succeeded == 1
    paid = await checkout.get_payment(ENV, link.id)
    assert paid.status is PaymentStatus.SUCCEEDED
    assert (await checkout.payment_events(ENV, link.id))[-1].actor is Actor.RECONCILER
    assert (await checkout.get_invoice(ENV, invoice.id)).payment_status is (
        InvoicePaymentStatus.SUCCEEDED
    )


async def test_reconcile_fails_a_link_that_expired_while_its_event_was_lost(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    gateway = sandbox(checkout)
    sink, gateway.event_sink = gateway.event_sink, None
    await gateway.expire_checkout_session(session_id(link))
    gateway.event_sink = sink
    clock.advance(timedelta(minutes=1))

    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.failed == 1
    failed = await checkout.get_payment(ENV, link.id)
    assert failed.status is PaymentStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.code == "checkout_expired"


async def test_reconcile_leaves_an_open_link_processing(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    clock.advance(timedelta(hours=3))

    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.unresolved == (link.id,)
    assert report.needs_attention == ()  # a customer may take their time on a link
    assert (await checkout.get_payment(ENV, link.id)).status is PaymentStatus.PROCESSING


async def test_card_of_a_link_settled_by_reconcile_becomes_the_default(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    await complete_with_event_lost(checkout, session_id(link), VISA)
    clock.advance(timedelta(minutes=1))
    await checkout.reconcile(older_than=timedelta(0))

    [card] = await checkout.list_payment_methods(ENV, customer.id)

    assert card.is_default is True


async def test_gateway_refusing_the_payment_link_fails_the_payment_and_frees_the_invoice(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("create_checkout_session", Fault.REJECT)

    error = await error_of(checkout.create_payment(ENV, payment_link(invoice)))

    assert error.code == "gateway_error"
    [payment] = (await checkout.list_payments(ENV, destination_id=invoice.id)).items
    assert error.details["payment_id"] == payment.id
    assert payment.status is PaymentStatus.FAILED
    assert payment.failure is not None
    assert payment.failure.code == "gateway_error"
    assert payment.payment_url is None
    assert (await checkout.get_invoice(ENV, invoice.id)).payment_status is (
        InvoicePaymentStatus.FAILED
    )
    assert notifier(checkout).of_type("payment.failed")[0].data["payment_id"] == payment.id
    retry = await checkout.create_payment(ENV, payment_link(invoice))
    assert retry.status is PaymentStatus.PROCESSING
    assert retry.payment_url is not None


async def test_retry_of_a_refused_payment_link_with_its_key_gets_the_same_answer(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("create_checkout_session", Fault.REJECT)

    first = await error_of(
        checkout.create_payment(ENV, payment_link(invoice), idempotency_key="lk")
    )

    again = await error_of(
        checkout.create_payment(ENV, payment_link(invoice), idempotency_key="lk")
    )

    assert first.code == again.code == "gateway_error"
    assert again.details == first.details
    assert len((await checkout.list_payments(ENV, destination_id=invoice.id)).items) == 1


# Refunds --------------------------------------------------------------------------------------


async def test_partial_then_full_refund_moves_the_payment_and_the_invoice(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    payment = await paid_by_card(checkout)

    partial = await checkout.refund_payment(
        ENV, payment.id, {"amount": Decimal("50.00"), "reason": "requested_by_customer"}
    )

    assert partial.id.startswith("re_")
    assert partial.payment_id == payment.id
    assert partial.status is RefundStatus.SUCCEEDED
    assert str(partial.amount) == "50.00"
    assert partial.amount.currency.code == "usd"
    assert partial.reason == "requested_by_customer"
    assert partial.gateway_refund_id is not None
    after_partial = await checkout.get_payment(ENV, payment.id)
    assert after_partial.status is PaymentStatus.PARTIALLY_REFUNDED
    assert str(after_partial.amount_refunded) == "50.00"
    assert after_partial.refunded_at is None
    invoice = await checkout.get_invoice(ENV, payment.invoice_id)
    assert invoice.payment_status is InvoicePaymentStatus.PARTIALLY_REFUNDED
    assert str(invoice.amount_refunded) == "50.00"
    assert str(invoice.amount_paid) == "150.00"

    clock.advance(timedelta(days=1))
    rest = await checkout.refund_payment(ENV, payment.id, {"amount": "100.00"})

    assert rest.status is RefundStatus.SUCCEEDED
    refunded = await checkout.get_payment(ENV, payment.id)
    assert refunded.status is PaymentStatus.REFUNDED
    assert str(refunded.amount_refunded) == "150.00"
    assert refunded.refunded_at == clock.now()
    invoice = await checkout.get_invoice(ENV, payment.invoice_id)
    assert invoice.payment_status is InvoicePaymentStatus.REFUNDED
    assert str(invoice.amount_refunded) == "150.00"
    assert [r.id for r in await checkout.list_refunds(ENV, payment.id)] == [partial.id, rest.id]


async def test_refunds_reach_the_gateway_once_each_for_their_amounts(
    checkout: CardCheckout,
) -> None:
    payment = await paid_by_card(checkout)

    await checkout.refund_payment(ENV, payment.id, {"amount": "50.00"})
    await checkout.refund_payment(ENV, payment.id, {"amount": "100.00"})

    gateway_refunds = await sandbox(checkout).store.all("refund")
    assert sorted(r["amount"] for r in gateway_refunds) == [5000, 10000]
    assert {r["payment_intent"] for r in gateway_refunds} == {payment.gateway_tracking_id}


async def test_refund_without_amount_refunds_what_remains(checkout: CardCheckout) -> None:
    payment = await paid_by_card(checkout)
    await checkout.refund_payment(ENV, payment.id, {"amount": "30.00"})

    rest = await checkout.refund_payment(ENV, payment.id)

    assert str(rest.amount) == "120.00"
    refunded = await checkout.get_payment(ENV, payment.id)
    assert refunded.status is PaymentStatus.REFUNDED
    assert str(refunded.amount_refunded) == "150.00"


async def test_several_partial_refunds_each_leave_an_event(checkout: CardCheckout) -> None:
    payment = await paid_by_card(checkout)

    for _ in range(3):
        await checkout.refund_payment(ENV, payment.id, {"amount": "50.00"})

    events = await checkout.payment_events(ENV, payment.id)
    assert [(e.from_status, e.to_status) for e in events[3:]] == [
        (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED),
        (PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.PARTIALLY_REFUNDED),
        (PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED),
    ]
    assert str((await checkout.get_invoice(ENV, payment.invoice_id)).amount_refunded) == "150.00"


async def test_refund_exceeding_what_remains_is_refund_exceeds_payment(
    checkout: CardCheckout,
) -> None:
    payment = await paid_by_card(checkout)
    await checkout.refund_payment(ENV, payment.id, {"amount": "100.00"})
    before = await checkout.get_payment(ENV, payment.id)

    error = await error_of(checkout.refund_payment(ENV, payment.id, {"amount": "50.01"}))

    assert error.code == "refund_exceeds_payment"
    assert error.details["payment_id"] == payment.id
    assert error.details["expected"] == "at most 50.00"
    assert error.details["actual"] == "50.01"
    assert await checkout.get_payment(ENV, payment.id) == before
    assert len(await checkout.list_refunds(ENV, payment.id)) == 1
    assert len(await sandbox(checkout).store.all("refund")) == 1


async def test_refund_larger_than_the_payment_is_refund_exceeds_payment(
    checkout: CardCheckout,
) -> None:
    payment = await paid_by_card(checkout)

    error = await error_of(checkout.refund_payment(ENV, payment.id, {"amount": "150.01"}))

    assert error.code == "refund_exceeds_payment"
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED


async def test_refund_of_a_fully_refunded_payment_is_invalid_state_transition(
    checkout: CardCheckout,
) -> None:
    payment = await paid_by_card(checkout)
    await checkout.refund_payment(ENV, payment.id)

    error = await error_of(checkout.refund_payment(ENV, payment.id, {"amount": "1.00"}))

    assert error.code == "invalid_state_transition"
    assert error.details["actual"] == "refunded"


async def test_refund_of_a_failed_payment_is_invalid_state_transition(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    declined = await error_of(checkout.create_payment(ENV, card_payment(invoice)))
    payment_id = str(declined.details["payment_id"])

    error = await error_of(checkout.refund_payment(ENV, payment_id))

    assert error.code == "invalid_state_transition"
    assert error.details["payment_id"] == payment_id
    assert error.details["actual"] == "failed"
    assert (await checkout.list_refunds(ENV, payment_id)).items == []


async def test_refund_of_an_initiated_payment_is_invalid_state_transition(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    initiated = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))

    error = await error_of(checkout.refund_payment(ENV, initiated.id))

    assert error.code == "invalid_state_transition"
    assert error.details["actual"] == "initiated"
    assert (await checkout.get_payment(ENV, initiated.id)).status is PaymentStatus.INITIATED


async def test_refund_of_a_processing_payment_is_invalid_state_transition(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    processing = await checkout.create_payment(ENV, card_payment(invoice))

    error = await error_of(checkout.refund_payment(ENV, processing.id))

    assert error.code == "invalid_state_transition"
    assert error.details["actual"] == "processing"


@pytest.mark.parametrize(
    ("amount", "currency", "refund"),
    [
        pytest.param("150.00", "usd", Decimal("10.001"), id="usd-three-decimals"),
        pytest.param("1500", "jpy", Decimal("100.5"), id="jpy-fraction"),
        pytest.param("1.250", "kwd", Decimal("0.0005"), id="kwd-four-decimals"),
        pytest.param("1.250", "kwd", Decimal("0.105"), id="kwd-last-digit-not-zero"),
    ],
)
async def test_refund_with_excess_precision_is_validation_error(
    checkout: CardCheckout, amount: str, currency: str, refund: Decimal
) -> None:
    payment = await paid_by_card(checkout, amount, currency)

    error = await error_of(checkout.refund_payment(ENV, payment.id, {"amount": refund}))

    assert error.code == "validation_error"
    assert error.details["field"] == "amount"
    assert (await checkout.list_refunds(ENV, payment.id)).items == []
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"amount": Decimal("0")}, "amount", id="zero"),
        pytest.param({"amount": "-5.00"}, "amount", id="negative"),
        pytest.param({"amount": 5.5}, "amount", id="float"),
        pytest.param({"amount": "five"}, "amount", id="not-a-number"),
        pytest.param({"amount": "5.00", "currency": "usd"}, "currency", id="unknown-field"),
    ],
)
async def test_malformed_refund_is_validation_error(
    checkout: CardCheckout, body: dict[str, object], field: str
) -> None:
    payment = await paid_by_card(checkout)

    error = await error_of(checkout.refund_payment(ENV, payment.id, body))

    assert error.code == "validation_error"
    assert error.details["field"] == field
    assert (await checkout.list_refunds(ENV, payment.id)).items == []


async def test_refund_of_an_unknown_or_other_environments_payment_is_payment_not_found(
    checkout: CardCheckout,
) -> None:
    payment = await paid_by_card(checkout)

    missing = await error_of(checkout.refund_payment(ENV, "pay_missing"))
    elsewhere = await error_of(checkout.refund_payment(OTHER_ENV, payment.id))

    assert missing.code == "payment_not_found"
    assert elsewhere.code == "payment_not_found"
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED
    assert (await error_of(checkout.list_refunds(OTHER_ENV, payment.id))).code == (
        "payment_not_found"
    )


async def test_refunds_notify_partially_refunded_then_refunded(checkout: CardCheckout) -> None:
    payment = await paid_by_card(checkout)
    already = len(notifier(checkout).delivered)

    await checkout.refund_payment(ENV, payment.id, {"amount": "50.00"})
    await checkout.refund_payment(ENV, payment.id)

    refunds = notifier(checkout).delivered[already:]
    assert [n.type.value for n in refunds] == [
        "payment.partially_refunded",
        "payment.refunded",
    ]
    assert [n.data["amount_refunded"] for n in refunds] == ["50.00", "150.00"]
    assert [n.data["payment_status"] for n in refunds] == ["partially_refunded", "refunded"]
    assert all(n.data["payment_id"] == payment.id for n in refunds)


async def test_refund_events_record_the_moves_oldest_first(checkout: CardCheckout) -> None:
    payment = await paid_by_card(checkout)
    await checkout.refund_payment(ENV, payment.id, {"amount": "50.00"})
    await checkout.refund_payment(ENV, payment.id)

    events = await checkout.payment_events(ENV, payment.id)

    assert [(e.from_status, e.to_status) for e in events] == [
        (None, PaymentStatus.INITIATED),
        (PaymentStatus.INITIATED, PaymentStatus.PROCESSING),
        (PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED),
        (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED),
        (PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED),
    ]


async def test_refund_replayed_with_its_key_refunds_once(checkout: CardCheckout) -> None:
    payment = await paid_by_card(checkout)

    first = await checkout.refund_payment(
        ENV, payment.id, {"amount": "10.00"}, idempotency_key="refund-1"
    )
    again = await checkout.refund_payment(
        ENV, payment.id, {"amount": "10.00"}, idempotency_key="refund-1"
    )

    assert again == first
    assert len(await checkout.list_refunds(ENV, payment.id)) == 1
    assert len(await sandbox(checkout).store.all("refund")) == 1
    assert str((await checkout.get_payment(ENV, payment.id)).amount_refunded) == "10.00"


async def test_refund_key_reused_with_another_amount_is_idempotency_key_reused(
    checkout: CardCheckout,
) -> None:
    payment = await paid_by_card(checkout)
    await checkout.refund_payment(ENV, payment.id, {"amount": "10.00"}, idempotency_key="r-1")

    error = await error_of(
        checkout.refund_payment(ENV, payment.id, {"amount": "11.00"}, idempotency_key="r-1")
    )

    assert error.code == "idempotency_key_reused"
    assert str((await checkout.get_payment(ENV, payment.id)).amount_refunded) == "10.00"


async def test_refund_refused_by_the_gateway_is_gateway_error_and_changes_no_amounts(
    checkout: CardCheckout, faults: SandboxFaults
) -> None:
    payment = await paid_by_card(checkout)
    faults.schedule("refund", Fault.REJECT)

    error = await error_of(checkout.refund_payment(ENV, payment.id, idempotency_key="rej"))

    assert error.code == "gateway_error"
    assert error.details["payment_id"] == payment.id
    [refund] = await checkout.list_refunds(ENV, payment.id)
    assert refund.status is RefundStatus.FAILED
    assert error.details["refund_id"] == refund.id
    unchanged = await checkout.get_payment(ENV, payment.id)
    assert unchanged.status is PaymentStatus.SUCCEEDED
    assert str(unchanged.amount_refunded) == "0.00"
    assert str(unchanged.refundable) == "150.00"
    assert str((await checkout.get_invoice(ENV, payment.invoice_id)).amount_refunded) == "0.00"
    # A replay with the key answers the same; a new request may refund everything.
    replay = await error_of(checkout.refund_payment(ENV, payment.id, idempotency_key="rej"))
    assert replay.code == "gateway_error"
    assert replay.details == error.details
    full = await checkout.refund_payment(ENV, payment.id)
    assert str(full.amount) == "150.00"


async def test_refund_whose_answer_is_lost_is_pending_then_settled_once_by_reconcile(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    payment = await paid_by_card(checkout)
    faults.schedule("refund", Fault.TIMEOUT_AFTER)

    pending = await checkout.refund_payment(ENV, payment.id, {"amount": "40.00"})

    assert pending.status is RefundStatus.PENDING
    held = await checkout.get_payment(ENV, payment.id)
    assert held.status is PaymentStatus.SUCCEEDED
    assert str(held.amount_refunded) == "0.00"
    assert str(held.refundable) == "110.00"
    # The amount in flight is reserved: no refund may take it twice.
    too_much = await error_of(checkout.refund_payment(ENV, payment.id, {"amount": "110.01"}))
    assert too_much.code == "refund_exceeds_payment"

    clock.advance(timedelta(seconds=1))
    report = await checkout.reconcile(older_than=timedelta(0))

    assert report.refunds_settled == 1
    [settled] = await checkout.list_refunds(ENV, payment.id)
    assert settled.status is RefundStatus.SUCCEEDED
    after = await checkout.get_payment(ENV, payment.id)
    assert after.status is PaymentStatus.PARTIALLY_REFUNDED
    assert str(after.amount_refunded) == "40.00"
    assert str(after.refundable) == "110.00"
    [gateway_refund] = await sandbox(checkout).store.all("refund")
    assert gateway_refund["amount"] == 4000
    assert settled.gateway_refund_id == gateway_refund["id"]


async def test_concurrent_refunds_never_return_more_than_the_payment(
    checkout: CardCheckout,
) -> None:
    payment = await paid_by_card(checkout)
    hold = HeldGateway("refund")
    sandbox(checkout).faults = hold  # type: ignore[assignment]

    first = asyncio.create_task(checkout.refund_payment(ENV, payment.id, {"amount": "100.00"}))
    await hold.started.wait()
    error = await error_of(checkout.refund_payment(ENV, payment.id, {"amount": "100.00"}))
    hold.release.set()
    refund = await first

    assert error.code == "refund_exceeds_payment"
    assert error.details["expected"] == "at most 50.00"
    assert refund.status is RefundStatus.SUCCEEDED
    after = await checkout.get_payment(ENV, payment.id)
    assert str(after.amount_refunded) == "100.00"
    assert [r["amount"] for r in await sandbox(checkout).store.all("refund")] == [10000]


async def test_refund_updated_event_settles_a_pending_refund_once(
    checkout: CardCheckout, clock: ManualClock, faults: SandboxFaults
) -> None:
    payment = await paid_by_card(checkout)
    faults.schedule("refund", Fault.TIMEOUT_AFTER)
    pending = await checkout.refund_payment(ENV, payment.id, {"amount": "40.00"})
    [gateway_refund] = await sandbox(checkout).store.all("refund")
    event = GatewayEvent(
        id="evt_refund_updated_1",
        type=GatewayEventType.REFUND_UPDATED,
        created_at=clock.now(),
        metadata=gateway_refund["metadata"],
        refund=GatewayRefund(id=gateway_refund["id"], outcome=RefundOutcome.SUCCEEDED),
    )

    await checkout.handle_gateway_event(event)
    await checkout.handle_gateway_event(event)

    [settled] = await checkout.list_refunds(ENV, payment.id)
    assert settled.id == pending.id
    assert settled.status is RefundStatus.SUCCEEDED
    assert settled.gateway_refund_id == gateway_refund["id"]
    after = await checkout.get_payment(ENV, payment.id)
    assert after.status is PaymentStatus.PARTIALLY_REFUNDED
    assert str(after.amount_refunded) == "40.00"
    assert str(after.refundable) == "110.00"
    assert str((await checkout.get_invoice(ENV, payment.invoice_id)).amount_refunded) == "40.00"
    assert len(notifier(checkout).of_type("payment.partially_refunded")) == 1


async def test_isk_is_charged_and_refunded_as_stripe_expects(checkout: CardCheckout) -> None:
    payment = await paid_by_card(checkout, "1500", "isk")

    refund = await checkout.refund_payment(ENV, payment.id, {"amount": "500"})

    assert str(payment.amount) == "1500"
    [charge] = await sandbox(checkout).charges_for(payment.id)
    assert charge["amount"] == 150000
    assert str(refund.amount) == "500"
    [gateway_refund] = await sandbox(checkout).store.all("refund")
    assert gateway_refund["amount"] == 50000


@pytest.mark.parametrize(
    ("amount", "currency", "refund", "units", "remaining"),
    [
        pytest.param("1500", "jpy", "500", 500, "1000", id="jpy"),
        pytest.param("1.250", "kwd", "0.250", 250, "1.000", id="kwd"),
    ],
)
async def test_refunds_in_zero_and_three_decimal_currencies(
    checkout: CardCheckout, amount: str, currency: str, refund: str, units: int, remaining: str
) -> None:
    payment = await paid_by_card(checkout, amount, currency)

    partial = await checkout.refund_payment(ENV, payment.id, {"amount": refund})

    assert str(partial.amount) == refund
    after = await checkout.get_payment(ENV, payment.id)
    assert str(after.amount_refunded) == refund
    assert str(after.refundable) == remaining
    [gateway_refund] = await sandbox(checkout).store.all("refund")
    assert gateway_refund["amount"] == units
    rest = await checkout.refund_payment(ENV, payment.id)
    assert str(rest.amount) == remaining
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.REFUNDED
    assert str((await checkout.get_invoice(ENV, payment.invoice_id)).amount_refunded) == amount


async def test_refunded_invoice_cannot_be_paid_again(checkout: CardCheckout) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    await checkout.refund_payment(ENV, payment.id)

    error = await error_of(checkout.create_payment(ENV, card_payment(invoice)))

    assert error.code == "invoice_already_paid"
    assert len(await sandbox(checkout).succeeded_charges()) == 1


async def test_expired_card_customer_may_pay_by_link_and_save_a_new_default(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout, EXPIRED)
    invoice = await finalized_invoice(checkout, customer)
    failed = await error_of(checkout.create_payment(ENV, card_payment(invoice)))
    assert failed.details["next_action"] == "update_payment_method"

    link = await checkout.create_payment(ENV, payment_link(invoice))
    await checkout.complete_sandbox_checkout(session_id(link), VISA)

    assert (await checkout.get_payment(ENV, link.id)).status is PaymentStatus.SUCCEEDED
    cards = {c.last4: c.is_default for c in await checkout.list_payment_methods(ENV, customer.id)}
    assert cards == {"0069": False, "4242": True}
