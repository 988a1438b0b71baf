"""Card numbers of every length a card can have (13 to 19 digits) are refused, never echoed."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Final

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.errors import ValidationError
from core.rules import looks_like_card_number, reject_card_data
from entrypoints.bodies import parse_create_payment
from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from tests.helpers import ENV

Body = dict[str, object]


def luhn_check_digit(payload: str) -> str:
    total = 0
    for index, char in enumerate(reversed(payload)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str(-total % 10)


def test_luhn_check_digit_completes_known_test_cards_of_several_lengths() -> None:
    for card in ("4222222222222", "378282246310005", "4242424242424242", "6011111111111117",
                 "3530111333300000", "4000000000000002", "6200000000000005"):  # fmt: skip
        assert luhn_check_digit(card[:-1]) == card[-1]


@st.composite
def luhn_cards(draw: st.DrawFn) -> str:
    """The digits of a Luhn-valid number 13 to 19 digits long."""
    length = draw(st.integers(min_value=13, max_value=19))
    first = draw(st.sampled_from("123456789"))
    payload = first + draw(st.text(alphabet="0123456789", min_size=length - 2, max_size=length - 2))
    return payload + luhn_check_digit(payload)


# What people put between a card's digit groups: spaces (one, two, no-break, narrow no-break, tab),
# dashes, dots, commas, slashes, and a comma with a space.
SEPARATORS: Final = ["", " ", "  ", "\u00a0", "\u202f", "\t", "-", ".", ",", "/", ", ", " - "]


@st.composite
def spellings(draw: st.DrawFn, digits: str) -> str:
    """`digits` as a person may type them: bare, or in groups split by separators."""
    separator = draw(st.sampled_from(SEPARATORS))
    if not separator:
        return digits
    grouped = draw(st.booleans())
    if grouped:  # groups of four, as printed on most cards
        return separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    # a separator after any digit (never two in a row)
    cuts = draw(st.lists(st.booleans(), min_size=len(digits) - 1, max_size=len(digits) - 1))
    ends = [*cuts, False]
    return "".join(d + (separator if cut else "") for d, cut in zip(digits, ends, strict=True))


def payment_body(**overrides: object) -> Body:
    body: Body = {
        "amount": Decimal("150.00"),
        "currency": "usd",
        "destination_id": "inv_01K34HYZN03V6X8Q6V3T8X6G4F",
        "destination_type": "INVOICE",
        "payment_method_type": "CARD",
        "process_payment": True,
        "payment_gateway": "stripe",
    }
    body.update(overrides)
    return body


# Where a card number may hide in a payment body: (name, body with it, the field named).
PLACES: list[tuple[str, Callable[[str], Body], set[str]]] = [
    ("metadata value", lambda c: payment_body(metadata={"note": c}), {"metadata.note"}),
    ("metadata text", lambda c: payment_body(metadata={"note": f"my card {c} ok"}),
     {"metadata.note"}),
    ("metadata key", lambda c: payment_body(metadata={c: "x"}), {"metadata"}),
    ("unknown field", lambda c: payment_body(card_on_file=c), {"card_on_file"}),
    ("unknown field name", lambda c: payment_body(**{c: "x"}), {"body"}),
    ("known field", lambda c: payment_body(payment_method_id=c), {"payment_method_id"}),
]  # fmt: skip


def assert_not_echoed(text: str, digits: str) -> None:
    assert digits not in re.sub(r"\D", "", text)


def assert_error_hides(error: ValidationError, spelled: str, digits: str) -> None:
    for text in (error.message, str(error), repr(error), repr(error.details)):
        assert spelled not in text
        assert_not_echoed(text, digits)


@given(data=st.data(), digits=luhn_cards(), place=st.sampled_from(PLACES))
@example(data=None, digits="4222222222222", place=PLACES[0])  # a 13-digit Visa test card
@example(data=None, digits="4222222222222", place=PLACES[3])
@example(data=None, digits="6212345678901234569", place=PLACES[0])  # 19 digits
def test_every_luhn_valid_number_of_13_to_19_digits_is_refused_as_card_data_unechoed(
    data: st.DataObject | None,
    digits: str,
    place: tuple[str, Callable[[str], Body], set[str]],
) -> None:
    spelled = digits if data is None else data.draw(spellings(digits), label="spelled")
    _, build, fields = place
    assert looks_like_card_number(spelled)
    with pytest.raises(ValidationError) as refused:
        parse_create_payment(build(spelled))
    error = refused.value
    assert error.code == "validation_error"
    assert "card" in error.message.lower()
    assert error.details["field"] in fields
    assert_error_hides(error, spelled, digits)


@pytest.mark.parametrize("spelled", ["4222222222222", "4222 2222 2222 2", "4222-2222-22222"])
async def test_a_13_digit_card_number_in_a_request_is_refused_over_http_unechoed(
    checkout: CardCheckout, spelled: str
) -> None:
    await checkout.create_environment("t", "test", environment_id=ENV)
    _, key = await checkout.create_api_key("t", [ENV], "write")
    app = create_app(checkout, notify_every=None)
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    ) as client:
        body = {**payment_body(metadata={"note": spelled}), "amount": "150.00"}
        response = await client.post("/api/v1/payments", json=body)
        listed = await client.get("/api/v1/payments")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["field"] == "metadata.note"
    assert spelled not in response.text
    assert_not_echoed(response.text, "4222222222222")
    assert listed.json()["items"] == []  # nothing recorded


@pytest.mark.parametrize(
    "spelled",
    [
        "4242,4242,4242,4242",
        "4242  4242  4242  4242",
        "4242\u00a04242\u00a04242\u00a04242",
        "4242\u202f4242\u202f4242\u202f4242",
        "4242\t4242\t4242\t4242",
        "4242.4242.4242.4242",
        "4242 - 4242 - 4242 - 4242",
    ],
)
def test_the_separators_people_type_between_groups_do_not_hide_a_card(spelled: str) -> None:
    assert looks_like_card_number(spelled)
    assert looks_like_card_number(f"paid with {spelled}, thanks")


@pytest.mark.parametrize(
    "text",
    ["order 2026-01-01 12:00", "inv_01K34HYZN03V6X8Q6V3T8X6G4F", "4242 4242", "1, 2, 3", "v1.2.3"],
)
def test_short_runs_dates_and_ids_are_not_card_numbers(text: str) -> None:
    assert not looks_like_card_number(text)


@pytest.mark.parametrize(
    "name",
    ["cardNumber", "card-number", "Card Number", "credit_card_number", "ccnum", "cc_number",
     "CVV", "card_cvc2", "expMonth", "Security-Code"],
)  # fmt: skip
def test_card_like_field_names_are_card_data_however_spelled(name: str) -> None:
    with pytest.raises(ValidationError) as refused:
        reject_card_data({"metadata": {name: "x"}})
    assert refused.value.details["field"] == f"metadata.{name}"


@pytest.mark.parametrize("name", ["order_number", "invoice_ref", "cart", "expected", "discard"])
def test_ordinary_field_names_are_not_card_data(name: str) -> None:
    reject_card_data({"metadata": {name: "x"}})
