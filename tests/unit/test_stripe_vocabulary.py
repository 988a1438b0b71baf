"""Stripe's card error codes, translated into the core's (Stripe adapter and sandbox alike)."""

from __future__ import annotations

import pytest

from adapters.stripe_vocabulary import classify_card_error
from core.errors import PAYMENT_FAILURES


@pytest.mark.parametrize(
    ("gateway_code", "decline_code", "expected"),
    [
        ("card_declined", "generic_decline", "card_declined"),
        ("card_declined", "insufficient_funds", "insufficient_funds"),
        ("card_declined", "do_not_honor", "card_declined"),
        ("expired_card", "expired_card", "expired_card"),
        ("expired_card", None, "expired_card"),
        ("authentication_required", "authentication_required", "authentication_required"),
        ("card_declined", "authentication_required", "authentication_required"),
        ("incorrect_cvc", None, "card_declined"),
        (None, None, "card_declined"),
    ],
)
def test_stripe_codes_become_the_cores_failure_codes(
    gateway_code: str | None, decline_code: str | None, expected: str
) -> None:
    failure = classify_card_error(gateway_code, decline_code, "Declined.")
    assert failure.code == expected
    assert failure.code in PAYMENT_FAILURES
    # Stripe's own codes ride along for the contract's stripe_error_code and decline_code.
    assert (failure.gateway_code, failure.decline_code) == (gateway_code, decline_code)
    assert failure.message == "Declined."


def test_the_decline_code_is_more_precise_than_the_error_code() -> None:
    failure = classify_card_error("expired_card", "insufficient_funds", "Declined.")
    assert failure.code == "insufficient_funds"
