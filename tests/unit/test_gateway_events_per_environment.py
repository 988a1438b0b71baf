"""A gateway event is applied only to objects of the environment it was delivered for."""

from __future__ import annotations

from adapters.clock import ManualClock
from core.gateway import (
    ChargeResult,
    ChargeStatus,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionStatus,
    GatewayEvent,
    GatewayEventType,
)
from core.model import InvoicePaymentStatus, Payment, PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, OTHER_ENV, customer_with_card, finalized_invoice
from tests.unit.test_payment_links_and_refunds import payment_link, session_id


async def _link_in_processing(checkout: CardCheckout) -> Payment:
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    assert link.status is PaymentStatus.PROCESSING
    return link


def _completed(
    link: Payment, clock: ManualClock, metadata: dict[str, str], event_id: str = "evt_forged"
) -> GatewayEvent:
    """A `checkout completed` event for the link's session, as a forger would write it."""
    session = CheckoutSession(
        id=session_id(link), url="", mode=CheckoutMode.PAYMENT,
        status=CheckoutSessionStatus.COMPLETE, gateway_customer_id="cus_any", paid=True,
        charge=ChargeResult(status=ChargeStatus.SUCCEEDED, intent_id="pi_made_up",
                            payment_method_id="pm_made_up"),
        metadata=metadata,
    )  # fmt: skip
    return GatewayEvent(
        id=event_id, type=GatewayEventType.CHECKOUT_COMPLETED, created_at=clock.now(),
        metadata=metadata, session=session,
    )  # fmt: skip


async def _unchanged(checkout: CardCheckout, link: Payment) -> None:
    assert await checkout.get_payment(ENV, link.id) == link
    invoice = await checkout.get_invoice(ENV, link.invoice_id)
    assert invoice.payment_status is not InvoicePaymentStatus.SUCCEEDED
    assert str(invoice.amount_paid) == "0.00"


async def test_an_event_for_another_environments_tracking_id_settles_nothing(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    link = await _link_in_processing(checkout)
    for number, metadata in enumerate(({}, {"environment_id": OTHER_ENV})):
        forged = _completed(link, clock, metadata, f"evt_forged_{number}")
        assert not await checkout.handle_gateway_event(forged, environment_id=OTHER_ENV)
        await _unchanged(checkout, link)


async def test_an_event_naming_another_environments_payment_settles_nothing(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    link = await _link_in_processing(checkout)
    names_env_a = {"environment_id": ENV, "payment_id": link.id}
    forged = _completed(link, clock, names_env_a)
    assert not await checkout.handle_gateway_event(forged, environment_id=OTHER_ENV)
    await _unchanged(checkout, link)
    # Not recorded as seen: the same event delivered for its own environment still applies.
    assert await checkout.handle_gateway_event(forged, environment_id=ENV)
    assert (await checkout.get_payment(ENV, link.id)).status is PaymentStatus.SUCCEEDED


async def test_an_expiry_for_another_environments_session_fails_nothing(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    link = await _link_in_processing(checkout)
    completed = _completed(link, clock, {})
    assert completed.session is not None
    expired = GatewayEvent(
        id="evt_forged_expiry", type=GatewayEventType.CHECKOUT_EXPIRED, created_at=clock.now(),
        session=CheckoutSession(id=completed.session.id, url="", mode=CheckoutMode.PAYMENT,
                                status=CheckoutSessionStatus.EXPIRED, gateway_customer_id="c"),
    )  # fmt: skip
    assert not await checkout.handle_gateway_event(expired, environment_id="env_unknown")
    await _unchanged(checkout, link)


async def test_a_charge_event_is_found_by_tracking_id_only_in_its_environment(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    link = await _link_in_processing(checkout)
    charge = GatewayEvent(
        id="evt_forged_charge", type=GatewayEventType.PAYMENT_SUCCEEDED, created_at=clock.now(),
        charge=ChargeResult(status=ChargeStatus.SUCCEEDED, intent_id=session_id(link)),
    )  # fmt: skip
    assert not await checkout.handle_gateway_event(charge, environment_id=OTHER_ENV)
    await _unchanged(checkout, link)
