"""Stripe's words, translated into the core's: shared by the Stripe adapter and the sandbox.

The sandbox plays Stripe's test mode, so it speaks the same vocabulary: its test cards carry
Stripe's error and decline codes, and this module is where both turn them into the core's
error codes. It imports no SDK, so the sandbox runs without Stripe's.
"""

from __future__ import annotations

from typing import Final

from core.errors import AuthenticationRequired, CardDeclined, ExpiredCard, InsufficientFunds
from core.gateway import GatewayFailure

# The Stripe codes (a card error's `code` or its `decline_code`) that the core names itself;
# every other card error is a plain decline.
_NAMED_DECLINES: Final = {
    "insufficient_funds": InsufficientFunds.code,
    "expired_card": ExpiredCard.code,
    "authentication_required": AuthenticationRequired.code,
}


def classify_card_error(
    gateway_code: str | None, decline_code: str | None, message: str
) -> GatewayFailure:
    """Map a Stripe card error (its `code` and `decline_code`) to the core's failure code.

    The decline code is the more precise, so it is looked at first; Stripe's own codes are
    kept on the failure for the contract's `stripe_error_code` and `decline_code` details.
    """
    code = CardDeclined.code
    for candidate in (decline_code, gateway_code):
        if candidate is not None and candidate in _NAMED_DECLINES:
            code = _NAMED_DECLINES[candidate]
            break
    return GatewayFailure(
        code=code, message=message, gateway_code=gateway_code, decline_code=decline_code
    )
