"""The sandbox's documents on SQL: several written in one transaction, or none of them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clock import ManualClock
from adapters.ids import UlidIdGenerator
from adapters.sandbox import SandboxFaults, SandboxPaymentGateway
from adapters.sandbox.store import Document, Expected
from adapters.sql import SqlSandboxStore, create_engine_from_url
from core.errors import ValidationError
from core.gateway import (
    ChargeStatus,
    CheckoutMode,
    CheckoutSessionRequest,
    GatewayUnavailable,
)
from core.money import Money
from tests.helpers import VISA
from tests.integration.http_server import free_port
from tests.unit.test_sandbox_gateway import _customer_with_visa, _request


async def test_documents_written_together_are_all_stored_or_none(engine: AsyncEngine) -> None:
    store = SqlSandboxStore(engine)
    with pytest.raises(StatementError, match="not JSON serializable"):
        await store.put_all(
            [("payment_intent", "pi_1", {"id": "pi_1"}),
             ("idempotency_key", "k", {"answer": {1, 2}})]  # a set: not JSON
        )  # fmt: skip
    assert await store.get("payment_intent", "pi_1") is None
    assert await store.get("idempotency_key", "k") is None
    assert await store.put_all(
        [("payment_intent", "pi_1", {"id": "pi_1"}), ("idempotency_key", "k", {"answer": 1})]
    )
    assert await store.get("idempotency_key", "k") == {"answer": 1}


async def test_a_write_whose_expectation_fails_changes_nothing(engine: AsyncEngine) -> None:
    store = SqlSandboxStore(engine)
    await store.put("idempotency_key", "k", {"claim": "first", "answer": None})
    stale = Expected("idempotency_key", "k", "claim", "second")
    writes: list[tuple[str, str, Document]] = [
        ("payment_intent", "pi_1", {"id": "pi_1"}),
        ("idempotency_key", "k", {"answer": 1}),
    ]
    assert not await store.put_all(writes, expected=stale)
    assert await store.get("payment_intent", "pi_1") is None
    assert await store.get("idempotency_key", "k") == {"claim": "first", "answer": None}
    held = Expected("idempotency_key", "k", "claim", "first")
    assert await store.put_all(writes, expected=held)
    assert await store.get("idempotency_key", "k") == {"answer": 1}
    assert not await store.put_all(writes, expected=held)  # answered: the claim is gone


class DyingStore(SqlSandboxStore):
    """Dies (its connection lost) whenever it would store several documents together."""

    dying = False

    async def put_all(
        self, documents: Sequence[tuple[str, str, Document]], *, expected: Expected | None = None
    ) -> bool:
        if self.dying and len(documents) > 1:
            raise ConnectionResetError("connection terminated by the test")
        return await super().put_all(documents, expected=expected)


async def test_concurrent_retries_of_a_dead_request_charge_once(engine: AsyncEngine) -> None:
    clock, store = ManualClock(), DyingStore(engine)
    sandboxes = [
        SandboxPaymentGateway(
            clock=clock, ids=UlidIdGenerator(), store=store, faults=SandboxFaults(latency=0.001)
        )
        for _ in range(4)
    ]
    customer, card = await _customer_with_visa(sandboxes[0])
    request = _request(customer, card, "dead-request")
    store.dying = True
    with pytest.raises(GatewayUnavailable):
        await sandboxes[0].charge(request)
    store.dying = False
    with pytest.raises(GatewayUnavailable):  # within its lease, the request may still run
        await sandboxes[1].find_charge(request, None)
    clock.advance(timedelta(minutes=2))
    outcomes = await asyncio.gather(
        *(sandbox.find_charge(request, None) for sandbox in sandboxes for _ in range(5)),
        return_exceptions=True,
    )
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    assert answered, outcomes
    assert all(isinstance(o, GatewayUnavailable) for o in outcomes if isinstance(o, BaseException))
    assert len({o.intent_id for o in answered}) == 1
    assert len(await sandboxes[0].succeeded_charges()) == 1


async def test_a_connection_terminated_as_a_charge_is_answered_loses_nothing(
    clean_postgres_url: str,
) -> None:
    """The drill's failure: PostgreSQL ends the connection while the answer is written."""
    engine = create_engine_from_url(clean_postgres_url)
    clock = ManualClock()
    sandbox = SandboxPaymentGateway(
        clock=clock, ids=UlidIdGenerator(), store=SqlSandboxStore(engine), faults=SandboxFaults()
    )
    customer, card = await _customer_with_visa(sandbox)
    request = _request(customer, card, "terminated")
    terminated: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def terminate_on_answer(  # type: ignore[no-untyped-def]
        connection, cursor, statement, parameters, context, executemany
    ) -> None:
        answering = "INSERT INTO sandbox_documents" in statement and '"answer": {' in str(
            parameters
        )
        if answering and not terminated:
            terminated.append(statement)
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    try:
        with pytest.raises(GatewayUnavailable):
            await sandbox.charge(request)
        assert terminated
        event.remove(engine.sync_engine, "before_cursor_execute", terminate_on_answer)
        clock.advance(timedelta(minutes=2))
        found = await sandbox.find_charge(request, None)
        assert found.status is ChargeStatus.SUCCEEDED
        assert [c["id"] for c in await sandbox.succeeded_charges()] == [found.intent_id]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_store_whose_database_is_unreachable_is_a_gateway_that_did_not_answer(
    database: str, tmp_path: Path
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'sandbox.sqlite3'}"
        if database == "sqlite"
        else f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    )
    engine = create_engine_from_url(url)
    store = SqlSandboxStore(engine)
    gateway = SandboxPaymentGateway(ManualClock(), UlidIdGenerator(), store=store)
    try:
        for call in (
            store.get("customer", "cus_1"),
            store.all("payment_intent"),
            store.put("customer", "cus_1", {"id": "cus_1"}),
            store.delete("customer", "cus_1"),
            gateway.get_customer("cus_1"),
        ):
            with pytest.raises(GatewayUnavailable):
                await call
    finally:
        await engine.dispose()


async def test_a_hosted_checkout_submitted_twice_at_once_pays_once(engine: AsyncEngine) -> None:
    sandbox = SandboxPaymentGateway(ManualClock(), UlidIdGenerator(), store=SqlSandboxStore(engine))
    customer, _ = await _customer_with_visa(sandbox)
    session = await sandbox.create_checkout_session(
        CheckoutSessionRequest(
            mode=CheckoutMode.PAYMENT,
            gateway_customer_id=customer,
            idempotency_key="double-click",
            amount=Money.of("10.00", "usd"),
            metadata={"payment_id": "pay_double"},
        )
    )

    submitted = await asyncio.gather(
        *(sandbox.complete_checkout_session(session.id, VISA) for _ in range(4)),
        return_exceptions=True,
    )

    refused = [answer for answer in submitted if isinstance(answer, ValidationError)]
    assert len(refused) == 3, submitted
    intents = [
        intent
        for intent in await sandbox.store.all("payment_intent")
        if intent["metadata"].get("payment_id") == "pay_double"
    ]
    assert [intent["status"] for intent in intents] == ["succeeded"]
