"""Opt-in: the Stripe adapter against real Stripe test mode.

Set STRIPE_TEST_SECRET_KEY (an sk_test_... key) to run these; they need the internet, which CI
does not have, so without the key they skip and say why.
"""

from __future__ import annotations

import os

import pytest

from adapters.stripe_gateway import StripePaymentGateway
from core.ports import PaymentGateway
from tests.gateway_contract import GatewayContract, StripeFidelityContract

KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
pytestmark = pytest.mark.skipif(
    not KEY.startswith("sk_test_"), reason="set STRIPE_TEST_SECRET_KEY=sk_test_... to run"
)

# Stripe's test tokens stand for the test cards; real Stripe takes no raw numbers from servers.
TOKENS = {
    "4242424242424242": "pm_card_visa",
    "4000000000000341": "pm_card_chargeCustomerFail",
    "4000002760003184": "pm_card_authenticationRequired",
}


class TestRealStripeTestMode(StripeFidelityContract, GatewayContract):
    @pytest.fixture
    def gateway(self) -> PaymentGateway:
        return StripePaymentGateway.create(KEY)

    async def save_card(self, gateway: PaymentGateway, customer_id: str, card: str) -> str:
        assert isinstance(gateway, StripePaymentGateway)
        pm = await gateway.client.v1.payment_methods.attach_async(
            TOKENS[card], params={"customer": customer_id}
        )
        await gateway.set_default_payment_method(customer_id, pm.id)
        return str(pm.id)
