"""Gateway events (webhooks): each applied once, never moving a payment backwards."""

from __future__ import annotations

from core.gateway import CheckoutMode, CheckoutSession, CheckoutSessionStatus, GatewayEvent
from core.gateway import GatewayEventType as Kind
from core.model import Actor, Payment
from core.ports import UnitOfWork
from core.usecases.common import Deps, gateway_call, transaction
from core.usecases.recording import apply_charge, apply_session
from core.usecases.refunds import apply_refund


async def handle_gateway_event(deps: Deps, event: GatewayEvent) -> bool:
    """Apply a verified gateway event exactly once.

    Returns False when the event names nothing this service knows (it is still recorded,
    so a repeat is not looked at again).
    """
    async with deps.uow(read_only=True) as uow:
        if await uow.gateway_events.seen(event.id):
            return True
    if event.type is Kind.CHECKOUT_COMPLETED and event.session is not None:
        await make_saved_card_default(deps, event.session)

    async def apply(uow: UnitOfWork) -> bool:
        if await uow.gateway_events.seen(event.id):
            return True
        known = await _apply(deps, uow, event)
        await uow.gateway_events.add(event.id, event.type.value, deps.clock.now())
        await uow.commit()
        return known

    return await transaction(deps, apply)


async def make_saved_card_default(deps: Deps, session: CheckoutSession) -> None:
    """A completed setup page, or a paid link asked to save its card: make it the default.

    Idempotent at the gateway, so a repeated event or reconciliation may do it again.
    """
    card = session.charge.payment_method_id if session.charge else None
    saves = session.mode is CheckoutMode.SETUP or session.save_card_and_make_default
    if card and saves and session.status is CheckoutSessionStatus.COMPLETE:
        await gateway_call(deps.gateway.set_default_payment_method(session.gateway_customer_id,
                                                                   card))  # fmt: skip


async def _apply(deps: Deps, uow: UnitOfWork, event: GatewayEvent) -> bool:
    """Apply the event to what it names; False when it names nothing known here."""
    if event.type is Kind.REFUND_UPDATED:
        refund_id = event.metadata.get("refund_id")
        environment_id = event.metadata.get("environment_id")
        if event.refund is None or refund_id is None or environment_id is None:
            return False
        refund = await uow.refunds.get(environment_id, refund_id)
        if refund is not None:
            await apply_refund(deps, uow, refund, event.refund, Actor.WEBHOOK)
        return refund is not None
    payment = await _payment_named(uow, event)
    if payment is None:
        # A completed card setup names no payment: the card was made the default above.
        return event.session is not None and event.session.mode is CheckoutMode.SETUP
    if event.type in (Kind.PAYMENT_SUCCEEDED, Kind.PAYMENT_FAILED):
        if event.charge is not None:
            await apply_charge(deps, uow, payment, event.charge, Actor.WEBHOOK)
    elif event.session is not None and event.type in (Kind.CHECKOUT_COMPLETED,
                                                      Kind.CHECKOUT_EXPIRED):  # fmt: skip
        await apply_session(deps, uow, payment, event.session, Actor.WEBHOOK)
    return True


async def _payment_named(uow: UnitOfWork, event: GatewayEvent) -> Payment | None:
    payment_id = event.metadata.get("payment_id")
    environment_id = event.metadata.get("environment_id")
    if payment_id and environment_id:
        return await uow.payments.get(environment_id, payment_id, for_update=True)
    tracking = (event.charge.intent_id if event.charge else None) or (
        event.session.id if event.session else None
    )
    return await uow.payments.get_by_tracking_id(tracking) if tracking else None
