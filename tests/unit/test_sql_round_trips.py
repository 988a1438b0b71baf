"""Trips to aiosqlite's thread: each costs CPU on both sides, so a unit of work makes no
more than its statements need (SQLite file, SQLAlchemy executor)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import rows, tables
from adapters.sql.engine import create_engine_from_url
from adapters.sql.uow import SqlUnitOfWorkFactory
from tests.storage_contract import customer, invoice


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'trips.sqlite3'}")
    async with engine.begin() as connection:
        await connection.run_sync(tables.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each call sent to aiosqlite's thread, in order."""
    sent: list[str] = []
    original = aiosqlite.core.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    return sent


async def test_a_unit_that_only_read_sends_no_rollback(
    engine: AsyncEngine, trips: list[str]
) -> None:
    factory = SqlUnitOfWorkFactory(engine)
    async with factory(read_only=True) as uow:
        assert await uow.invoices.get("env_a", "inv_none") is None

    assert trips.count("rollback") == 0  # SQLite begins a transaction at the first write


async def test_a_unit_left_uncommitted_rolls_back_once_and_keeps_nothing(
    engine: AsyncEngine, trips: list[str]
) -> None:
    factory = SqlUnitOfWorkFactory(engine)
    async with factory() as uow:
        await uow.customers.add(customer())
        await uow.invoices.add(invoice())
        assert await uow.invoices.get("env_a", invoice().id) is not None  # sent, not committed

    assert trips.count("rollback") == 1
    assert trips.count("commit") == 0
    async with factory(read_only=True) as uow:
        assert await uow.invoices.get("env_a", invoice().id) is None


async def test_a_committed_unit_keeps_its_writes_and_sends_no_rollback(
    engine: AsyncEngine, trips: list[str]
) -> None:
    factory = SqlUnitOfWorkFactory(engine)
    async with factory() as uow:
        await uow.customers.add(customer())
        await uow.invoices.add(invoice())
        await uow.commit()

    assert trips.count("commit") == 1
    assert trips.count("rollback") == 0
    async with factory(read_only=True) as uow:
        found = await uow.invoices.get("env_a", invoice().id)
    assert found is not None
    assert rows.invoice_values(found) == rows.invoice_values(invoice())
