"""Reconciliation: ask the gateway about payments and refunds left in flight."""

from __future__ import annotations

from datetime import timedelta

import attrs

from core.gateway import CheckoutSession, GatewayFailure, GatewayRefund, RefundOutcome
from core.model import Actor, Payment, PaymentMethodType, PaymentStatus, Refund
from core.ports import UnitOfWork
from core.usecases.charging import charge_request, open_payment_link
from core.usecases.common import Deps, customer_of, payment_of, refund_of, transaction
from core.usecases.gateway_events import make_saved_card_default
from core.usecases.recording import GatewayAnswer, apply_answer, gateway_answer
from core.usecases.refunds import apply_refund, send_refund


@attrs.frozen
class ReconcileReport:
    """What a reconciliation pass did; `unresolved` still needs the gateway (or a person)."""

    examined: int = 0
    succeeded: int = 0
    failed: int = 0
    refunds_settled: int = 0
    unresolved: tuple[str, ...] = ()
    needs_attention: tuple[str, ...] = ()


async def reconcile(
    deps: Deps, *, older_than: timedelta = timedelta(seconds=30), limit: int = 100
) -> ReconcileReport:
    """Ask the gateway about payments and refunds left in flight; apply definite answers."""
    now = deps.clock.now()
    async with deps.uow(read_only=True) as uow:
        stuck = await uow.payments.processing(now - older_than, limit)
        pending_refunds = await uow.refunds.pending(now - older_than, limit)
    succeeded = failed = refunds_settled = 0
    unresolved: list[str] = []
    attention: list[str] = []
    for payment in stuck:
        settled = await _reconcile_payment(deps, payment)
        if settled is PaymentStatus.SUCCEEDED:
            succeeded += 1
        elif settled is PaymentStatus.FAILED:
            failed += 1
        else:
            unresolved.append(payment.id)
            card = payment.method_type is PaymentMethodType.CARD
            if card and now - payment.updated_at >= deps.policies.attention_after:
                attention.append(payment.id)
    for refund in pending_refunds:
        if await _reconcile_refund(deps, refund):
            refunds_settled += 1
        else:
            unresolved.append(refund.id)
    return ReconcileReport(
        examined=len(stuck) + len(pending_refunds),
        succeeded=succeeded,
        failed=failed,
        refunds_settled=refunds_settled,
        unresolved=tuple(unresolved),
        needs_attention=tuple(attention),
    )


async def _reconcile_payment(deps: Deps, payment: Payment) -> PaymentStatus | None:
    """Settle one `processing` payment if the gateway knows its outcome."""
    answer: GatewayAnswer
    if payment.method_type is PaymentMethodType.PAYMENT_LINK and payment.gateway_tracking_id:
        answer = await gateway_answer(
            deps.gateway.get_checkout_session(payment.gateway_tracking_id)
        )
    else:
        async with deps.uow(read_only=True) as uow:
            customer = await customer_of(uow, payment.environment_id, payment.customer_id)
        if payment.method_type is PaymentMethodType.PAYMENT_LINK:
            answer = await open_payment_link(deps, payment, customer)
        else:
            answer = await gateway_answer(
                deps.gateway.find_charge(
                    charge_request(payment, customer), payment.gateway_tracking_id
                )
            )
    if answer is None or isinstance(answer, GatewayFailure):
        return None  # a look-up that failed says nothing about the payment
    if isinstance(answer, CheckoutSession):
        await make_saved_card_default(deps, answer)

    async def record(uow: UnitOfWork) -> Payment:
        current = await payment_of(uow, payment.environment_id, payment.id, for_update=True)
        current = await apply_answer(deps, uow, current, answer, Actor.RECONCILER)
        await uow.commit()
        return current

    settled = await transaction(deps, record)
    return settled.status if settled.status is not PaymentStatus.PROCESSING else None


async def _reconcile_refund(deps: Deps, refund: Refund) -> bool:
    """Settle one pending refund if the gateway knows its outcome."""
    answer = await send_refund(deps, refund)
    if answer is None or answer.outcome is RefundOutcome.PENDING:
        return False

    async def record(uow: UnitOfWork, answer: GatewayRefund = answer) -> None:
        current = await refund_of(uow, refund.environment_id, refund.id)
        await apply_refund(deps, uow, current, answer, Actor.RECONCILER)
        await uow.commit()

    await transaction(deps, record)
    return True
