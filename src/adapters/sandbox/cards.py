"""The Stripe test cards the sandbox knows, and what each does when charged off-session."""

from __future__ import annotations

from typing import Final

import attrs

from adapters.stripe_vocabulary import classify_card_error
from core.errors import ValidationError
from core.gateway import GatewayFailure


@attrs.frozen
class TestCard:
    """A Stripe test card and what happens when it is charged off-session."""

    __test__ = False  # not a pytest class

    number: str
    token: str
    brand: str = "visa"
    gateway_code: str | None = None
    decline_code: str | None = None
    message: str = ""

    @property
    def last4(self) -> str:
        return self.number[-4:]

    def failure(self) -> GatewayFailure | None:
        if self.gateway_code is None:
            return None
        return classify_card_error(self.gateway_code, self.decline_code, self.message)


TEST_CARDS: Final = (
    TestCard("4242424242424242", "pm_card_visa"),
    TestCard(
        "4000000000000002", "pm_card_chargeDeclined",
        gateway_code="card_declined", decline_code="generic_decline",
        message="Your card was declined.",
    ),
    TestCard(
        "4000000000009995", "pm_card_chargeDeclinedInsufficientFunds",
        gateway_code="card_declined", decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
    ),
    TestCard(
        "4000002760003184", "pm_card_authenticationRequired",
        gateway_code="authentication_required", decline_code="authentication_required",
        message="Your card was declined. This transaction requires authentication.",
    ),
    TestCard(
        "4000000000000069", "pm_card_chargeDeclinedExpiredCard",
        gateway_code="expired_card", decline_code="expired_card",
        message="Your card has expired.",
    ),
    TestCard(
        "4000000000000341", "pm_card_chargeCustomerFail",
        gateway_code="card_declined", decline_code="generic_decline",
        message="Your card was declined.",
    ),
)  # fmt: skip
_BY_NUMBER: Final = {card.number: card for card in TEST_CARDS}
BY_TOKEN: Final = {card.token: card for card in TEST_CARDS}


def test_card(number_or_token: str) -> TestCard:
    """The test card typed on a hosted page (spaces and dashes allowed), or a clear error."""
    typed = number_or_token.strip()
    card = BY_TOKEN.get(typed) or _BY_NUMBER.get(typed.replace(" ", "").replace("-", ""))
    if card is None:
        raise ValidationError(
            "The sandbox accepts only Stripe test cards, such as 4242 4242 4242 4242.",
            field="card_number",
        )
    return card


test_card.__test__ = False  # type: ignore[attr-defined]
