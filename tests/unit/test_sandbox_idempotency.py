"""No charge of the sandbox is ever lost to its own storage, and no key stays in flight forever.

A charge and the answer stored under its idempotency key are written together; a key whose
request died before answering is run again after its lease; a key said to be in flight is
looked past by searching the charges for the payment's id in their metadata.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from adapters.clock import ManualClock
from adapters.ids import UlidIdGenerator
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import InMemorySandboxStore, SandboxFaults, SandboxPaymentGateway
from adapters.sandbox.store import Document
from core.gateway import ChargeRequest, ChargeStatus, GatewayUnavailable
from core.model import PaymentStatus
from entrypoints.bootstrap import bootstrap
from tests.helpers import ENV, card_payment, customer_with_card, finalized_invoice
from tests.unit.test_sandbox_gateway import _customer_with_visa, _request

# Longer than any lease the sandbox gives a request to answer.
PAST_THE_LEASE = timedelta(minutes=2)


class AnswersLostStore(InMemorySandboxStore):
    """An in-memory store whose connection dies whenever a key's answer is written."""

    losing = True

    async def put(self, kind: str, key: str, document: Document) -> None:
        if self.losing and kind == "idempotency_key" and document.get("answer") is not None:
            raise ConnectionResetError("connection terminated by the test")
        await super().put(kind, key, document)

    async def put_all(self, documents: Sequence[tuple[str, str, Document]], **guard: Any) -> bool:
        if self.losing and any(
            kind == "idempotency_key" and doc.get("answer") is not None
            for kind, _, doc in documents
        ):
            raise ConnectionResetError("connection terminated by the test")
        return await super().put_all(documents, **guard)


def sandbox_on(store: InMemorySandboxStore, clock: ManualClock) -> SandboxPaymentGateway:
    return SandboxPaymentGateway(
        clock=clock, ids=UlidIdGenerator(), store=store, faults=SandboxFaults()
    )


def paid_for(request: ChargeRequest, payment_id: str) -> ChargeRequest:
    return ChargeRequest(
        amount=request.amount, gateway_customer_id=request.gateway_customer_id,
        payment_method_id=request.payment_method_id, idempotency_key=request.idempotency_key,
        metadata={"payment_id": payment_id},
    )  # fmt: skip


async def test_a_charge_whose_answer_could_not_be_stored_is_not_in_flight_forever() -> None:
    clock, store = ManualClock(), AnswersLostStore()
    store.losing = False
    sandbox = sandbox_on(store, clock)
    customer, card = await _customer_with_visa(sandbox)
    request = _request(customer, card, "answer-lost")
    store.losing = True
    with pytest.raises(GatewayUnavailable):
        await sandbox.charge(request)
    store.losing = False
    with pytest.raises(GatewayUnavailable):  # the first request may still be running
        await sandbox.find_charge(request, None)
    clock.advance(PAST_THE_LEASE)
    found = await sandbox.find_charge(request, None)
    assert found.status is ChargeStatus.SUCCEEDED
    assert [c["id"] for c in await sandbox.succeeded_charges()] == [found.intent_id]
    assert await sandbox.find_charge(request, None) == found


async def test_a_key_whose_request_died_is_run_once_by_concurrent_retries() -> None:
    clock, store = ManualClock(), AnswersLostStore()
    store.losing = False
    sandbox = sandbox_on(store, clock)
    customer, card = await _customer_with_visa(sandbox)
    request = _request(customer, card, "died")
    store.losing = True
    with pytest.raises(GatewayUnavailable):
        await sandbox.charge(request)
    store.losing = False
    clock.advance(PAST_THE_LEASE)
    sandbox.faults.latency = 0.001  # every call yields to the others
    outcomes = await asyncio.gather(
        *(sandbox.find_charge(request, None) for _ in range(20)), return_exceptions=True
    )
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    assert answered, outcomes
    assert all(isinstance(o, GatewayUnavailable) for o in outcomes if isinstance(o, BaseException))
    assert len({o.intent_id for o in answered}) == 1
    assert len(await sandbox.succeeded_charges()) == 1


async def test_a_key_said_in_flight_is_found_by_the_payments_id() -> None:
    """As a key left unanswered beside its charge by an earlier sandbox would be."""
    store = InMemorySandboxStore()
    sandbox = sandbox_on(store, ManualClock())
    customer, card = await _customer_with_visa(sandbox)
    request = paid_for(_request(customer, card, "pay_1:charge"), "pay_1")
    charged = await sandbox.charge(request)
    key = await store.get("idempotency_key", "pay_1:charge")
    assert key is not None
    await store.put("idempotency_key", "pay_1:charge", {**key, "answer": None})
    assert await sandbox.find_charge(request, None) == charged
    assert len(await sandbox.succeeded_charges()) == 1


async def test_a_search_that_finds_nothing_leaves_the_charge_unknown() -> None:
    store = InMemorySandboxStore()
    sandbox = sandbox_on(store, ManualClock())
    customer, card = await _customer_with_visa(sandbox)
    await sandbox.charge(paid_for(_request(customer, card, "pay_2:charge"), "pay_2"))
    request = paid_for(_request(customer, card, "pay_3:charge"), "pay_3")
    await sandbox.charge(request)
    for intent in await store.all("payment_intent"):
        if intent["metadata"]["payment_id"] == "pay_3":
            await store.delete("payment_intent", intent["id"])
    key = await store.get("idempotency_key", "pay_3:charge")
    assert key is not None
    await store.put("idempotency_key", "pay_3:charge", {**key, "answer": None})
    with pytest.raises(GatewayUnavailable):
        await sandbox.find_charge(request, None)
    assert len(await sandbox.succeeded_charges()) == 1


async def test_the_service_settles_a_charge_whose_answer_was_lost_in_the_sandbox() -> None:
    clock, store = ManualClock(), AnswersLostStore()
    store.losing = False
    checkout = bootstrap(
        uow=InMemoryUnitOfWorkFactory(), clock=clock, notifier=RecordingNotifier(),
        gateway=sandbox_on(store, clock),
    )  # fmt: skip
    customer = await customer_with_card(checkout)
    invoice = await finalized_invoice(checkout, customer)
    store.losing = True
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.PROCESSING
    store.losing = False
    clock.advance(PAST_THE_LEASE)
    report = await checkout.reconcile(older_than=timedelta(0))
    assert report.succeeded == 1
    assert (await checkout.get_payment(ENV, payment.id)).status is PaymentStatus.SUCCEEDED
    assert checkout.sandbox is not None
    assert len(await checkout.sandbox.charges_for(payment.id)) == 1


class BuggyStore(InMemorySandboxStore):
    """A store with a bug (not an outage) in writing charges."""

    async def put_all(self, documents: Sequence[tuple[str, str, Document]], **guard: Any) -> bool:
        if any(kind == "payment_intent" for kind, _, _ in documents):
            raise KeyError("a bug in the store")
        return await super().put_all(documents, **guard)


async def test_a_bug_in_the_sandbox_is_not_passed_off_as_a_gateway_that_did_not_answer() -> None:
    sandbox = sandbox_on(BuggyStore(), ManualClock())
    customer, card = await _customer_with_visa(sandbox)

    with pytest.raises(KeyError):
        await sandbox.charge(_request(customer, card, "bug"))
