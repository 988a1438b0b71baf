"""Refunds: all or part of a succeeded payment, never more than was paid."""

from __future__ import annotations

from core.commands import RefundPayment
from core.errors import (
    CheckoutError,
    GatewayError,
    InvalidStateTransition,
    RefundExceedsPayment,
    ServiceUnavailable,
)
from core.gateway import (
    GatewayFailure,
    GatewayRefund,
    GatewayUnavailable,
    RefundOutcome,
    RefundRequest,
)
from core.lists import FIRST_PAGE, Window, window_of
from core.model import Actor, Failure, PaymentStatus, Refund, RefundStatus
from core.money import Money
from core.ports import Page, PaymentGateway, UnitOfWork
from core.usecases.common import Deps, invoice_of, of_payment, payment_of, refund_of, transaction
from core.usecases.idempotency import Answer, Idempotency, idempotent
from core.usecases.recording import move


async def refund_payment(
    deps: Deps, environment_id: str, command: RefundPayment, idempotency_key: str | None = None
) -> Answer[Refund]:
    """Reserve the amount, ask the gateway with no transaction open, record its answer."""

    async def run(idempotency: Idempotency) -> Refund:
        gateway = await deps.gateways.for_environment(environment_id)

        async def reserve(uow: UnitOfWork) -> Refund:
            refund_id = deps.ids.new_id("re")
            await idempotency.claim(uow, about=refund_id)
            payment = await payment_of(uow, environment_id, command.payment_id, for_update=True)
            if payment.status not in (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED):
                raise InvalidStateTransition(
                    f"Only a succeeded payment can be refunded; this one is "
                    f"{payment.status.value}.",
                    payment_id=payment.id,
                    actual=payment.status.value,
                )
            amount = payment.refundable
            if command.amount is not None:
                amount = Money.of(command.amount, payment.currency)
            if amount > payment.refundable or not amount.is_positive:
                raise RefundExceedsPayment(
                    payment_id=payment.id,
                    field="amount",
                    expected=f"at most {payment.refundable}",
                    actual=str(amount),
                )
            now = deps.clock.now()
            refund = Refund(
                id=refund_id,
                environment_id=environment_id,
                payment_id=payment.id,
                invoice_id=payment.invoice_id,
                amount=amount,
                status=RefundStatus.PENDING,
                reason=command.reason,
                created_at=now,
                updated_at=now,
            )
            await uow.refunds.add(refund)
            reserved = payment.refund_reserved + amount
            await uow.payments.update(payment.with_refund_reserved(reserved, now))
            await uow.commit()
            return refund

        refund = await transaction(deps, reserve)
        answer = await send_refund(deps, gateway, refund)
        if answer is None and not idempotency.keyed:
            return refund

        async def record(uow: UnitOfWork) -> Refund:
            current = await refund_of(uow, environment_id, refund.id)
            if answer is not None:
                current = await apply_refund(deps, uow, current, answer, Actor.API)
            await idempotency.finish(uow, current)
            await uow.commit()
            return current

        return _outcome(await transaction(deps, record))

    request = (environment_id, "refund_payment", command.fingerprint)
    return await idempotent(deps, idempotency_key, request, Refund, run)


def _outcome(refund: Refund) -> Refund:
    failed = refund.failure_error()
    if failed is not None:
        raise failed
    return refund


async def send_refund(deps: Deps, gateway: PaymentGateway, refund: Refund) -> GatewayRefund | None:
    """Ask the gateway for the refund (again: its key never refunds twice); None: unknown."""
    async with deps.uow(read_only=True) as uow:
        payment = await payment_of(uow, refund.environment_id, refund.payment_id)
    assert payment.gateway_tracking_id is not None, "a succeeded payment has its charge id"
    try:
        return await gateway.refund(
            RefundRequest(
                intent_id=payment.gateway_tracking_id,
                amount=refund.amount,
                idempotency_key=refund.idempotency_key,
                reason=refund.reason,
                metadata={
                    "refund_id": refund.id,
                    "payment_id": payment.id,
                    "environment_id": payment.environment_id,
                },
            )
        )
    except (GatewayUnavailable, ServiceUnavailable):
        return None  # it may have gone through: unknown, never a refusal
    except CheckoutError as error:
        return GatewayRefund(
            id="",
            outcome=RefundOutcome.FAILED,
            failure=GatewayFailure(GatewayError.code, error.message),
        )


async def apply_refund(
    deps: Deps, uow: UnitOfWork, refund: Refund, answer: GatewayRefund, actor: Actor
) -> Refund:
    """Record the gateway's answer: release the reservation, or refund the payment and its
    invoice. A settled refund only learns its gateway id."""
    if refund.status is not RefundStatus.PENDING or answer.outcome is RefundOutcome.PENDING:
        if answer.id and refund.gateway_refund_id is None:
            refund = refund.with_gateway_id(answer.id)
            await uow.refunds.update(refund)
        return refund
    now = deps.clock.now()
    payment = await payment_of(uow, refund.environment_id, refund.payment_id, for_update=True)
    released = payment.refund_reserved - refund.amount
    if answer.outcome is RefundOutcome.FAILED:
        failure = answer.failure or GatewayFailure(GatewayError.code, "The refund failed.")
        settled = refund.settled(
            RefundStatus.FAILED,
            at=now,
            gateway_refund_id=answer.id or None,
            failure=Failure(failure.code, failure.message, failure.gateway_code),
        )
        await uow.refunds.update(settled)
        await uow.payments.update(payment.with_refund_reserved(released, now))
        return settled
    settled = refund.settled(RefundStatus.SUCCEEDED, at=now, gateway_refund_id=answer.id)
    await uow.refunds.update(settled)
    refunded = payment.amount_refunded + refund.amount
    fully = refunded == payment.amount
    target = PaymentStatus.REFUNDED if fully else PaymentStatus.PARTIALLY_REFUNDED
    reason = f"refund {refund.id} of {refund.amount}"
    refunding = payment.transition(
        target,
        at=now,
        reason=reason,
        actor=actor,
        amount_refunded=refunded,
        refund_reserved=released,
    )
    await move(deps, uow, refunding)
    invoice = await invoice_of(uow, refund.environment_id, refund.invoice_id, for_update=True)
    await uow.invoices.update(invoice.record_refund(refund.amount, fully_refunded=fully, at=now))
    return settled


async def get_refund(deps: Deps, environment_id: str, refund_id: str) -> Refund:
    return await deps.read(lambda uow: refund_of(uow, environment_id, refund_id))


async def list_refunds(
    deps: Deps, environment_id: str, payment_id: str, window: Window = FIRST_PAGE
) -> Page[Refund]:
    """The payment's refunds, oldest first."""
    refunds = await of_payment(
        deps,
        environment_id,
        payment_id,
        lambda uow: uow.refunds.for_payment(environment_id, payment_id),
    )
    return window_of(refunds, window, lambda refund: refund.id)
