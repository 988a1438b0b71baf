"""The contract every `PaymentGateway` keeps, as one suite (sandbox now, Stripe next).

Subclass `GatewayContract` with a `gateway` fixture and a `save_card` method that puts a test
card on a customer the way that gateway allows (a hosted page for the sandbox).
"""

from __future__ import annotations

import pytest

from core.errors import CustomerNotLinked, GatewayError
from core.gateway import (
    ChargeRequest,
    ChargeStatus,
    CheckoutMode,
    CheckoutSessionRequest,
    CheckoutSessionStatus,
    CustomerRequest,
    RefundOutcome,
    RefundRequest,
)
from core.money import Money
from core.ports import PaymentGateway

VISA = "4242424242424242"
DECLINED_AT_CHARGE = "4000000000000341"
AUTHENTICATION_REQUIRED = "4000002760003184"


class GatewayContract:
    @pytest.fixture
    def gateway(self) -> PaymentGateway:
        raise NotImplementedError

    async def save_card(self, gateway: PaymentGateway, customer_id: str, card: str) -> str:
        """Save `card` on the customer as its default; return the payment method id."""
        raise NotImplementedError

    async def new_customer(self, gateway: PaymentGateway, name: str = "Acme") -> str:
        return await gateway.create_customer(
            CustomerRequest(
                idempotency_key=f"contract-{name}-{id(gateway)}",
                name=name,
                metadata={"customer_id": f"cust_{name}", "environment_id": "env_contract"},
            )
        )

    def charge_request(
        self, customer: str, card: str, key: str, amount: str = "150.00", currency: str = "usd"
    ) -> ChargeRequest:
        return ChargeRequest(
            amount=Money.of(amount, currency),
            gateway_customer_id=customer,
            payment_method_id=card,
            idempotency_key=key,
            metadata={"payment_id": f"pay_{key}", "invoice_id": "inv_1", "environment_id": "e"},
        )

    async def test_a_new_customer_has_no_default_card(self, gateway: PaymentGateway) -> None:
        customer = await self.new_customer(gateway)
        found = await gateway.get_customer(customer)
        assert found.id == customer
        assert found.default_payment_method is None
        assert list(await gateway.list_payment_methods(customer)) == []

    async def test_a_customer_shows_the_metadata_it_was_created_with(
        self, gateway: PaymentGateway
    ) -> None:
        # Whose customer it is: the service refuses to link another environment's.
        found = await gateway.get_customer(await self.new_customer(gateway, "Owned"))
        assert dict(found.metadata) == {
            "customer_id": "cust_Owned",
            "environment_id": "env_contract",
        }

    async def test_an_unknown_customer_is_not_linked(self, gateway: PaymentGateway) -> None:
        with pytest.raises(CustomerNotLinked):
            await gateway.get_customer("cus_does_not_exist")

    async def test_a_saved_card_becomes_the_default_with_brand_and_last4(
        self, gateway: PaymentGateway
    ) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, VISA)
        default = (await gateway.get_customer(customer)).default_payment_method
        assert default is not None
        assert (default.id, default.brand, default.last4) == (card, "visa", "4242")
        assert default.is_default
        assert 1 <= default.exp_month <= 12
        [listed] = await gateway.list_payment_methods(customer)
        assert listed == default

    async def test_a_card_of_another_customer_is_not_found(self, gateway: PaymentGateway) -> None:
        owner, other = (
            await self.new_customer(gateway, "owner"),
            await self.new_customer(gateway, "other"),
        )
        card = await self.save_card(gateway, owner, VISA)
        assert await gateway.get_payment_method(other, card) is None
        found = await gateway.get_payment_method(owner, card)
        assert found is not None
        assert found.last4 == "4242"

    async def test_an_off_session_charge_succeeds_with_the_card_details(
        self, gateway: PaymentGateway
    ) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, VISA)
        result = await gateway.charge(self.charge_request(customer, card, "ok-1"))
        assert result.status is ChargeStatus.SUCCEEDED
        assert result.intent_id
        assert (result.card_brand, result.card_last4) == ("visa", "4242")
        assert result.failure is None

    async def test_a_charge_time_decline_is_a_definite_failure(
        self, gateway: PaymentGateway
    ) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, DECLINED_AT_CHARGE)
        result = await gateway.charge(self.charge_request(customer, card, "decline-1"))
        assert result.status is ChargeStatus.FAILED
        assert result.failure is not None
        assert result.failure.code == "card_declined"
        assert result.failure.gateway_code == "card_declined"

    async def test_authentication_required_fails_off_session(self, gateway: PaymentGateway) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, AUTHENTICATION_REQUIRED)
        result = await gateway.charge(self.charge_request(customer, card, "3ds-1"))
        assert result.status is ChargeStatus.FAILED
        assert result.failure is not None
        assert result.failure.code == "authentication_required"

    async def test_a_charge_is_found_by_its_id(self, gateway: PaymentGateway) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, VISA)
        request = self.charge_request(customer, card, "find-1")
        charged = await gateway.charge(request)
        assert await gateway.find_charge(request, charged.intent_id) == charged

    async def test_a_full_and_partial_refund_never_exceed_the_charge(
        self, gateway: PaymentGateway
    ) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, VISA)
        charged = await gateway.charge(self.charge_request(customer, card, "refund-1"))
        assert charged.intent_id is not None

        def refund(amount: str, key: str) -> RefundRequest:
            return RefundRequest(
                intent_id=charged.intent_id or "", amount=Money.of(amount, "usd"),
                idempotency_key=key,
            )  # fmt: skip

        partial = await gateway.refund(refund("50.00", "re-1"))
        assert partial.outcome is RefundOutcome.SUCCEEDED
        rest = await gateway.refund(refund("100.00", "re-2"))
        assert rest.outcome is RefundOutcome.SUCCEEDED
        assert rest.id != partial.id


