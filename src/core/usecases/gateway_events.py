"""Gateway events (webhooks): each applied once, never moving a payment backwards."""

from __future__ import annotations

from core.gateway import CheckoutMode, CheckoutSession, CheckoutSessionStatus, GatewayEvent
from core.gateway import GatewayEventType as Kind
from core.model import Actor, Payment
from core.ports import UnitOfWork
from core.usecases.common import Deps, gateway_call, transaction
from core.usecases.recording import apply_charge, apply_session
from core.usecases.refunds import apply_refund


async def handle_gateway_event(deps: Deps, environment_id: str, event: GatewayEvent) -> bool:
    """Apply a verified gateway event exactly once in `environment_id`, to its objects only
    (the environment whose secret verified it). Once per environment: one account's event
    may reach several environments' URLs, and what one has seen never stops another.

    Returns False when the event names nothing this environment knows (it is still recorded
    for it, so a repeat is not looked at again), or names another environment: that one is
    not recorded, so its delivery to its own environment still applies.
    """
    if names_another_environment(event, environment_id):
        return False
    async with deps.uow(read_only=True) as uow:
        if await uow.gateway_events.seen(environment_id, event.id):
            return True
    if event.type is Kind.CHECKOUT_COMPLETED and event.session is not None:
        await make_saved_card_default(deps, environment_id, event.session)

    async def apply(uow: UnitOfWork) -> bool:
        if await uow.gateway_events.seen(environment_id, event.id):
            return True
        known = await _apply(deps, uow, environment_id, event)
        await uow.gateway_events.add(environment_id, event.id, event.type.value, deps.clock.now())
        await uow.commit()
        return known

    return await transaction(deps, apply)


async def make_saved_card_default(
    deps: Deps, environment_id: str, session: CheckoutSession
) -> None:
    """A completed setup page, or a paid link asked to save its card: make it the default,
    if a customer of `environment_id` links the session's gateway customer. Else nothing: a
    session naming no environment may name another environment's customer, whose cards are
    not this one's to change (the event then names nothing here, and is logged as such).

    Idempotent at the gateway, so a repeated event or reconciliation may do it again.
    """
    card = session.charge.payment_method_id if session.charge else None
    saves = session.mode is CheckoutMode.SETUP or session.save_card_and_make_default
    if not (card and saves and session.status is CheckoutSessionStatus.COMPLETE):
        return
    async with deps.uow(read_only=True) as uow:
        if not await _customer_linked_here(uow, environment_id, session):
            return
    gateway = await deps.gateways.for_environment(environment_id)
    await gateway_call(gateway.set_default_payment_method(session.gateway_customer_id, card))


async def _customer_linked_here(
    uow: UnitOfWork, environment_id: str, session: CheckoutSession
) -> bool:
    gateway_id = session.gateway_customer_id
    return await uow.customers.get_by_gateway_customer_id(environment_id, gateway_id) is not None


def names_another_environment(event: GatewayEvent, environment_id: str) -> bool:
    """Whether the gateway object says it belongs to an environment other than this one."""
    named = [event.metadata.get("environment_id")]
    if event.session is not None:
        named.append(event.session.metadata.get("environment_id"))
    return any(name is not None and name != environment_id for name in named)


async def _apply(deps: Deps, uow: UnitOfWork, environment_id: str, event: GatewayEvent) -> bool:
    """Apply the event to what it names in the environment; False when it names nothing
    known there."""
    if event.type is Kind.REFUND_UPDATED:
        refund_id = event.metadata.get("refund_id")
        if event.refund is None or refund_id is None:
            return False
        refund = await uow.refunds.get(environment_id, refund_id)
        if refund is not None:
            await apply_refund(deps, uow, refund, event.refund, Actor.WEBHOOK)
        return refund is not None
    payment = await _payment_named(uow, environment_id, event)
    if payment is None:
        # A card setup names no payment: known if its customer is (whose card was made the
        # default above).
        session = event.session
        if session is None or session.mode is not CheckoutMode.SETUP:
            return False
        return await _customer_linked_here(uow, environment_id, session)
    if event.type in (Kind.PAYMENT_SUCCEEDED, Kind.PAYMENT_FAILED):
        if event.charge is not None:
            await apply_charge(deps, uow, payment, event.charge, Actor.WEBHOOK)
    elif event.session is not None and event.type in (Kind.CHECKOUT_COMPLETED,
                                                      Kind.CHECKOUT_EXPIRED):  # fmt: skip
        await apply_session(deps, uow, payment, event.session, Actor.WEBHOOK)
    return True


async def _payment_named(
    uow: UnitOfWork, environment_id: str, event: GatewayEvent
) -> Payment | None:
    payment_id = event.metadata.get("payment_id")
    if payment_id:
        payment = await uow.payments.get(environment_id, payment_id, for_update=True)
        if payment is not None:
            return payment
    tracking = (event.charge.intent_id if event.charge else None) or (
        event.session.id if event.session else None
    )
    if not tracking:
        return None
    return await uow.payments.get_by_tracking_id(environment_id, tracking)
