"""A change that only one status allows is refused with the status it needs and the one it met."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import InvalidStateTransition, require_status
from core.model import Invoice, InvoiceStatus, PaymentStatus
from core.money import Money

T0 = datetime(2024, 1, 20, 10, 30, tzinfo=UTC)


def test_a_status_that_allows_the_change_passes() -> None:
    require_status(PaymentStatus.INITIATED, PaymentStatus.INITIATED, "Only an initiated payment")


def test_another_status_is_refused_naming_what_it_is_and_what_it_needed() -> None:
    with pytest.raises(InvalidStateTransition) as refused:
        require_status(
            PaymentStatus.SUCCEEDED,
            PaymentStatus.INITIATED,
            "Only an initiated payment can be processed",
            payment_id="pay_1",
        )
    assert refused.value.message == (
        "Only an initiated payment can be processed; this one is succeeded."
    )
    assert list(refused.value.details.items()) == [
        ("payment_id", "pay_1"),
        ("expected", "initiated"),
        ("actual", "succeeded"),
    ]


def test_only_a_draft_invoice_can_be_finalized() -> None:
    finalized = Invoice(
        id="inv_1",
        environment_id="env_test",
        customer_id="cust_1",
        amount_due=Money.of("10.00", "usd"),
        status=InvoiceStatus.FINALIZED,
        created_at=T0,
        updated_at=T0,
    )
    with pytest.raises(InvalidStateTransition) as refused:
        finalized.finalize(T0)
    assert refused.value.message == (
        "Only a DRAFT invoice can be finalized; this one is FINALIZED."
    )
    assert refused.value.details == {
        "invoice_id": "inv_1",
        "expected": "DRAFT",
        "actual": "FINALIZED",
    }
