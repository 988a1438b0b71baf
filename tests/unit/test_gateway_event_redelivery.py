"""A gateway event is applied once: a redelivered card setup never brings an older card back."""

from __future__ import annotations

from core.gateway import GatewayEvent, GatewayEventType
from core.model import PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, EXPIRED, VISA, card_payment, finalized_invoice


async def _save_card(checkout: CardCheckout, customer_id: str, card: str) -> GatewayEvent:
    """The customer saves `card` on a setup page; returns the event the gateway sent for it."""
    setup = await checkout.setup_card(ENV, customer_id)
    event = await checkout.complete_sandbox_checkout(setup.id, card)
    assert event.type is GatewayEventType.CHECKOUT_COMPLETED
    return event


def _card_saved_by(event: GatewayEvent) -> str:
    assert event.session is not None
    assert event.session.charge is not None
    card = event.session.charge.payment_method_id
    assert card is not None
    return card


async def _default_card(checkout: CardCheckout, customer_id: str) -> str:
    cards = await checkout.list_payment_methods(ENV, customer_id)
    defaults = [card.id for card in cards if card.is_default]
    assert len(defaults) == 1, cards
    return defaults[0]


async def test_a_redelivered_card_setup_event_leaves_the_newer_card_the_default(
    checkout: CardCheckout,
) -> None:
    customer = await checkout.create_customer(ENV, {"external_id": "redelivery"})
    first = await _save_card(checkout, customer.id, EXPIRED)  # card A, event E1
    card_a = _card_saved_by(first)
    assert await _default_card(checkout, customer.id) == card_a
    second = await _save_card(checkout, customer.id, VISA)  # card B, event E2
    card_b = _card_saved_by(second)
    assert card_b != card_a
    assert await _default_card(checkout, customer.id) == card_b

    # The gateway delivers E1 again (same event id), as webhooks may.
    await checkout.handle_gateway_event(first)

    assert await _default_card(checkout, customer.id) == card_b
    # And a card payment charges B (A would be declined as expired).
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.payment_method_id == card_b
    assert payment.status is PaymentStatus.SUCCEEDED


async def test_every_redelivery_of_an_applied_event_changes_nothing(
    checkout: CardCheckout,
) -> None:
    customer = await checkout.create_customer(ENV, {"external_id": "redelivered-twice"})
    first = await _save_card(checkout, customer.id, VISA)
    second = await _save_card(checkout, customer.id, VISA)
    newest = _card_saved_by(second)
    for event in (first, first, second, first):
        await checkout.handle_gateway_event(event)
        assert await _default_card(checkout, customer.id) == newest
