"""Keys of requests that died, retried at once through two instances on one PostgreSQL database.

The instances share a clock the test moves, so that a claim's lease can run out at once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from adapters.clock import ManualClock
from adapters.sandbox import SandboxFaults
from core.commands import CreateInvoice
from core.errors import CheckoutError
from core.model import Invoice, InvoiceStatus, Payment, PaymentStatus
from core.money import Money
from core.ports import IdempotencyRecord, IdempotencyState
from core.usecases.idempotency import Answer
from core.usecases.policies import IdempotencyPolicy
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    ENV,
    VISA,
    HeldGateway,
    card_payment,
    customer_with_card,
    finalized_invoice,
    sandbox,
)
from tests.integration.conftest import two_instances

RETRIES = 20
PAST_THE_LEASE = IdempotencyPolicy().lease + timedelta(seconds=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def instances(
    clean_postgres_url: str, clock: ManualClock
) -> AsyncIterator[tuple[CardCheckout, CardCheckout]]:
    async with two_instances(clean_postgres_url, latency=0.01, clock=clock) as pair:
        yield pair


async def _answers(calls: list[object]) -> list[Answer[Payment] | Answer[Invoice] | CheckoutError]:
    results = await asyncio.gather(*calls, return_exceptions=True)  # type: ignore[call-overload]
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, CheckoutError):
            raise result
    return list(results)


async def test_retries_of_a_payment_whose_request_died_all_answer_it(
    instances: tuple[CardCheckout, CardCheckout], clock: ManualClock
) -> None:
    first, second = instances
    customer = await customer_with_card(first, VISA)
    invoice = await finalized_invoice(first, customer)
    body = card_payment(invoice)
    hold = HeldGateway("charge")
    sandbox(first).faults = hold  # type: ignore[assignment]
    dying = asyncio.create_task(first.create_payment(ENV, body, idempotency_key="died"))
    await hold.started.wait()
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    sandbox(first).faults = SandboxFaults()
    clock.advance(PAST_THE_LEASE)

    def retries() -> list[object]:
        return [
            (first if i % 2 else second).create_payment_answer(ENV, body, idempotency_key="died")
            for i in range(RETRIES)
        ]

    answers = await _answers(retries())
    assert all(isinstance(a, Answer) and a.replayed for a in answers), answers
    paid = {a.value.id for a in answers if isinstance(a, Answer)}
    assert len(paid) == 1
    assert {a.value.status for a in answers if isinstance(a, Answer)} == {PaymentStatus.PROCESSING}

    report = await second.reconcile(older_than=timedelta(0))
    assert report.succeeded == 1
    settled = await _answers(retries())
    assert {a.value.status for a in settled if isinstance(a, Answer)} == {PaymentStatus.SUCCEEDED}
    assert len(settled) == RETRIES
    assert len(await sandbox(first).succeeded_charges()) == 1
    assert [p.id for p in (await first.list_payments(ENV)).items] == list(paid)


async def test_retries_racing_for_a_claim_that_recorded_nothing_run_it_once(
    instances: tuple[CardCheckout, CardCheckout], clock: ManualClock
) -> None:
    first, second = instances
    customer = await customer_with_card(first, VISA)
    command = CreateInvoice(
        customer_id=customer.id,
        amount_due=Money.of("25.00", "usd"),
        status=InvoiceStatus.FINALIZED,
    )
    now = clock.now()
    async with first.deps.uow() as uow:  # a claim whose request died before recording
        await uow.idempotency.put(
            IdempotencyRecord(
                environment_id=ENV,
                key="empty",
                operation="create_invoice",
                fingerprint=command.fingerprint(),
                state=IdempotencyState.IN_PROGRESS,
                created_at=now,
                expires_at=now + timedelta(hours=24),
                lease_expires_at=now,
            )
        )
        await uow.commit()

    answers = await _answers(
        [
            (first if i % 2 else second).create_invoice_answer(
                ENV, command, idempotency_key="empty"
            )
            for i in range(RETRIES)
        ]
    )

    ran = [a for a in answers if isinstance(a, Answer) and not a.replayed]
    replayed = [a for a in answers if isinstance(a, Answer) and a.replayed]
    refused = Counter(a.code for a in answers if isinstance(a, CheckoutError))
    assert len(ran) == 1
    assert set(refused) <= {"idempotency_key_in_use"}
    assert all(a.value == ran[0].value for a in replayed)
    invoices = await first.list_invoices(ENV, customer_id=customer.id)
    assert [i.id for i in invoices.items] == [ran[0].value.id]
    print(f"\n{RETRIES} racing retries: 1 ran, {len(replayed)} replayed, {dict(refused)}")
