"""PostgreSQL's default executor: SQLAlchemy's statements run on the asyncpg connection itself.

SQLAlchemy builds and compiles every statement (`Binder` keeps the compiled forms), but its
execution layer is skipped: an execution context, parameter and result objects, a greenlet
switch per call and a transaction object per connection cost several times asyncpg's own
CPU per statement. The connection comes straight from SQLAlchemy's pool.

Staged writes go as one statement (data-modifying CTEs, each versioned UPDATE counted by
`card_checkout_expect_rows`, which fails the whole statement if a row moved); a unit of
work that only writes sends just that statement, which commits as it ends.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import asyncpg
from asyncpg.transaction import Transaction
from sqlalchemy import (
    ARRAY,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement, Executable

from adapters.sql import errors
from adapters.sql import sqlalchemy_internals as internals
from adapters.sql.binder import Binder, rows_written
from adapters.sql.executor import Result
from adapters.sql.liveness import PROTOCOL_BROKEN, SERVER_CLOSED, closed_by_server
from adapters.sql.rows import Row
from adapters.sql.staging import StagedWrites, Write, one_statement_each
from core.errors import CheckoutError, ServiceUnavailable


class AsyncpgExecutor:
    name = "asyncpg"
    writes_alone = True

    def __init__(self, engine: AsyncEngine) -> None:
        internals.check()  # at start-up, rather than on the first request
        self.engine = engine
        self.binder = Binder(engine.dialect)

    async def connect(self, *, transaction: bool) -> AsyncpgConnection:
        with errors.connecting():
            return await self._connect(transaction=transaction)

    async def _connect(self, *, transaction: bool) -> AsyncpgConnection:
        # Straight from the pool: no SQLAlchemy Connection.
        raw = await self.engine.raw_connection()
        while raw.driver_connection is None or raw.driver_connection.is_closed():
            await internals.greenlet_spawn(raw.invalidate)  # the server closed it while pooled
            raw = await self.engine.raw_connection()
        connection = AsyncpgConnection(self.binder, raw)
        if transaction:
            try:
                await connection.begin()
            except BaseException:
                await connection.close()
                raise
        return connection

    def statements_for(self, writes: StagedWrites) -> list[Write]:
        """One statement for all of them, but for updates whose row found moved means more
        than `ConcurrentUpdate`: the combined statement's check cannot say which row moved,
        so those go first, each on its own."""
        alone = StagedWrites()
        for key, update_ in list(writes.updates.items()):
            if update_.stale is not None:
                alone.updates[key] = writes.updates.pop(key)
        sent = one_statement_each(alone)
        if writes:
            sent.append(_combined(writes))
        return sent


class AsyncpgConnection:
    def __init__(self, binder: Binder, raw: PoolProxiedConnection) -> None:
        self.binder = binder
        self.raw = raw  # the pool's record, given back on close
        self.driver = cast(asyncpg.Connection, raw.driver_connection)
        self.transaction: Transaction | None = None

    async def begin(self) -> None:
        begun = self.driver.transaction()
        with _discarded_unless_reported(self.driver):
            await begun.start()
        self.transaction = begun

    async def run(self, statement: Executable, params: Any = None) -> Result:
        bound = self.binder.bind(cast(ClauseElement, statement), params)
        with _discarded_unless_reported(self.driver):
            if bound.returns_rows:
                found = await self.driver.fetch(bound.sql, *bound.arguments)
                return Result(cast(list[Row], found), len(found))  # records map by name
            status = await self.driver.execute(bound.sql, *bound.arguments)
            return Result([], rows_written(status))

    async def commit(self) -> None:
        transaction, self.transaction = self.transaction, None
        if transaction is not None:
            with _discarded_unless_reported(self.driver):
                await transaction.commit()  # ended either way: nothing to roll back

    async def close(self) -> None:
        raw, driver = self.raw, self.driver
        transaction, self.transaction = self.transaction, None
        try:
            # One the server ended has nothing to roll back (asyncpg would refuse it).
            if transaction is not None and not closed_by_server(driver):
                await transaction.rollback()
        except BaseException as error:
            await internals.greenlet_spawn(raw.invalidate)  # never lend one out in a transaction
            # A connection gone took its transaction with it; the error that ended the unit
            # (raised as this one closes) is the one to tell.
            if not (driver.is_closed() and isinstance(error, Exception)):
                raise
        # Invalidating gives it back too; either may close a connection, which awaits.
        if closed_by_server(driver):
            await internals.greenlet_spawn(raw.invalidate)  # the pool must not lend it again
        else:
            await internals.greenlet_spawn(raw.close)


@contextmanager
def _discarded_unless_reported(driver: asyncpg.Connection) -> Iterator[None]:
    """A call that fails other than by the server's report (the connection lost, a timeout,
    a cancelled task) leaves the connection in a state unknown: it is closed here, and
    `close` then drops it from the pool instead of lending it again. One found closed
    already was lost to the server or the network: `ServiceUnavailable`."""
    try:
        # A connection the server ended between statements is lost, and says so: asyncpg
        # would refuse the statement as if another operation were using the connection.
        if closed_by_server(driver):
            raise asyncpg.ConnectionDoesNotExistError(SERVER_CLOSED)
        try:
            yield
        except asyncpg.InternalClientError as broken:
            # Mostly the server's FATAL read before the end of the stream came: lost too.
            raise asyncpg.ConnectionDoesNotExistError(PROTOCOL_BROKEN) from broken
    except BaseException as error:
        reported = isinstance(error, asyncpg.PostgresError)
        lost = not reported and driver.is_closed()  # before terminate() closes it here
        if not reported or isinstance(error, asyncpg.PostgresConnectionError):
            driver.terminate()
        if lost and isinstance(error, Exception):
            raise ServiceUnavailable() from error
        raise


def _combined(writes: StagedWrites) -> Write:
    """The staged writes as one statement, its parameters, and what a unique index's
    refusal means, by table."""
    shape: list[tuple[Any, ...]] = []
    params: dict[str, Any] = {}
    conflicts: dict[str, CheckoutError | None] = {}
    for n, (table, pending) in enumerate(writes.inserts_in_order()):
        rows = list(pending.rows.values())
        columns = tuple(rows[0])
        shape.append(("insert", table, columns, len(rows)))
        for r, row in enumerate(rows):
            params.update({f"i{n}_{r}_{c}": row[c] for c in columns})
        conflicts[table.name] = pending.conflict
    for n, update_ in enumerate(writes.updates.values()):
        statements = update_.statements
        table = statements.table
        columns = tuple(c for c in update_.values if c not in statements.keys)
        shape.append(("update", table, columns, statements))
        versioned = statements.versioned(update_.values, update_.read_version)
        params.update({f"u{n}_{name}": value for name, value in versioned.items()})
        conflicts[table.name] = conflicts.get(table.name) or update_.conflict
    for n, ((table, column), values) in enumerate(writes.deletes.items()):
        shape.append(("delete", table, column, n))
        params[f"d{n}_values"] = values
    return Write(_combined_statement(tuple(shape)), params, conflicts)


def _typed(name: str, table: Table, column: str) -> Any:
    """A parameter of the column's type, so that its value is sent as the column takes it."""
    return bindparam(name, type_=table.c[column].type)


