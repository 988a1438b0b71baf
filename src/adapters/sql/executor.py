"""The seam between a unit of work and the database: an `Executor` lends connections that
run statements and turns staged writes into statements.

Two implement it: `SqlAlchemyExecutor`, the reference, on any database SQLAlchemy drives;
`AsyncpgExecutor`, PostgreSQL's default, which runs the same statements on asyncpg itself.
Both raise the driver's errors as they come: `adapters.sql.errors` says what they mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs
from sqlalchemy.sql import Executable

from adapters.sql.rows import Row
from adapters.sql.staging import StagedWrites, Write


@attrs.frozen
class Result:
    """What a statement gave: its rows (mappings by column name) and the count written."""

    records: Sequence[Row]
    rowcount: int

    def first(self) -> Row | None:
        return self.records[0] if self.records else None


class Connection(Protocol):
    """One borrowed connection, in a transaction unless lent without one."""

    async def run(self, statement: Executable, params: Any = None) -> Result: ...

    async def commit(self) -> None: ...

    async def close(self) -> None:
        """Give the connection back, its transaction rolled back if still open."""


class Executor(Protocol):
    name: str
    # A unit that only writes, in one statement, may send it without a transaction: it then
    # commits as it ends (one round trip in all). Only where that statement is atomic.
    writes_alone: bool

    async def connect(self, *, transaction: bool) -> Connection:
        """Borrow a connection; begin a transaction unless told not to (then each
        statement commits as it ends)."""

    def statements_for(self, writes: StagedWrites) -> list[Write]:
        """The statements that send `writes` (taken: the executor may reorder them)."""
