"""core.rules: a payment checked against its invoice; card numbers told from identifiers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.commands import CreatePayment
from core.errors import CheckoutError
from core.model import Invoice, InvoiceStatus, PaymentMethodType
from core.money import Money
from core.rules import check_payment_matches_invoice, looks_like_card_number
from entrypoints.bodies import parse_create_customer

T0 = datetime(2024, 1, 20, 10, 30, tzinfo=UTC)
INVOICE_ID = "inv_01K34HYZN03V6X8Q6V3T8X6G4F"


def invoice(
    amount_due: str = "150.00",
    *,
    code: str = "usd",
    status: InvoiceStatus = InvoiceStatus.FINALIZED,
    paid: str | None = None,
) -> Invoice:
    fields: dict[str, object] = {}
    if paid is not None:
        fields["amount_paid"] = Money.of(paid, code)
    return Invoice(
        id=INVOICE_ID,
        environment_id="env_test",
        customer_id="cust_1",
        amount_due=Money.of(amount_due, code),
        status=status,
        created_at=T0,
        updated_at=T0,
        **fields,  # type: ignore[arg-type]
    )


def payment_command(amount: str = "150.00", code: str = "usd", **fields: object) -> CreatePayment:
    return CreatePayment(
        destination_id=INVOICE_ID,
        amount=Money.of(amount, code),
        method_type=PaymentMethodType.CARD,
        process_payment=True,
        **fields,  # type: ignore[arg-type]
    )


# --- the payment against its invoice -----------------------------------------------------------


def test_matching_payment_and_invoice_pass() -> None:
    check_payment_matches_invoice(payment_command("150.00"), invoice("150.00"))
    check_payment_matches_invoice(payment_command("100.00"), invoice("150.00", paid="50.00"))
    check_payment_matches_invoice(payment_command("1.25", "kwd"), invoice("1.250", code="kwd"))


def test_currency_mismatch_names_expected_and_actual() -> None:
    with pytest.raises(CheckoutError) as error:
        check_payment_matches_invoice(payment_command("150.00", "eur"), invoice("150.00"))
    assert error.value.code == "currency_mismatch"
    assert error.value.details["expected"] == "usd"
    assert error.value.details["actual"] == "eur"
    assert error.value.details["invoice_id"] == INVOICE_ID


@pytest.mark.parametrize(
    ("amount", "invoice_", "expected"),
    [
        ("149.99", invoice("150.00"), "150.00"),
        ("150.01", invoice("150.00"), "150.00"),
        ("150.00", invoice("150.00", paid="50.00"), "100.00"),
    ],
)
def test_amount_mismatch_names_expected_and_actual(
    amount: str, invoice_: Invoice, expected: str
) -> None:
    with pytest.raises(CheckoutError) as error:
        check_payment_matches_invoice(payment_command(amount), invoice_)
    assert error.value.code == "amount_mismatch"
    assert error.value.details["expected"] == expected
    assert error.value.details["actual"] == amount
    assert error.value.details["invoice_id"] == INVOICE_ID


@pytest.mark.parametrize(
    ("invoice_", "code"),
    [
        (invoice(status=InvoiceStatus.DRAFT), "invoice_not_finalized"),
        (invoice(status=InvoiceStatus.VOIDED), "invoice_voided"),
        (invoice(paid="150.00"), "invoice_already_paid"),
    ],
)
@pytest.mark.parametrize("command", [payment_command("150.00"), payment_command("9.00", "eur")])
def test_an_unpayable_invoice_is_refused_before_amounts_are_compared(
    invoice_: Invoice, code: str, command: CreatePayment
) -> None:
    with pytest.raises(CheckoutError) as error:
        check_payment_matches_invoice(command, invoice_)
    assert error.value.code == code
    assert error.value.details["invoice_id"] == INVOICE_ID


def test_digits_inside_an_identifier_are_not_taken_for_a_card() -> None:
    # A UUID's hex can hold a Luhn-valid run of digits; it is part of a token, not a card.
    assert not looks_like_card_number("c-9f4242424242424242e1")
    assert not looks_like_card_number("inv_01K34HYZ4242424242424242")
    assert looks_like_card_number("card 4242 4242 4242 4242 please")
    assert looks_like_card_number("4242-4242-4242-4242")
    command = parse_create_customer({"external_id": "ab4242424242424242cd"})
    assert command.external_id == "ab4242424242424242cd"
