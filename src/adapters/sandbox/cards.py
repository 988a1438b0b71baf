"""The Stripe test cards the sandbox knows, and what each does when charged off-session."""

from __future__ import annotations

from typing import Final

import attrs

from adapters.stripe_vocabulary import classify_card_error
from core.errors import ValidationError
from core.gateway import GatewayFailure

# Stripe's message for each decline code a test card gives.
_DECLINE_MESSAGES: Final = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
    "expired_card": "Your card has expired.",
}


@attrs.frozen
class TestCard:
    """A Stripe test card and what happens when it is charged off-session."""

    __test__ = False  # not a pytest class

    number: str
    token: str
    gateway_code: str | None = None
    decline_code: str | None = None
    brand: str = "visa"

    @property
    def last4(self) -> str:
        return self.number[-4:]

    def failure(self) -> GatewayFailure | None:
        if self.gateway_code is None or self.decline_code is None:
            return None
        message = _DECLINE_MESSAGES[self.decline_code]
        return classify_card_error(self.gateway_code, self.decline_code, message)


# Each card: its number and token, then, for one that fails, Stripe's code and decline code.
TEST_CARDS: Final = (
    TestCard("4242424242424242", "pm_card_visa"),
    TestCard("4000000000000002", "pm_card_chargeDeclined", "card_declined", "generic_decline"),
    TestCard("4000000000009995", "pm_card_chargeDeclinedInsufficientFunds",
             "card_declined", "insufficient_funds"),
    TestCard("4000002760003184", "pm_card_authenticationRequired",
             "authentication_required", "authentication_required"),
    TestCard("4000000000000069", "pm_card_chargeDeclinedExpiredCard",
             "expired_card", "expired_card"),
    TestCard("4000000000000341", "pm_card_chargeCustomerFail", "card_declined", "generic_decline"),
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
