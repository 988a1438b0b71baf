"""The reference executor: statements run through SQLAlchemy Core's own connections.

SQLite always runs here; on PostgreSQL it is chosen with `executor="sqlalchemy"` (the
asyncpg executor is the default there, and this one is what it is checked against).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from adapters.sql import errors
from adapters.sql import sqlalchemy_internals as internals
from adapters.sql.executor import Result
from adapters.sql.rows import Row
from adapters.sql.staging import StagedWrites, Write, one_statement_each


class SqlAlchemyExecutor:
    name = "sqlalchemy"
    writes_alone = False  # its writes are several statements: alone, some could land

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        internals.skip_idle_rollbacks(engine.dialect)

    async def connect(self, *, transaction: bool) -> SqlAlchemyConnection:
        with errors.connecting():
            connection = await self.engine.connect()
        try:
            # Read-only: SQLAlchemy begins on the first statement and rolls back at close.
            # Switching to AUTOCOMMIT instead costs a driver call each way, which on aiosqlite
            # is a hop to its thread and back: more than the BEGIN it saves.
            if transaction:
                with errors.connecting():
                    await connection.begin()
        except BaseException:
            await connection.close()
            raise
        return SqlAlchemyConnection(connection)

    def statements_for(self, writes: StagedWrites) -> list[Write]:
        return one_statement_each(writes)


class SqlAlchemyConnection:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def run(self, statement: Executable, params: Any = None) -> Result:
        result = await self.connection.execute(statement, params)
        found = list(result.mappings()) if result.returns_rows else []
        return Result(cast(list[Row], found), result.rowcount)

    async def commit(self) -> None:
        await self.connection.commit()

    async def close(self) -> None:
        # Closing rolls back a transaction still open, and the pool then skips its own
        # rollback on return: one hop to aiosqlite's thread, where rolling back first made two.
        await self.connection.close()
