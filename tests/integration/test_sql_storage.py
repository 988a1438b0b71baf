"""SQL storage: the storage contract on SQLite and PostgreSQL, and the schema's migrations."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event as event_module
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import SqlUnitOfWorkFactory, tables
from core.model import (
    Actor,
    InvoicePaymentStatus,
    Notification,
    NotificationType,
    PaymentStatus,
)
from core.ports import UnitOfWorkFactory
from tests.storage_contract import (
    ENV,
    T0,
    StorageContract,
    customer,
    invoice,
    started_then_processing,
)


class TestSqlStorage(StorageContract):
    @pytest.fixture
    def units(self, engine: AsyncEngine) -> UnitOfWorkFactory:
        return SqlUnitOfWorkFactory(engine)


async def test_the_migrated_schema_is_exactly_the_models(engine: AsyncEngine) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, tables.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


def _recording(engine: AsyncEngine) -> tuple[list[tuple[str, str]], Any]:
    """Statements sent from now on: their first words and the connection's isolation level."""
    statements: list[tuple[str, str]] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        level = conn.get_execution_options().get("isolation_level", "transaction")
        statements.append((" ".join(statement.split()[:3]), level))

    event_module.listen(engine.sync_engine, "before_cursor_execute", record)
    return statements, lambda: event_module.remove(engine.sync_engine, "before_cursor_execute",
                                                   record)  # fmt: skip


async def test_a_payments_writes_cost_one_statement_on_postgresql_one_per_table_on_sqlite(
    engine: AsyncEngine,
) -> None:
    """The first transaction of a payment: its row (added, then moved: no UPDATE), two events,
    two notifications and its invoice's new version. Then its outcome, written without a
    read: on PostgreSQL one statement that commits on its own."""
    units = SqlUnitOfWorkFactory(engine)
    async with units() as uow:
        await uow.customers.add(customer())
        await uow.invoices.add(invoice())
        await uow.commit()
    started, created, processing, event = started_then_processing("pay_0001")
    statements, stop = _recording(engine)
    try:
        async with units() as uow:
            read = await uow.invoices.get(ENV, "inv_0001", for_update=True)
            assert read is not None
            await uow.payments.add(started)
            await uow.payments.add_event(created)
            await uow.outbox.add(_notification(1))
            await uow.payments.update(processing)
            await uow.payments.add_event(event)
            await uow.outbox.add(_notification(2))
            charging = read.with_payment_status(InvoicePaymentStatus.PROCESSING, T0)
            await uow.invoices.update(charging)
            await uow.commit()
        first = list(statements)
        statements.clear()
        succeeded, settled = processing.transition(
            PaymentStatus.SUCCEEDED, at=T0, reason="charge succeeded", actor=Actor.API
        )
        async with units() as uow:
            await uow.payments.update(succeeded)
            await uow.payments.add_event(settled)
            await uow.invoices.update(charging.record_payment(succeeded.amount, T0))
            await uow.commit()
        second = list(statements)
    finally:
        stop()
    if engine.dialect.name == "postgresql":
        assert first == [("SELECT invoices.environment_id, invoices.id,", "transaction"),
                         ("WITH w0 AS", "transaction")]  # fmt: skip
        assert second == [("WITH w0 AS", "AUTOCOMMIT")]
    else:
        assert [head for head, _ in first] == [
            "SELECT invoices.environment_id, invoices.id,",
            "INSERT INTO payments",
            "INSERT INTO payment_events",
            "INSERT INTO outbox",
            "UPDATE invoices SET",
        ]
        assert [head for head, _ in second] == [
            "INSERT INTO payment_events",
            "UPDATE payments SET",
            "UPDATE invoices SET",
        ]
    async with units() as uow:
        assert await uow.payments.get(ENV, "pay_0001") == succeeded
        assert list(await uow.payments.events(ENV, "pay_0001")) == [created, event, settled]
        assert [n.id for n in await uow.outbox.undelivered(10)] == ["evt_1", "evt_2"]
        paid = await uow.invoices.get(ENV, "inv_0001")
        assert paid is not None
        assert paid.amount_remaining.is_zero


def _notification(number: int) -> Notification:
    return Notification(f"evt_{number}", ENV, NotificationType.PAYMENT_PROCESSING, T0, {})