class StripeFidelityContract(GatewayContract):
    """What real Stripe does that some compatible test servers (localstripe) do not: honour
    idempotency keys itself, and refuse a refund beyond what is left of the charge."""

    async def test_a_refund_beyond_the_charge_is_refused(self, gateway: PaymentGateway) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, VISA)
        charged = await gateway.charge(self.charge_request(customer, card, "over-refund"))
        assert charged.intent_id is not None
        whole = RefundRequest(charged.intent_id, Money.of("150.00", "usd"), idempotency_key="a")
        await gateway.refund(whole)
        with pytest.raises(GatewayError):
            await gateway.refund(
                RefundRequest(charged.intent_id, Money.of("0.01", "usd"), idempotency_key="b")
            )

    async def test_a_repeated_key_returns_the_first_charge(self, gateway: PaymentGateway) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, VISA)
        first = await gateway.charge(self.charge_request(customer, card, "same-key"))
        again = await gateway.charge(self.charge_request(customer, card, "same-key"))
        assert again == first

    async def test_a_repeated_refund_key_returns_the_first_refund(
        self, gateway: PaymentGateway
    ) -> None:
        customer = await self.new_customer(gateway)
        card = await self.save_card(gateway, customer, VISA)
        charged = await gateway.charge(self.charge_request(customer, card, "refund-key"))
        assert charged.intent_id is not None
        request = RefundRequest(charged.intent_id, Money.of("50.00", "usd"), idempotency_key="r")
        first = await gateway.refund(request)
        assert await gateway.refund(request) == first


class HostedPagesContract(GatewayContract):
    """For gateways whose test server serves hosted pages (Checkout Sessions)."""

    async def test_hosted_pages_open_in_payment_and_setup_mode(
        self, gateway: PaymentGateway
    ) -> None:
        customer = await self.new_customer(gateway)
        for mode, amount in ((CheckoutMode.PAYMENT, Money.of("10.00", "usd")),
                             (CheckoutMode.SETUP, None)):  # fmt: skip
            session = await gateway.create_checkout_session(
                CheckoutSessionRequest(
                    mode=mode, gateway_customer_id=customer, idempotency_key=f"cs-{mode}",
                    amount=amount, save_card_and_make_default=True,
                    success_url="https://example.test/ok", metadata={"payment_id": "pay_x"},
                )
            )  # fmt: skip
            assert session.url.startswith("http")
            assert session.mode is mode
            assert session.status is CheckoutSessionStatus.OPEN
            assert (await gateway.get_checkout_session(session.id)).id == session.id
