"""Idempotency keys held by a request that died: its claim's lease runs out, and a retry
answers what the first request recorded, as it is now (or runs again if it recorded nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import attrs
import httpx
import pytest

from adapters.clock import ManualClock
from adapters.sandbox import Fault, SandboxFaults
from core.commands import CreateCustomer
from core.model import Payment, PaymentStatus
from core.ports import IdempotencyRecord, IdempotencyState
from core.usecases.idempotency import Answer, Idempotency, finish_keys_of, idempotent
from core.usecases.policies import IdempotencyPolicy
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    ENV,
    HeldGateway,
    api_client,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
    sandbox,
)

LEASE = IdempotencyPolicy().lease


async def _record(checkout: CardCheckout, key: str) -> IdempotencyRecord:
    async with checkout.deps.uow(read_only=True) as uow:
        record = await uow.idempotency.get(ENV, key)
    assert record is not None
    return record


async def _killed_while_charging(checkout: CardCheckout, body: dict[str, object], key: str) -> None:
    """A keyed create-payment whose task is cancelled mid-charge (the process died there)."""
    hold = HeldGateway("charge")
    sandbox(checkout).faults = hold  # type: ignore[assignment]
    first = asyncio.create_task(checkout.create_payment(ENV, body, idempotency_key=key))
    await hold.started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    sandbox(checkout).faults = SandboxFaults()


async def test_a_key_of_a_request_that_died_answers_its_payment_once_its_lease_ran_out(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice)
    await _killed_while_charging(checkout, body, "died")

    busy = await error_of(checkout.create_payment(ENV, body, idempotency_key="died"))
    assert busy.code == "idempotency_key_in_use"  # its lease still runs: it may be alive

    clock.advance(LEASE + timedelta(seconds=1))
    answer = await checkout.create_payment_answer(ENV, body, idempotency_key="died")
    assert answer.replayed
    assert answer.value.status is PaymentStatus.PROCESSING
    assert len(await sandbox(checkout).succeeded_charges()) == 0  # never charged by the retry

    report = await checkout.reconcile(older_than=timedelta(0))
    assert report.succeeded == 1
    record = await _record(checkout, "died")
    assert record.state is IdempotencyState.COMPLETED  # reconciliation finished the key
    settled = await checkout.create_payment_answer(ENV, body, idempotency_key="died")
    assert settled.replayed
    assert settled.value.id == answer.value.id
    assert settled.value.status is PaymentStatus.SUCCEEDED
    assert len(await sandbox(checkout).succeeded_charges()) == 1
    assert [p.id for p in (await checkout.list_payments(ENV)).items] == [answer.value.id]


async def test_a_claim_that_recorded_nothing_is_run_again_once_its_lease_ran_out(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    command = CreateCustomer(external_id="ext-nothing", name="Ada")
    now = clock.now()
    async with checkout.deps.uow() as uow:  # a claim whose request died before recording
        await uow.idempotency.put(
            IdempotencyRecord(
                environment_id=ENV,
                key="empty",
                operation="create_customer",
                fingerprint=command.fingerprint(),
                state=IdempotencyState.IN_PROGRESS,
                created_at=now,
                expires_at=now + timedelta(hours=24),
                lease_expires_at=now + LEASE,
            )
        )
        await uow.commit()

    busy = await error_of(checkout.create_customer(ENV, command, idempotency_key="empty"))
    assert busy.code == "idempotency_key_in_use"

    clock.advance(LEASE)
    created = await checkout.create_customer_answer(ENV, command, idempotency_key="empty")
    assert not created.replayed
    again = await checkout.create_customer_answer(ENV, command, idempotency_key="empty")
    assert again.replayed
    assert again.value == created.value


async def test_a_key_claimed_before_leases_existed_is_held_to_its_expiry(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    command = CreateCustomer(external_id="ext-legacy")
    now = clock.now()
    async with checkout.deps.uow() as uow:  # a row of the schema before leases: no lease
        await uow.idempotency.put(
            IdempotencyRecord(
                environment_id=ENV,
                key="legacy",
                operation="create_customer",
                fingerprint=command.fingerprint(),
                state=IdempotencyState.IN_PROGRESS,
                created_at=now,
                expires_at=now + timedelta(hours=24),
            )
        )
        await uow.commit()

    # An instance of the version before leases may still be working on it.
    clock.advance(LEASE * 10)
    busy = await error_of(checkout.create_customer(ENV, command, idempotency_key="legacy"))
    assert busy.code == "idempotency_key_in_use"

    clock.advance(timedelta(hours=24))
    created = await checkout.create_customer_answer(ENV, command, idempotency_key="legacy")
    assert not created.replayed
    assert created.value.external_id == "ext-legacy"


async def test_a_request_still_running_keeps_renewing_its_lease(
    checkout: CardCheckout, clock: ManualClock
) -> None:
    policy = IdempotencyPolicy(renew_every=timedelta(milliseconds=10))
    checkout.deps = attrs.evolve(
        checkout.deps, policies=attrs.evolve(checkout.deps.policies, idempotency=policy)
    )
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = card_payment(invoice)
    hold = HeldGateway("charge")
    sandbox(checkout).faults = hold  # type: ignore[assignment]
    first = asyncio.create_task(checkout.create_payment(ENV, body, idempotency_key="slow"))
    await hold.started.wait()
    claimed = (await _record(checkout, "slow")).lease_expires_at
    assert claimed == clock.now() + LEASE

    for _ in range(3):  # a gateway call far longer than one lease
        clock.advance(LEASE * 2 / 3)
        renewed_until = clock.now() + LEASE
        for _ in range(200):
            if (await _record(checkout, "slow")).lease_expires_at == renewed_until:
                break
            await asyncio.sleep(0.005)
        busy = await error_of(checkout.create_payment(ENV, body, idempotency_key="slow"))
        assert busy.code == "idempotency_key_in_use"

    hold.release.set()
    payment = await first
    assert payment.status is PaymentStatus.SUCCEEDED
    replay = await checkout.create_payment_answer(ENV, body, idempotency_key="slow")
    assert replay.replayed
    assert replay.value == payment
    record = await _record(checkout, "slow")
    assert record.state is IdempotencyState.COMPLETED
    assert record.resource_id == payment.id


async def test_a_request_that_outlived_reconciliation_finishes_on_what_was_settled(
    checkout: CardCheckout,
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    payment = await checkout.create_payment(ENV, card_payment(invoice, process_payment=False))
    deps = checkout.deps

    async def work(idempotency: Idempotency) -> Payment:
        async with deps.uow() as uow:
            await idempotency.claim(uow, about=payment.id)
            await uow.commit()
        async with deps.uow() as uow:  # reconciliation settles it meanwhile
            await finish_keys_of(uow, payment)
            await uow.commit()
        async with deps.uow() as uow:
            await idempotency.finish(uow, payment)
            await uow.commit()
        return payment

    request = (ENV, "process_payment", lambda: payment.id)
    answer = await idempotent(deps, "late", request, Payment, work)

    assert answer == Answer(payment)
    assert (await _record(checkout, "late")).resource == payment


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(checkout, "write") as client:
        yield client


async def test_over_http_the_retry_of_a_dead_request_is_answered_as_a_replay(
    checkout: CardCheckout, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    body = {**card_payment(invoice), "amount": str(invoice.amount_due.amount)}
    await _killed_while_charging(checkout, body, "died")
    keyed = {"Idempotency-Key": "died"}

    busy = await client.post("/api/v1/payments", json=body, headers=keyed)
    clock.advance(LEASE)
    processing = await client.post("/api/v1/payments", json=body, headers=keyed)
    await checkout.reconcile(older_than=timedelta(0))
    settled = await client.post("/api/v1/payments", json=body, headers=keyed)

    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "idempotency_key_in_use"
    assert processing.status_code == 202
    assert processing.headers["idempotent-replayed"] == "true"
    assert processing.json()["payment_status"] == "processing"
    assert settled.status_code == 201
    assert settled.headers["idempotent-replayed"] == "true"
    assert settled.json()["id"] == processing.json()["id"]
    assert settled.json()["payment_status"] == "succeeded"


@pytest.mark.parametrize("settled_by", ["reconciliation", "a gateway event"])
async def test_a_key_answered_processing_replays_the_payment_as_it_is_now(
    checkout: CardCheckout, settled_by: str
) -> None:
    invoice = await finalized_invoice(checkout, await customer_with_card(checkout))
    body = card_payment(invoice)
    faults = SandboxFaults()
    sandbox(checkout).faults = faults
    sandbox(checkout).emit_charge_events = settled_by == "a gateway event"
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    first = await checkout.create_payment(ENV, body, idempotency_key="slow")
    assert first.status is PaymentStatus.PROCESSING  # answered 202: the gateway's answer was lost

    if settled_by == "reconciliation":
        await checkout.reconcile(older_than=timedelta(0))
    else:
        await sandbox(checkout).drain_events()
    assert (await checkout.get_payment(ENV, first.id)).status is PaymentStatus.SUCCEEDED

    retry = await checkout.create_payment_answer(ENV, body, idempotency_key="slow")
    assert retry.replayed
    assert (retry.value.id, retry.value.status) == (first.id, PaymentStatus.SUCCEEDED)
    assert len(await sandbox(checkout).succeeded_charges()) == 1
