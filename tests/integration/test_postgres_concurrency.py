"""Real concurrent requests on PostgreSQL, through two separately bootstrapped instances.

The guarantees must come from the database and the gateway's idempotency keys, so each test
spreads its requests over two `CardCheckout` instances with their own engines and pools,
sharing only the database (and, through it, the sandbox gateway's state).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from core.errors import CheckoutError
from core.model import Payment, PaymentStatus, Refund
from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, VISA, card_payment, customer_with_card, finalized_invoice, sandbox
from tests.integration.conftest import two_instances

CONCURRENT = 50


@pytest.fixture
async def instances(clean_postgres_url: str) -> AsyncIterator[tuple[CardCheckout, CardCheckout]]:
    async with two_instances(clean_postgres_url) as pair:
        yield pair


async def _outcomes(calls: list[object]) -> list[Payment | Refund | CheckoutError]:
    results = await asyncio.gather(*calls, return_exceptions=True)  # type: ignore[call-overload]
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, CheckoutError):
            raise result
    return list(results)


async def test_fifty_payments_for_one_invoice_charge_it_exactly_once(
    instances: tuple[CardCheckout, CardCheckout],
) -> None:
    first, second = instances
    customer = await customer_with_card(first, VISA)
    invoice = await finalized_invoice(first, customer)
    body = card_payment(invoice)
    outcomes = await _outcomes(
        [
            (first if i % 2 else second).create_payment(ENV, body, idempotency_key=f"key-{i}")
            for i in range(CONCURRENT)
        ]
    )
    succeeded = [o for o in outcomes if isinstance(o, Payment)]
    refused = Counter(o.code for o in outcomes if isinstance(o, CheckoutError))
    assert len(succeeded) == 1, refused
    assert succeeded[0].status is PaymentStatus.SUCCEEDED
    assert set(refused) <= {"payment_in_progress", "invoice_already_paid"}
    assert sum(refused.values()) == CONCURRENT - 1
    charges = await sandbox(first).succeeded_charges()
    assert [c["metadata"]["invoice_id"] for c in charges] == [invoice.id]
    paid = await second.get_invoice(ENV, invoice.id)
    assert paid.amount_paid == paid.amount_due
    assert paid.amount_remaining.is_zero


async def test_fifty_retries_with_one_key_charge_once_and_replay_the_same_payment(
    instances: tuple[CardCheckout, CardCheckout],
) -> None:
    first, second = instances
    customer = await customer_with_card(first, VISA)
    invoice = await finalized_invoice(first, customer)
    body = card_payment(invoice)
    outcomes = await _outcomes(
        [
            (first if i % 2 else second).create_payment(ENV, body, idempotency_key="one-key")
            for i in range(CONCURRENT)
        ]
    )
    payments = [o for o in outcomes if isinstance(o, Payment)]
    refused = Counter(o.code for o in outcomes if isinstance(o, CheckoutError))
    # Repeats that arrive while the first still runs are told so; the rest replay it.
    assert set(refused) <= {"idempotency_key_in_use"}
    assert payments
    assert {p.id for p in payments} == {payments[0].id}
    assert len(await sandbox(first).succeeded_charges()) == 1
    replay = await second.create_payment(ENV, body, idempotency_key="one-key")
    assert replay == payments[0]
    assert replay.status is PaymentStatus.SUCCEEDED


async def test_simultaneous_refunds_never_return_more_than_was_paid(
    instances: tuple[CardCheckout, CardCheckout],
) -> None:
    first, second = instances
    customer = await customer_with_card(first, VISA)
    invoice = await finalized_invoice(first, customer, "150.00")
    payment = await first.create_payment(ENV, card_payment(invoice))
    outcomes = await _outcomes(
        [
            (first if i % 2 else second).refund_payment(ENV, payment.id, {"amount": "10.00"})
            for i in range(20)
        ]
    )
    refunds = [o for o in outcomes if isinstance(o, Refund)]
    refused = Counter(o.code for o in outcomes if isinstance(o, CheckoutError))
    assert len(refunds) == 15
    assert refused == {"refund_exceeds_payment": 5}
    settled = await second.get_payment(ENV, payment.id)
    assert settled.status is PaymentStatus.REFUNDED
    assert settled.amount_refunded.amount == Decimal("150.00")
    refunded_at_gateway = sum(r["amount"] for r in await sandbox(first).store.all("refund"))
    assert refunded_at_gateway == 15000
    invoice_after = await first.get_invoice(ENV, invoice.id)
    assert invoice_after.amount_refunded.amount == Decimal("150.00")
