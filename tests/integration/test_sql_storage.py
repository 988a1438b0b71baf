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
    Notification,
    NotificationType,
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


async def test_a_payment_added_then_moved_costs_one_insert_per_table(engine: AsyncEngine) -> None:
    """The first transaction of a payment: its row, two events and two notifications land in
    three INSERTs, with no UPDATE for the row added in the same transaction."""
    units = SqlUnitOfWorkFactory(engine)
    async with units() as uow:
        await uow.customers.add(customer())
        await uow.invoices.add(invoice())
        await uow.commit()
    started, created, processing, event = started_then_processing("pay_0001")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    event_module.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with units() as uow:
            await uow.payments.add(started)
            await uow.payments.add_event(created)
            await uow.outbox.add(_notification(1))
            await uow.payments.update(processing)
            await uow.payments.add_event(event)
            await uow.outbox.add(_notification(2))
            await uow.commit()
    finally:
        event_module.remove(engine.sync_engine, "before_cursor_execute", record)
    assert statements == [
        "INSERT INTO payments",
        "INSERT INTO payment_events",
        "INSERT INTO outbox",
    ]
    async with units() as uow:
        assert await uow.payments.get(ENV, "pay_0001") == processing
        assert list(await uow.payments.events(ENV, "pay_0001")) == [created, event]
        assert [n.id for n in await uow.outbox.undelivered(10)] == ["evt_1", "evt_2"]


def _notification(number: int) -> Notification:
    return Notification(f"evt_{number}", ENV, NotificationType.PAYMENT_PROCESSING, T0, {})
