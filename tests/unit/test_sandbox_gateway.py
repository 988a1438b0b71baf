"""The sandbox gateway: the gateway contract, plus what only a simulation can show."""

from __future__ import annotations

import asyncio

import pytest

from adapters.clock import ManualClock
from adapters.ids import UlidIdGenerator
from adapters.sandbox import Fault, InMemorySandboxStore, SandboxFaults, SandboxPaymentGateway
from core.errors import CardDeclined, GatewayError, ValidationError
from core.gateway import (
    CheckoutMode,
    CheckoutSessionRequest,
    CheckoutSessionStatus,
    GatewayUnavailable,
)
from core.money import Money
from core.ports import PaymentGateway
from tests.gateway_contract import VISA, HostedPagesContract, StripeFidelityContract


def new_sandbox(store: InMemorySandboxStore | None = None) -> SandboxPaymentGateway:
    return SandboxPaymentGateway(
        clock=ManualClock(), ids=UlidIdGenerator(), store=store or InMemorySandboxStore(),
        faults=SandboxFaults(),
    )  # fmt: skip


async def save_card_through_setup_page(
    gateway: SandboxPaymentGateway, customer_id: str, card: str
) -> str:
    session = await gateway.create_checkout_session(
        CheckoutSessionRequest(
            mode=CheckoutMode.SETUP, gateway_customer_id=customer_id,
            idempotency_key=f"setup-{customer_id}-{card}", save_card_and_make_default=True,
        )
    )  # fmt: skip
    event = await gateway.complete_checkout_session(session.id, card)
    assert event.session is not None
    assert event.session.charge is not None
    card_id = event.session.charge.payment_method_id
    assert card_id is not None
    # What the core does on checkout.session.completed in setup mode:
    await gateway.set_default_payment_method(customer_id, card_id)
    return card_id


class TestSandboxGatewayContract(HostedPagesContract, StripeFidelityContract):
    @pytest.fixture
    def gateway(self) -> PaymentGateway:
        return new_sandbox()

    async def save_card(self, gateway: PaymentGateway, customer_id: str, card: str) -> str:
        assert isinstance(gateway, SandboxPaymentGateway)
        return await save_card_through_setup_page(gateway, customer_id, card)


@pytest.fixture
def sandbox() -> SandboxPaymentGateway:
    return new_sandbox()


async def _customer_with_visa(sandbox: SandboxPaymentGateway) -> tuple[str, str]:
    customer = await TestSandboxGatewayContract().new_customer(sandbox)
    return customer, await save_card_through_setup_page(sandbox, customer, VISA)


def _request(customer: str, card: str, key: str, amount: str = "150.00"):  # type: ignore[no-untyped-def]
    return TestSandboxGatewayContract().charge_request(customer, card, key, amount)


async def test_fifty_concurrent_charges_with_one_key_charge_once(
    sandbox: SandboxPaymentGateway,
) -> None:
    customer, card = await _customer_with_visa(sandbox)
    sandbox.faults.latency = 0.001  # every call yields to the others
    outcomes = await asyncio.gather(
        *(sandbox.charge(_request(customer, card, "one-key")) for _ in range(50)),
        return_exceptions=True,
    )
    charged = [o for o in outcomes if not isinstance(o, BaseException)]
    assert charged, outcomes
    assert all(isinstance(o, GatewayUnavailable) for o in outcomes if isinstance(o, BaseException))
    assert len({o.intent_id for o in charged}) == 1
    assert len(await sandbox.succeeded_charges()) == 1


async def test_a_key_reused_with_other_parameters_is_refused(
    sandbox: SandboxPaymentGateway,
) -> None:
    customer, card = await _customer_with_visa(sandbox)
    await sandbox.charge(_request(customer, card, "k"))
    with pytest.raises(GatewayError):
        await sandbox.charge(_request(customer, card, "k", amount="151.00"))


async def test_a_timeout_after_the_charge_leaves_one_charge_found_by_replay(
    sandbox: SandboxPaymentGateway,
) -> None:
    customer, card = await _customer_with_visa(sandbox)
    sandbox.faults.schedule("charge", Fault.TIMEOUT_AFTER)
    with pytest.raises(GatewayUnavailable):
        await sandbox.charge(_request(customer, card, "lost-answer"))
    assert len(await sandbox.succeeded_charges()) == 1
    found = await sandbox.find_charge(_request(customer, card, "lost-answer"), None)
    assert found.status.value == "succeeded"
    assert len(await sandbox.succeeded_charges()) == 1


async def test_an_error_before_the_charge_charges_nothing_and_frees_the_key(
    sandbox: SandboxPaymentGateway,
) -> None:
    customer, card = await _customer_with_visa(sandbox)
    sandbox.faults.schedule("charge", Fault.ERROR_BEFORE)
    with pytest.raises(GatewayUnavailable):
        await sandbox.charge(_request(customer, card, "never-sent"))
    assert await sandbox.succeeded_charges() == []
    retried = await sandbox.charge(_request(customer, card, "never-sent"))
    assert retried.status.value == "succeeded"


async def test_latency_is_waited_without_blocking_the_event_loop(
    sandbox: SandboxPaymentGateway,
) -> None:
    customer, card = await _customer_with_visa(sandbox)
    sandbox.faults.latency = 0.5
    calls = [
        asyncio.create_task(sandbox.charge(_request(customer, card, f"k{i}"))) for i in range(20)
    ]
    await asyncio.sleep(0.05)  # this coroutine runs while all twenty calls wait
    assert not any(call.done() for call in calls)
    assert await sandbox.succeeded_charges() == []
    await asyncio.gather(*calls)
    assert len(await sandbox.succeeded_charges()) == 20


async def test_only_test_cards_are_accepted_and_the_number_is_never_stored() -> None:
    store = InMemorySandboxStore()
    sandbox = new_sandbox(store)
    customer = await TestSandboxGatewayContract().new_customer(sandbox)
    session = await sandbox.create_checkout_session(
        CheckoutSessionRequest(
            mode=CheckoutMode.SETUP, gateway_customer_id=customer, idempotency_key="s"
        )
    )
    with pytest.raises(ValidationError) as refused:
        await sandbox.complete_checkout_session(session.id, "4111111111111111")
    assert "4111111111111111" not in refused.value.message
    await sandbox.complete_checkout_session(session.id, "4242 4242 4242 4242")
    assert "4242424242424242" not in repr(store.documents)
    assert (await sandbox.get_checkout_session(session.id)).status is CheckoutSessionStatus.COMPLETE


async def test_a_hosted_payment_page_declines_without_completing(
    sandbox: SandboxPaymentGateway,
) -> None:
    customer = await TestSandboxGatewayContract().new_customer(sandbox)
    session = await sandbox.create_checkout_session(
        CheckoutSessionRequest(
            mode=CheckoutMode.PAYMENT, gateway_customer_id=customer, idempotency_key="p",
            amount=Money.of("10.00", "usd"),
        )
    )  # fmt: skip
    with pytest.raises(CardDeclined):
        await sandbox.complete_checkout_session(session.id, "4000000000000002")
    assert (await sandbox.get_checkout_session(session.id)).status is CheckoutSessionStatus.OPEN
    event = await sandbox.complete_checkout_session(session.id, "4000002760003184")
    assert event.session is not None
    assert event.session.paid


async def test_state_survives_a_new_gateway_on_the_same_store() -> None:
    store = InMemorySandboxStore()
    first = new_sandbox(store)
    customer, card = await _customer_with_visa(first)
    second = new_sandbox(store)
    default = (await second.get_customer(customer)).default_payment_method
    assert default is not None
    assert default.id == card
