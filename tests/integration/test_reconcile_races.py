"""Two reconciliation passes racing on PostgreSQL report, together, each change once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from adapters.sandbox import Fault
from core.model import PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, VISA, card_payment, customer_with_card, finalized_invoice, sandbox
from tests.integration.conftest import two_instances

STUCK = 12


@pytest.fixture
async def instances(clean_postgres_url: str) -> AsyncIterator[tuple[CardCheckout, CardCheckout]]:
    """Both passes read the same payments before either settles them."""
    async with two_instances(clean_postgres_url) as pair:
        yield pair


async def test_two_racing_passes_count_each_settled_payment_once(
    instances: tuple[CardCheckout, CardCheckout],
) -> None:
    first, second = instances
    customer = await customer_with_card(first, VISA)
    stuck = []
    for _ in range(STUCK):
        invoice = await finalized_invoice(first, customer)
        assert first.sandbox is not None
        first.sandbox.faults.schedule("charge", Fault.TIMEOUT_AFTER)  # charged, answer lost
        payment = await first.create_payment(ENV, card_payment(invoice))
        assert payment.status is PaymentStatus.PROCESSING
        stuck.append(payment.id)
    await asyncio.sleep(0.01)

    reports = await asyncio.gather(
        first.reconcile(older_than=timedelta(0)), second.reconcile(older_than=timedelta(0))
    )

    settled_here = [report.succeeded for report in reports]
    assert sum(settled_here) == STUCK, settled_here
    settled_first_elsewhere = [report.already_settled for report in reports]
    assert sum(settled_first_elsewhere) > 0, "the passes did not race"
    for report in reports:
        assert report.examined == report.succeeded + report.already_settled
        assert (report.failed, report.unresolved, report.errors) == (0, (), ())
    for payment_id in stuck:
        assert (await second.get_payment(ENV, payment_id)).status is PaymentStatus.SUCCEEDED
        assert len(await sandbox(second).charges_for(payment_id)) == 1
    print(f"\nracing passes: settled {settled_here}, found settled {settled_first_elsewhere}")


async def test_two_racing_passes_count_each_settled_refund_once(
    instances: tuple[CardCheckout, CardCheckout],
) -> None:
    first, second = instances
    customer = await customer_with_card(first, VISA)
    invoice = await finalized_invoice(first, customer, "120.00")
    payment = await first.create_payment(ENV, card_payment(invoice))
    assert first.sandbox is not None
    for _ in range(STUCK):
        first.sandbox.faults.schedule("refund", Fault.TIMEOUT_AFTER)  # refunded, answer lost
        await first.refund_payment(ENV, payment.id, {"amount": "10.00"})
    await asyncio.sleep(0.01)

    reports = await asyncio.gather(
        first.reconcile(older_than=timedelta(0)), second.reconcile(older_than=timedelta(0))
    )

    settled_here = [report.refunds_settled for report in reports]
    assert sum(settled_here) == STUCK, settled_here
    settled_first_elsewhere = [report.already_settled for report in reports]
    assert sum(settled_first_elsewhere) > 0, "the passes did not race"
    for report in reports:
        assert report.examined == report.refunds_settled + report.already_settled
        assert (report.unresolved, report.errors) == ((), ())
    after = await second.get_payment(ENV, payment.id)
    assert (after.status, str(after.amount_refunded)) == (PaymentStatus.REFUNDED, "120.00")
    print(f"\nracing refund passes: settled {settled_here}, elsewhere {settled_first_elsewhere}")
