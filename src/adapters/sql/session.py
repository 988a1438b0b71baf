"""`SqlSession`: a unit of work's connection and its staged writes, on any executor.

The connection is borrowed (and its transaction begun) on the first statement, so a unit of
work that only reads holds it no longer than its reads, and one that only writes may send
its writes at commit without a transaction where the executor can. Writes are staged and
sent together before a statement that reads their tables, and at commit. Every failure goes
through `errors.translated`, and a versioned UPDATE that matched no row raises what its
repository said a moved row means.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, Table
from sqlalchemy.sql import Executable

from adapters.sql import errors
from adapters.sql.executor import Connection, Executor, Result
from adapters.sql.rows import Row
from adapters.sql.sqlalchemy_internals import locks_rows
from adapters.sql.staging import StagedWrites, Write
from adapters.sql.statements import TableStatements
from core.errors import CheckoutError
from core.ports import ReadOnlyUnitOfWork


class SqlSession:
    def __init__(self, executor: Executor, read_only: bool) -> None:
        self.executor = executor
        self.read_only = read_only
        self.connection: Connection | None = None
        self.staged = StagedWrites()

    @property
    def opened(self) -> bool:
        return self.connection is not None

    def refuse_if_read_only(self) -> None:
        if self.read_only:
            raise ReadOnlyUnitOfWork("this unit of work was opened read-only")

    # Writes: staged, each with what its failure means.

    def stage_insert(self, statements: TableStatements, values: dict[str, Any],
                     conflict: CheckoutError | None = None) -> None:  # fmt: skip
        """Insert a row; `conflict`: what a unique index's refusal means (None:
        `ConcurrentUpdate`)."""
        self.refuse_if_read_only()
        self.staged.insert(statements.table, statements.row_key(values), values, conflict)

    def stage_append(self, table: Table, key: Hashable, values: dict[str, Any]) -> None:
        """Insert a row into a table that is only appended to (a clash: `ConcurrentUpdate`)."""
        self.refuse_if_read_only()
        self.staged.insert(table, key, values)

    def stage_update(self, statements: TableStatements, values: dict[str, Any],
                     conflict: CheckoutError | None = None,
                     stale: CheckoutError | None = None) -> None:  # fmt: skip
        """Write a row's new version over the one before it; `stale`: what finding the row
        at another version means (None: `ConcurrentUpdate`)."""
        self.refuse_if_read_only()
        self.staged.update(statements, statements.row_key(values), values, conflict, stale)

    def stage_delete(self, table: Table, column: str, values: Sequence[Any]) -> None:
        self.refuse_if_read_only()
        if values:
            self.staged.delete(table, column, list(values))

    # Reads.

    async def execute(self, statement: Executable, params: Any = None) -> Result:
        # Outside a transaction a lock could not be held.
        if locks_rows(statement) or not isinstance(statement, Select):
            self.refuse_if_read_only()
        if self.staged and self._needs_staged(statement):
            await self.flush()
        return await self._run(statement, params, {})

    async def one(self, statement: Executable, params: dict[str, Any]) -> Row | None:
        """The first row of a query, or None."""
        return (await self.execute(statement, params)).first()

    def _needs_staged(self, statement: Executable) -> bool:
        """Whether the staged writes must be in first: for a read of their tables."""
        if not isinstance(statement, Select):
            return True
        staged = self.staged.tables()
        return any(table in staged for table in statement.columns_clause_froms)

    # Sending, committing, closing.

    async def flush(self) -> None:
        """Send the staged writes."""
        if self.staged:
            await self._send(self.executor.statements_for(self.staged.take()))

    async def commit(self) -> bool:
        """Send the staged writes and commit them; False if there was nothing to commit.
        The connection is given back either way."""
        if self.read_only:
            await self.close()
            self.refuse_if_read_only()
        try:
            if not self.opened and self.staged and self.executor.writes_alone:
                writes = self.executor.statements_for(self.staged.take())
                if len(writes) == 1:  # nothing read, one statement: it is the transaction
                    self.connection = await self.executor.connect(transaction=False)
                    await self._send(writes)
                    return True
                await self._send(writes)
            else:
                await self.flush()
            if self.connection is None:
                return False
            try:
                await self.connection.commit()
            except errors.DATABASE_ERRORS as error:
                meaning = errors.translated(error, {}, committing=True)
                if meaning is None:
                    raise
                raise meaning from error
            return True
        finally:
            await self.close()

    async def close(self) -> None:
        """Give the connection back, its transaction rolled back if still open."""
        if self.staged:
            self.staged = StagedWrites()
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    async def _send(self, writes: Sequence[Write]) -> None:
        for write in writes:
            result = await self._run(write.statement, write.params, write.conflicts)
            if write.versioned and result.rowcount != 1:
                raise write.moved()

    async def _run(self, statement: Executable, params: Any,
                   conflicts: Mapping[str, CheckoutError | None]) -> Result:  # fmt: skip
        if self.connection is None:
            self.connection = await self.executor.connect(transaction=not self.read_only)
        try:
            return await self.connection.run(statement, params)
        except errors.DATABASE_ERRORS as error:
            meaning = errors.translated(error, conflicts)
            if meaning is None:
                raise
            raise meaning from error
