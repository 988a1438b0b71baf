"""SQL storage: the storage contract on SQLite and PostgreSQL, and the schema's migrations."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import SqlUnitOfWorkFactory, tables
from core.ports import UnitOfWorkFactory
from tests.storage_contract import StorageContract


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
