"""Recording what happened to a payment: its moves, their events and notifications, and
what the gateway answered, with the invoice reconciled in the same transaction."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Final

import attrs

from core.errors import CheckoutError, GatewayError, ServiceUnavailable
from core.gateway import (
    ChargeResult,
    ChargeStatus,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionStatus,
    GatewayUnavailable,
)
from core.model import (
    NOTIFICATION_FOR_STATUS,
    Actor,
    ChargeDetails,
    Failure,
    Invoice,
    InvoicePaymentStatus,
    Notification,
    NotificationType,
    Payment,
    PaymentEvent,
    PaymentStatus,
)
from core.ports import UnitOfWork
from core.usecases.common import Deps, invoice_of

# What the gateway said about a payment in flight; None when its answer is unknown.
GatewayAnswer = ChargeResult | CheckoutSession | Failure | None

CHECKOUT_EXPIRED: Final = "checkout_expired"


async def gateway_answer(call: Awaitable[ChargeResult | CheckoutSession]) -> GatewayAnswer:
    """A gateway call's answer: a refusal as a failure, None when the outcome is unknown
    (the gateway did not answer, or storage failed under it: the call may have gone
    through)."""
    try:
        return await call
    except (GatewayUnavailable, ServiceUnavailable):
        return None
    except CheckoutError as error:
        return Failure(code=GatewayError.code, message=error.message)


def outcome(payment: Payment) -> Payment:
    """Return the payment, or raise the error that says why it failed."""
    failed = payment.failure_error()
    if failed is not None:
        raise failed
    return payment


async def move(deps: Deps, uow: UnitOfWork, moved: tuple[Payment, PaymentEvent]) -> Payment:
    """Store a payment's move (as `Payment.transition` made it) with its event and
    notification."""
    payment, event = moved
    await uow.payments.update(payment)
    await record_event(deps, uow, payment, event)
    return payment


async def record_event(deps: Deps, uow: UnitOfWork, payment: Payment, event: PaymentEvent) -> None:
    await uow.payments.add_event(event)
    await notify(
        deps,
        uow,
        NOTIFICATION_FOR_STATUS[event.to_status],
        payment.environment_id,
        event.occurred_at,
        payment_id=payment.id,
        invoice_id=payment.invoice_id,
        customer_id=payment.customer_id,
        payment_status=payment.status.value,
        amount=str(payment.amount),
        currency=payment.currency.code,
        amount_refunded=str(payment.amount_refunded),
        error_code=payment.failure.code if payment.failure else None,
    )


async def notify(
    deps: Deps,
    uow: UnitOfWork,
    kind: NotificationType,
    environment_id: str,
    at: datetime,
    **data: str | None,
) -> None:
    """Queue a notification of a change made `at` (in this transaction's outbox)."""
    await uow.outbox.add(
        Notification(
            id=deps.ids.new_id("evt"),
            environment_id=environment_id,
            type=kind,
            occurred_at=at,
            data=data,
        )
    )


async def settle(
    deps: Deps,
    uow: UnitOfWork,
    payment: Payment,
    reason: str,
    actor: Actor,
    *,
    failure: Failure | None = None,
    details: ChargeDetails | None = None,
    invoice: Invoice | None = None,
) -> Payment:
    """Succeed (no `failure`) or fail a payment, and reconcile its invoice in the same
    transaction. `invoice`: the payment's invoice if this transaction already holds it."""
    target = PaymentStatus.SUCCEEDED if failure is None else PaymentStatus.FAILED
    at = deps.clock.now()
    moved = await move(
        deps,
        uow,
        payment.transition(
            target, at=at, reason=reason, actor=actor, details=details, failure=failure
        ),
    )
    invoice = invoice or await invoice_of(
        uow, payment.environment_id, payment.invoice_id, for_update=True
    )
    now = moved.updated_at  # the invoice changes at the same moment as its payment
    if failure is not None:
        await uow.invoices.update(invoice.with_payment_status(InvoicePaymentStatus.FAILED, now))
        return moved
    paid = invoice.record_payment(moved.amount, now)
    await uow.invoices.update(paid)
    await notify(
        deps,
        uow,
        NotificationType.INVOICE_PAID,
        paid.environment_id,
        now,
        invoice_id=paid.id,
        payment_id=moved.id,
        customer_id=paid.customer_id,
        amount_paid=str(paid.amount_paid),
        currency=paid.currency.code,
    )
    return moved


async def apply_answer(
    deps: Deps,
    uow: UnitOfWork,
    payment: Payment,
    answer: GatewayAnswer,
    actor: Actor,
    *,
    invoice: Invoice | None = None,
) -> Payment:
    """Record what the gateway said about a payment in flight (None: it said nothing)."""
    if isinstance(answer, CheckoutSession):
        if payment.status is PaymentStatus.PROCESSING and payment.gateway_tracking_id is None:
            payment = payment.with_checkout(answer.id, answer.url, deps.clock.now())
            await uow.payments.update(payment)
        return await apply_session(deps, uow, payment, answer, actor)
    if answer is not None:
        return await apply_charge(deps, uow, payment, answer, actor, invoice=invoice)
    return payment


async def apply_charge(
    deps: Deps,
    uow: UnitOfWork,
    payment: Payment,
    result: ChargeResult | Failure,
    actor: Actor,
    *,
    invoice: Invoice | None = None,
) -> Payment:
    """Record a definite answer from the gateway; a payment never moves backwards."""
    if payment.status is not PaymentStatus.PROCESSING:
        return payment
    if isinstance(result, Failure):
        result = ChargeResult(status=ChargeStatus.FAILED, failure=result)
    if result.status is ChargeStatus.SUCCEEDED:
        return await settle(deps, uow, payment, "charge succeeded", actor, details=result,
                            invoice=invoice)  # fmt: skip
    if result.status is ChargeStatus.FAILED:
        failure = result.failure or Failure(GatewayError.code, "The charge failed.")
        return await settle(
            deps,
            uow,
            payment,
            f"charge failed: {failure.code}",
            actor,
            failure=failure,
            details=result,
            invoice=invoice,
        )
    known = payment.with_details(result, deps.clock.now())
    if known is not payment:
        await uow.payments.update(known)
    return known


async def apply_session(
    deps: Deps, uow: UnitOfWork, payment: Payment, session: CheckoutSession, actor: Actor
) -> Payment:
    if session.mode is not CheckoutMode.PAYMENT:
        return payment
    if session.status is CheckoutSessionStatus.COMPLETE and session.paid:
        charge = session.charge or ChargeResult(status=ChargeStatus.SUCCEEDED)
        paid = attrs.evolve(charge, status=ChargeStatus.SUCCEEDED)
        return await apply_charge(deps, uow, payment, paid, actor)
    if session.status is CheckoutSessionStatus.EXPIRED:
        expired = Failure(CHECKOUT_EXPIRED, "The payment link expired before it was paid.")
        return await apply_charge(deps, uow, payment, expired, actor)
    return payment
