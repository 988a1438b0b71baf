"""A gateway event is applied only to objects of the environment it was delivered for."""

from __future__ import annotations

from adapters.clock import ManualClock
from core.gateway import (
    ChargeResult,
    ChargeStatus,
    CheckoutMode,
    CheckoutSession,
    CheckoutSessionRequest,
    CheckoutSessionStatus,
    GatewayEvent,
    GatewayEventType,
)
from core.model import InvoicePaymentStatus, Payment, PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    DECLINED,
    ENV,
    OTHER_ENV,
    VISA,
    customer_with_card,
    finalized_invoice,
    sandbox,
)
from tests.unit.test_payment_links_and_refunds import payment_link, session_id


async def _link_in_processing(checkout: CardCheckout, env: str = ENV) -> Payment:
    customer = await customer_with_card(checkout, None, env=env)
    invoice = await finalized_invoice(checkout, customer, env=env)
    link = await checkout.create_payment(env, payment_link(invoice))
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


async def test_an_event_id_seen_in_one_environment_still_applies_in_another(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    """Event ids are per environment: one environment's events (even forged, signed with its
    own secret) never keep another's with the same id from applying."""
    links = {env: await _link_in_processing(checkout, env) for env in (ENV, OTHER_ENV)}
    for env, link in links.items():
        assert await checkout.handle_gateway_event(
            _completed(link, clock, {}, "evt_same_id"), environment_id=env
        )
        assert (await checkout.get_payment(env, link.id)).status is PaymentStatus.SUCCEEDED


async def test_an_event_that_named_nothing_in_one_environment_applies_in_its_own(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    """One account's event reaches every environment's URL: recorded where it names nothing,
    it is still applied where it does."""
    link = await _link_in_processing(checkout, OTHER_ENV)
    shared = _completed(link, clock, {}, "evt_to_every_url")

    assert not await checkout.handle_gateway_event(shared, environment_id=ENV)
    assert await checkout.handle_gateway_event(shared, environment_id=OTHER_ENV)

    assert (await checkout.get_payment(OTHER_ENV, link.id)).status is PaymentStatus.SUCCEEDED


async def test_a_card_setup_naming_no_environment_sets_no_default_of_another_environment(
    checkout: CardCheckout,
) -> None:
    victim = await customer_with_card(checkout, VISA)  # in ENV: VISA is the default
    assert victim.gateway_customer_id is not None
    gateway = sandbox(checkout)

    async def default_card() -> str | None:
        assert victim.gateway_customer_id is not None
        found = await gateway.get_customer(victim.gateway_customer_id)
        return found.default_payment_method.id if found.default_payment_method else None

    visa = await default_card()
    setup = await gateway.create_checkout_session(
        CheckoutSessionRequest(mode=CheckoutMode.SETUP, idempotency_key="made-elsewhere",
                               gateway_customer_id=victim.gateway_customer_id)
    )  # fmt: skip
    completed = await gateway.complete_checkout_session(setup.id, DECLINED)
    assert completed.session is not None
    assert (completed.metadata, completed.session.metadata) == ({}, {})
    assert completed.session.charge is not None
    saved = completed.session.charge.payment_method_id

    # Signed for OTHER_ENV's URL: its customer is not linked there, so it is ignored.
    handled = await checkout.handle_gateway_event(completed, environment_id=OTHER_ENV)
    assert await default_card() == visa
    assert not handled  # names nothing of OTHER_ENV's (the webhook route logs that)
    # Delivered for the environment that links it, the card becomes the default.
    assert await checkout.handle_gateway_event(completed, environment_id=ENV)
    assert await default_card() == saved != visa