# Shapes of combined writes seen lately, each built once; the binder keeps its compiled form.
@functools.lru_cache(maxsize=512)
def _combined_statement(shape: tuple[Any, ...]) -> Executable:
    """One PostgreSQL statement for a shape of staged writes: each INSERT (with all its
    rows), each versioned UPDATE and each DELETE in a CTE, and a SELECT that fails the whole
    statement with serialization_failure unless every UPDATE matched its one row."""
    ctes = []
    checks = []
    updates = 0
    for n, (kind, table, columns, extra) in enumerate(shape):
        if kind == "insert":
            # Rows as a UNION ALL of SELECTs, in order (the outbox's sequence follows it): a
            # multi-row VALUES has no cache key in SQLAlchemy and would compile on every call.
            rows = [
                select(*(_typed(f"i{n}_{r}_{c}", table, c).label(c) for c in columns))
                for r in range(extra)
            ]
            source = rows[0] if len(rows) == 1 else union_all(*rows)
            ctes.append(insert(table).from_select(list(columns), source).cte(f"w{n}"))
            continue
        if kind == "delete":
            # One array parameter for any count of values (an IN list compiles per count).
            column = table.c[columns]
            values = bindparam(f"d{extra}_values", type_=ARRAY(column.type))
            ctes.append(delete(table).where(column == any_(values)).cte(f"w{n}"))
            continue
        u = updates
        updates += 1
        matched = (
            update(table)
            .where(extra.at_version(f"u{u}_"))
            .values({c: _typed(f"u{u}_{c}", table, c) for c in columns})
            .returning(literal_column("1"))
            .cte(f"w{n}")
        )
        ctes.append(matched)
        checks.append(select(func.count()).select_from(matched).scalar_subquery())
    # A literal 1, not a parameter: every value is then one given at execution.
    expected: Any = literal_column("1")
    found: list[Any] = [func.card_checkout_expect_rows(check, expected) for check in checks]
    found = found or [literal_column("1")]
    return select(*found).add_cte(*ctes)
