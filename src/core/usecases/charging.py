"""Charging a recorded payment: pick the card, move to `processing`, call the gateway with no
transaction open, then record its answer."""

from __future__ import annotations

from core.errors import (
    NoDefaultPaymentMethod,
    PaymentFailed,
    PaymentMethodNotFound,
    ServiceUnavailable,
)
from core.gateway import (
    ChargeRequest,
    CheckoutMode,
    CheckoutSessionRequest,
    GatewayPaymentMethod,
)
from core.model import (
    Actor,
    ChargeDetails,
    Customer,
    Failure,
    Invoice,
    InvoicePaymentStatus,
    Payment,
    PaymentMethodType,
    PaymentStatus,
)
from core.ports import PaymentGateway, UnitOfWork
from core.usecases.common import Deps, gateway_call, gateway_customer_id, optimistic, payment_of
from core.usecases.idempotency import Idempotency
from core.usecases.recording import (
    GatewayAnswer,
    apply_answer,
    gateway_answer,
    move,
    outcome,
    settle,
)


async def select_card(
    gateway: PaymentGateway, customer: Customer, payment_method_id: str | None
) -> GatewayPaymentMethod | PaymentFailed:
    """The card to charge (given, or the customer's default), or why there is none."""
    gateway_customer = await gateway_call(gateway.get_customer(gateway_customer_id(customer)))
    if payment_method_id is None:
        card = gateway_customer.default_payment_method
        return card if card is not None else NoDefaultPaymentMethod(customer_id=customer.id)
    card = await gateway_call(gateway.get_payment_method(gateway_customer.id, payment_method_id))
    if card is None:
        return PaymentMethodNotFound(customer_id=customer.id, payment_method_id=payment_method_id)
    return card


async def begin_processing(
    deps: Deps,
    uow: UnitOfWork,
    payment: Payment,
    invoice: Invoice,
    card: GatewayPaymentMethod | PaymentFailed | None,
) -> tuple[Payment, Invoice | None]:
    """Within the first transaction: move to `processing` before any charge, or fail.
    Returns the payment and, when it is processing, its invoice as this transaction
    leaves it."""
    if isinstance(card, PaymentFailed):
        failure = Failure(code=card.code, message=card.message)
        failed = await settle(deps, uow, payment, "no usable card", Actor.API, failure=failure,
                              invoice=invoice)  # fmt: skip
        return failed, None
    details = None
    if card is not None:
        details = ChargeDetails(
            payment_method_id=card.id, card_brand=card.brand, card_last4=card.last4
        )
    started = payment.transition(
        PaymentStatus.PROCESSING,
        at=deps.clock.now(),
        reason="charge started",
        actor=Actor.API,
        details=details,
    )
    moved = await move(deps, uow, started)
    processing = invoice.with_payment_status(InvoicePaymentStatus.PROCESSING, moved.updated_at)
    await uow.invoices.update(processing)
    return moved, processing


async def charge_recorded(
    deps: Deps,
    gateway: PaymentGateway,
    payment: Payment,
    customer: Customer,
    idempotency: Idempotency,
    invoice: Invoice | None,
) -> Payment:
    """Charge (or open the hosted page for) a payment just moved to `processing`.

    The answer is recorded over the payment and invoice as the first transaction left them:
    their versioned updates fail if anything (a webhook, the reconciler) changed them since,
    and the work is then re-run on fresh reads."""
    if payment.status is not PaymentStatus.PROCESSING:
        return outcome(payment)
    if payment.method_type is PaymentMethodType.PAYMENT_LINK:
        answer = await open_payment_link(gateway, payment, customer)
    else:
        answer = await gateway_answer(gateway.charge(charge_request(payment, customer)))
    if answer is None and not idempotency.keyed:
        return payment

    async def record(uow: UnitOfWork, known: tuple[Payment, Invoice | None] | None) -> Payment:
        current, held_invoice = known or (
            await payment_of(uow, payment.environment_id, payment.id, for_update=True),
            None,
        )
        current = await apply_answer(deps, uow, current, answer, Actor.API, invoice=held_invoice)
        await idempotency.finish(uow, current)
        await uow.commit()
        return current

    try:
        recorded = await optimistic(deps, (payment, invoice), record)
    except ServiceUnavailable:
        # The payment is recorded as `processing`: that is the answer the caller can still
        # get, with its id; reconciliation (or the gateway's event) settles it.
        return payment
    return outcome(recorded)


async def open_payment_link(
    gateway: PaymentGateway, payment: Payment, customer: Customer
) -> GatewayAnswer:
    return await gateway_answer(
        gateway.create_checkout_session(checkout_request(payment, customer))
    )


def charge_request(payment: Payment, customer: Customer) -> ChargeRequest:
    assert payment.payment_method_id is not None, "a processing card payment has a card"
    return ChargeRequest(
        amount=payment.amount,
        gateway_customer_id=gateway_customer_id(customer),
        payment_method_id=payment.payment_method_id,
        idempotency_key=payment.charge_idempotency_key,
        metadata=gateway_metadata(payment),
    )


def checkout_request(payment: Payment, customer: Customer) -> CheckoutSessionRequest:
    return CheckoutSessionRequest(
        mode=CheckoutMode.PAYMENT,
        gateway_customer_id=gateway_customer_id(customer),
        idempotency_key=f"{payment.id}:checkout",
        amount=payment.amount,
        save_card_and_make_default=payment.save_card_and_make_default,
        success_url=payment.success_url,
        cancel_url=payment.cancel_url,
        metadata=gateway_metadata(payment),
    )


def gateway_metadata(payment: Payment) -> dict[str, str]:
    return {
        "payment_id": payment.id,
        "invoice_id": payment.invoice_id,
        "environment_id": payment.environment_id,
    }
