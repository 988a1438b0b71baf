"""`SqlUnitOfWork`: one database transaction, with repositories over SQLAlchemy Core.

Writes run inside the transaction: a versioned UPDATE that matches no row raises
`ConcurrentUpdate` at once, and a constraint violation becomes the core's error for it. New
rows are staged and inserted together at commit (or before a statement that needs them), so
a row inserted then updated in one transaction costs one INSERT, and a transaction's payment
events and notifications go in one statement per table. The transaction begins on the first
statement, so a unit of work that only reads never holds a connection longer than its reads,
and it rolls back unless committed.

Every statement is built once, at import, and compiled once (by SQLAlchemy's cache on SQLite,
by `direct.Binder` on PostgreSQL), so a call only binds values (building
`insert(t).values(...)` per call cost more CPU than the round trip). On PostgreSQL statements
run on the asyncpg connection itself, which also begins and ends the transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Self, cast

import asyncpg
import attrs
from asyncpg.transaction import Transaction
from sqlalchemy import (
    ARRAY,
    Insert,
    Select,
    String,
    Table,
    any_,
    bindparam,
    delete,
    false,
    func,
    insert,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.util import greenlet_spawn

from adapters.sql import rows, tables
from adapters.sql.direct import Binder, Bound, rows_written
from adapters.sql.rows import Row
from core.errors import (
    CheckoutError,
    ConcurrentUpdate,
    CustomerAlreadyExists,
    IdempotencyKeyInUse,
    InvoiceAlreadyPaid,
    PaymentInProgress,
)
from core.model import (
    LIVE_STATUSES,
    PAID_STATUSES,
    ApiKey,
    Customer,
    Environment,
    Invoice,
    Notification,
    Payment,
    PaymentEvent,
    Refund,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.ports import IdempotencyRecord, InvoiceQuery, Page, PaymentQuery, ReadOnlyUnitOfWork


def _is_unique_violation(error: IntegrityError) -> bool:
    return "UNIQUE constraint failed" in str(error.orig)  # SQLite's words


def _any_of(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values` as ORed equalities: one cached statement per count of values,
    where an IN list's values are spliced into the SQL as it runs (compiled each time)."""
    return or_(false(), *(column == value for value in values))  # none: matches nothing


# An INSERT per table, its columns named by the values bound when it runs.
_INSERT = {table: insert(table) for table in tables.metadata.tables.values()}


class _Statements:
    """One table's statements by key, built once; values are bound at execution."""

    def __init__(self, table: Table, *keys: str) -> None:
        self.table = table
        self.keys = keys
        match = [table.c[k] == bindparam(f"match_{k}") for k in keys]
        self.insert = _INSERT[table]
        self.get = select(table).where(*match)
        self.get_for_update = self.get.with_for_update()
        # No values(): the SET clause is made of the parameters named like columns.
        self.update = update(table).where(*match, table.c.version == bindparam("match_version"))

    def key(self, *values: str) -> dict[str, str]:
        return {f"match_{k}": v for k, v in zip(self.keys, values, strict=True)}

    def versioned(self, values: dict[str, Any], read_version: int | None = None) -> dict[str, Any]:
        """UPDATE parameters: the new values, for the row still at the version it was read
        at (by default the one before them)."""
        params = {column: value for column, value in values.items() if column not in self.keys}
        params.update({f"match_{k}": values[k] for k in self.keys})
        params["match_version"] = values["version"] - 1 if read_version is None else read_version
        return params


_ENVIRONMENTS = _Statements(tables.environments, "id")
_API_KEYS = _Statements(tables.api_keys, "id")
_API_KEY_BY_HASH = select(tables.api_keys).where(
    tables.api_keys.c.key_hash == bindparam("key_hash")
)
_CUSTOMERS = _Statements(tables.customers, "environment_id", "id")
_CUSTOMER_BY_EXTERNAL_ID = select(tables.customers).where(
    tables.customers.c.environment_id == bindparam("environment_id"),
    tables.customers.c.external_id == bindparam("external_id"),
)
_INVOICES = _Statements(tables.invoices, "environment_id", "id")
_CUSTOMER_LABELS = {column.name: f"customer__{column.name}" for column in tables.customers.c}
_INVOICE_WITH_CUSTOMER = (
    select(
        tables.invoices,
        *(tables.customers.c[name].label(label) for name, label in _CUSTOMER_LABELS.items()),
    )
    .join(
        tables.customers,
        (tables.customers.c.environment_id == tables.invoices.c.environment_id)
        & (tables.customers.c.id == tables.invoices.c.customer_id),
    )
    .where(*(tables.invoices.c[k] == bindparam(f"match_{k}") for k in _INVOICES.keys))
)
_PAYMENTS = _Statements(tables.payments, "environment_id", "id")
_PAYMENT_BY_TRACKING_ID = select(tables.payments).where(
    tables.payments.c.gateway_tracking_id == bindparam("tracking_id")
)
_LIVE_PAYMENT = select(tables.payments).where(
    tables.payments.c.environment_id == bindparam("environment_id"),
    tables.payments.c.invoice_id == bindparam("invoice_id"),
    _any_of(tables.payments.c.status, [s.value for s in LIVE_STATUSES]),
)
# An IN list would be a new statement (compiled and prepared again) for each count of ids.
_REMOVE_DELIVERED_ANY = delete(tables.outbox).where(
    tables.outbox.c.id == any_(bindparam("ids", type_=ARRAY(String)))
)
_REFUNDS = _Statements(tables.refunds, "environment_id", "id")
_IDEMPOTENCY = _Statements(tables.idempotency_records, "environment_id", "key")
_GATEWAY_EVENT_SEEN = select(tables.gateway_events.c.id).where(
    tables.gateway_events.c.id == bindparam("event_id")
)
_WEBHOOK_ENDPOINTS = _Statements(tables.webhook_endpoints, "environment_id", "id")
# Built once, as the dispatcher runs them after every payment: values are bound per call.
_UNDELIVERED = select(tables.outbox).order_by(tables.outbox.c.sequence).limit(bindparam("limit"))
_ENDPOINTS_OF_ENVIRONMENT = (
    select(tables.webhook_endpoints)
    .where(tables.webhook_endpoints.c.environment_id == bindparam("environment_id"))
    .order_by(tables.webhook_endpoints.c.created_at, tables.webhook_endpoints.c.id)
)
_WEBHOOK_DELIVERIES = _Statements(tables.webhook_deliveries, "environment_id", "id")


@attrs.define
class _Staged:
    """Rows of one table waiting to be inserted, by key, with the error a clash means."""

    rows: dict[Hashable, dict[str, Any]] = attrs.Factory(dict)
    conflict: CheckoutError | None = None


@attrs.define
class _StagedUpdate:
    """A row's new values, waiting to be written over the version it was read at."""

    statements: _Statements
    values: dict[str, Any]
    read_version: int
    conflict: CheckoutError | None = None


@attrs.frozen
class _Result:
    """What a statement gave: its rows (mappings by column name) and the count written."""

    records: Sequence[Row]
    rowcount: int

    def first(self) -> Row | None:
        return self.records[0] if self.records else None


class _Session:
    """The unit of work's connection, opened (and its transaction begun) on first use.

    Writes are staged and sent together: before a statement that must see them, and at
    commit. On PostgreSQL they go as one statement (data-modifying CTEs, each versioned
    UPDATE checked by `card_checkout_expect_rows`); a transaction that only writes sends
    just that statement, which PostgreSQL commits on its own: one round trip, one commit.
    On PostgreSQL every statement runs on the asyncpg connection itself (`direct`), which
    also begins and ends the transaction; SQLAlchemy's pool lends the connection.
    """

    def __init__(self, engine: AsyncEngine, binder: Binder | None, read_only: bool) -> None:
        self.engine = engine
        self.binder = binder  # PostgreSQL: statements bound for asyncpg
        self.read_only = read_only
        self.connection: AsyncConnection | None = None  # SQLite
        self.raw: PoolProxiedConnection | None = None  # PostgreSQL: the pool's own record
        self.driver: asyncpg.Connection | None = None  # ... and asyncpg's connection in it
        self.transaction: Transaction | None = None
        self.inserts: dict[Table, _Staged] = {}
        self.updates: dict[tuple[Table, Hashable], _StagedUpdate] = {}

    @property
    def postgresql(self) -> bool:
        """PostgreSQL: writes combined into one statement, statements run on asyncpg."""
        return self.binder is not None

    @property
    def staged(self) -> bool:
        return bool(self.inserts or self.updates)

    def clear(self) -> None:
        self.inserts, self.updates = {}, {}

    @property
    def opened(self) -> bool:
        return self.connection is not None or self.raw is not None

    async def open(self, *, transaction: bool = True) -> None:
        """Borrow a connection and, unless read-only or told not to, begin a transaction
        (outside one, PostgreSQL commits each statement as it ends)."""
        transaction = transaction and not self.read_only
        if self.binder is None:
            self.connection = await self.engine.connect()
            if transaction:
                await self.connection.begin()
            return
        # Straight from the pool: no SQLAlchemy Connection, which would cost more CPU than
        # the statements it would not run.
        raw = await self.engine.raw_connection()
        while raw.driver_connection is None or raw.driver_connection.is_closed():
            await greenlet_spawn(raw.invalidate)  # the server closed it while it was pooled
            raw = await self.engine.raw_connection()
        driver = cast(asyncpg.Connection, raw.driver_connection)  # not None: seen above
        self.raw, self.driver = raw, driver
        if transaction:
            begun = driver.transaction()
            with _discarded_unless_reported(driver):
                await begun.start()
            self.transaction = begun

    async def commit(self) -> bool:
        """Commit the open transaction; False if none was open."""
        if not self.opened:
            return False
        try:
            if self.transaction is not None and self.driver is not None:
                transaction, self.transaction = self.transaction, None
                with _discarded_unless_reported(self.driver):
                    await transaction.commit()  # ended either way: nothing to roll back
            elif self.connection is not None:
                await self.connection.commit()
            else:
                return False
        except IntegrityError as error:  # deferred checks, e.g. SQLite foreign keys
            raise ConcurrentUpdate() from error
        finally:
            await self.close()
        return True

    async def close(self) -> None:
        """Give the connection back, its transaction rolled back if still open."""
        self.clear()
        connection, raw, driver = self.connection, self.raw, self.driver
        transaction = self.transaction
        self.connection, self.raw, self.driver, self.transaction = None, None, None, None
        if connection is not None:
            try:
                await connection.rollback()
            finally:
                await connection.close()
        if raw is None or driver is None:
            return
        try:
            if transaction is not None and not driver.is_closed():
                await transaction.rollback()
        except BaseException:
            await greenlet_spawn(raw.invalidate)  # never lend one out in a transaction
            raise
        # Invalidating gives it back too; either may close a connection, which awaits.
        if driver.is_closed():
            await greenlet_spawn(raw.invalidate)  # the pool must not lend it again
        else:
            await greenlet_spawn(raw.close)

    def refuse_if_read_only(self) -> None:
        if self.read_only:
            raise ReadOnlyUnitOfWork("this unit of work was opened read-only")

    def stage(self, table: Table, key: Hashable, values: dict[str, Any],
              conflict: CheckoutError | None = None) -> None:  # fmt: skip
        """Insert a row with the next statement, in one INSERT with its table's other rows."""
        self.refuse_if_read_only()
        staged = self.inserts.setdefault(table, _Staged())
        staged.rows[key] = values
        staged.conflict = conflict if len(staged.rows) == 1 else None

    def stage_update(self, statements: _Statements, key: Hashable, values: dict[str, Any],
                     conflict: CheckoutError | None = None) -> None:  # fmt: skip
        """Write a row's new values with the next statement, if it is still at the version
        before them (else `ConcurrentUpdate`, then). A row added or changed earlier in this
        transaction and still waiting is changed where it waits."""
        self.refuse_if_read_only()
        table = statements.table
        inserted = self.inserts.get(table)
        waiting = inserted.rows.get(key) if inserted else None
        if waiting is not None:
            if waiting["version"] != values["version"] - 1:
                raise ConcurrentUpdate()
            self.stage(table, key, values, conflict)  # inserted as changed
            return
        update_ = self.updates.get((table, key))
        if update_ is None:
            self.updates[(table, key)] = _StagedUpdate(
                statements, values, values["version"] - 1, conflict
            )
            return
        if update_.values["version"] != values["version"] - 1:
            raise ConcurrentUpdate()
        update_.values, update_.conflict = values, conflict

    async def flush(self) -> None:
        """Send the staged writes: inserts first (foreign keys), then updates."""
        if not self.staged:
            return
        if self.postgresql:
            await self._run(*self._combined_write())
            return
        inserts, updates = self.inserts, self.updates
        self.clear()
        for table, waiting in inserts.items():
            rows_ = list(waiting.rows.values())
            await self._run(_INSERT[table], rows_[0] if len(rows_) == 1 else rows_,
                            waiting.conflict)  # fmt: skip
        for update_ in updates.values():
            await self.versioned_update(
                update_.statements, update_.values, update_.conflict, update_.read_version
            )

    async def write_alone(self) -> None:
        """Send the staged writes as the whole transaction: one statement, committed by
        PostgreSQL as it ends (atomic: a stale row fails all of it)."""
        statement, params, conflicts = self._combined_write()
        await self.open(transaction=False)
        try:
            await self._run(statement, params, conflicts)
        finally:
            await self.close()

    def _combined_write(self) -> tuple[Any, dict[str, Any], dict[str, CheckoutError | None]]:
        """The staged writes as one statement, its parameters, and the error a unique
        index's refusal means, by table."""
        shape: list[tuple[Any, ...]] = []
        params: dict[str, Any] = {}
        conflicts: dict[str, CheckoutError | None] = {}
        for n, (table, waiting) in enumerate(self.inserts.items()):
            rows_ = list(waiting.rows.values())
            columns = tuple(rows_[0])
            shape.append(("insert", table, columns, len(rows_)))
            for r, row in enumerate(rows_):
                params.update({f"i{n}_{r}_{c}": row[c] for c in columns})
            conflicts[table.name] = waiting.conflict
        for n, update_ in enumerate(self.updates.values()):
            statements = update_.statements
            table = statements.table
            columns = tuple(c for c in update_.values if c not in statements.keys)
            shape.append(("update", table, columns, statements.keys))
            versioned = statements.versioned(update_.values, update_.read_version)
            params.update({f"u{n}_{name}": value for name, value in versioned.items()})
            conflicts[table.name] = conflicts.get(table.name) or update_.conflict
        self.clear()
        return _combined_statement(tuple(shape)), params, conflicts

    async def execute(
        self, statement: Any, params: Any = None, conflict: CheckoutError | None = None
    ) -> _Result:
        if self.staged and self._needs_staged(statement):
            await self.flush()
        return await self._run(statement, params, conflict)

    def _needs_staged(self, statement: Any) -> bool:
        """Whether staged writes must be in first: for a statement on their tables, or any
        INSERT (whose foreign keys may point at them)."""
        if isinstance(statement, Insert):
            return True
        touched = (
            statement.columns_clause_froms if isinstance(statement, Select) else [statement.table]
        )
        staged_tables = {*self.inserts, *(table for table, _ in self.updates)}
        return any(table in staged_tables for table in touched)

    async def _run(
        self,
        statement: Any,
        params: Any,
        conflict: CheckoutError | dict[str, CheckoutError | None] | None,
    ) -> _Result:
        # Outside a transaction a write could not be undone, nor a lock held.
        if self.read_only and not (
            isinstance(statement, Select) and statement._for_update_arg is None
        ):
            self.refuse_if_read_only()
        if not self.opened:
            await self.open()
        if self.binder is not None:
            assert self.driver is not None
            return await self._run_direct(self.binder, self.driver, statement, params, conflict)
        assert self.connection is not None
        try:
            result = await self.connection.execute(statement, params)
            found = list(result.mappings()) if result.returns_rows else []
            return _Result(cast(list[Row], found), result.rowcount)
        except IntegrityError as error:
            if not _is_unique_violation(error):
                raise  # a broken foreign key or check is a bug, not a race
            assert not isinstance(conflict, dict), "combined writes are PostgreSQL's"
            raise (conflict or ConcurrentUpdate()) from error
        except OperationalError as error:
            # SQLite: another writer holds the database, or our snapshot went stale.
            if "locked" in str(error.orig) or "busy" in str(error.orig):
                raise ConcurrentUpdate() from error
            raise

    async def _run_direct(
        self,
        binder: Binder,
        driver: asyncpg.Connection,
        statement: Any,
        params: Any,
        conflict: CheckoutError | dict[str, CheckoutError | None] | None,
    ) -> _Result:
        bound = binder.bind(statement, params)
        try:
            with _discarded_unless_reported(driver):
                return await self._fetch_or_execute(driver, bound)
        except asyncpg.UniqueViolationError as error:
            if isinstance(conflict, dict):  # one statement over several tables
                conflict = conflict.get(error.table_name or "")
            raise (conflict or ConcurrentUpdate()) from error
        except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError) as error:
            # A serialization failure, a deadlock, or a versioned row that moved.
            raise ConcurrentUpdate() from error

    @staticmethod
    async def _fetch_or_execute(driver: asyncpg.Connection, bound: Bound) -> _Result:
        if bound.returns_rows:
            found = await driver.fetch(bound.sql, *bound.arguments)
            return _Result(cast(list[Row], found), len(found))  # records map by name
        status = await driver.execute(bound.sql, *bound.arguments)
        return _Result([], rows_written(status))

    async def one(self, statement: Any, params: dict[str, Any]) -> Row | None:
        """The first row of a query, or None."""
        return (await self.execute(statement, params)).first()

    async def versioned_update(self, statements: _Statements, values: dict[str, Any],
                               conflict: CheckoutError | None = None,
                               read_version: int | None = None) -> None:  # fmt: skip
        """UPDATE the row to `values` only if it still has the version it was read at (by
        default the one before them)."""
        params = statements.versioned(values, read_version)
        result = await self.execute(statements.update, params, conflict)
        if result.rowcount != 1:
            raise ConcurrentUpdate()


@contextmanager
def _discarded_unless_reported(driver: asyncpg.Connection) -> Iterator[None]:
    """A call that fails other than by the server's report (the connection lost, a timeout,
    a cancelled task) leaves the connection in a state unknown: it is closed here, and the
    session's `close` then drops it from the pool instead of lending it again."""
    try:
        yield
    except BaseException as error:
        reported = isinstance(error, asyncpg.PostgresError)
        if not reported or isinstance(error, asyncpg.PostgresConnectionError):
            driver.terminate()
        raise


def _typed(name: str, table: Table, column: str) -> Any:
    """A parameter of the column's type, so that its value is sent as the column takes it."""
    return bindparam(name, type_=table.c[column].type)


# Shapes of combined writes seen lately, each built once; SQLAlchemy caches its compiled form.
@functools.lru_cache(maxsize=512)
def _combined_statement(shape: tuple[Any, ...]) -> Any:
    """One PostgreSQL statement for a shape of staged writes: each INSERT (with all its
    rows) and each versioned UPDATE in a CTE, and a SELECT that fails the whole statement
    with serialization_failure unless every UPDATE matched its one row."""
    ctes = []
    checks = []
    updates = 0
    for n, (kind, table, columns, extra) in enumerate(shape):
        if kind == "insert":
            # Rows as a UNION ALL of SELECTs, in order (the outbox's sequence follows it): a
            # multi-row VALUES has no cache key in SQLAlchemy and would compile on every call.
            rows_ = [
                select(*(_typed(f"i{n}_{r}_{c}", table, c).label(c) for c in columns))
                for r in range(extra)
            ]
            source = rows_[0] if len(rows_) == 1 else union_all(*rows_)
            ctes.append(insert(table).from_select(list(columns), source).cte(f"w{n}"))
            continue
        u = updates
        updates += 1
        keys = extra
        matched = (
            update(table)
            .where(
                *(table.c[k] == bindparam(f"u{u}_match_{k}") for k in keys),
                table.c.version == bindparam(f"u{u}_match_version"),
            )
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


def _keyset(table: Table, env: str, starting_after: str | None) -> ColumnElement[bool] | None:
    """Rows after the cursor row, newest first by (created_at, id)."""
    if starting_after is None:
        return None
    cursor = (
        select(table.c.created_at, table.c.id)
        .where(table.c.environment_id == env, table.c.id == starting_after)
        .subquery()
    )
    return tuple_(table.c.created_at, table.c.id) < tuple_(
        select(cursor.c.created_at).scalar_subquery(), select(cursor.c.id).scalar_subquery()
    )


async def _page(session: _Session, statement: Any, limit: int, convert: Any) -> Page[Any]:
    result = await session.execute(statement.limit(limit + 1))
    found = [convert(row) for row in result.records]
    return Page(items=found[:limit], has_more=len(found) > limit)


class SqlEnvironmentRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, environment: Environment) -> None:
        await self._session.execute(_ENVIRONMENTS.insert, rows.environment_values(environment))

    async def get(self, environment_id: str) -> Environment | None:
        row = await self._session.one(_ENVIRONMENTS.get, _ENVIRONMENTS.key(environment_id))
        return rows.environment_from(row) if row else None

    async def update(self, environment: Environment) -> None:
        await self._session.versioned_update(_ENVIRONMENTS, rows.environment_values(environment))


class SqlApiKeyRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, key: ApiKey) -> None:
        await self._session.execute(_API_KEYS.insert, rows.api_key_values(key))

    async def get(self, key_id: str) -> ApiKey | None:
        row = await self._session.one(_API_KEYS.get, _API_KEYS.key(key_id))
        return rows.api_key_from(row) if row else None

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._session.one(_API_KEY_BY_HASH, {"key_hash": key_hash})
        return rows.api_key_from(row) if row else None

    async def update(self, key: ApiKey) -> None:
        await self._session.versioned_update(_API_KEYS, rows.api_key_values(key))


class SqlCustomerRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, customer: Customer) -> None:
        await self._session.execute(
            _CUSTOMERS.insert, rows.customer_values(customer), CustomerAlreadyExists()
        )

    async def get(self, environment_id: str, customer_id: str) -> Customer | None:
        row = await self._session.one(_CUSTOMERS.get, _CUSTOMERS.key(environment_id, customer_id))
        return rows.customer_from(row) if row else None

    async def get_by_external_id(self, environment_id: str, external_id: str) -> Customer | None:
        row = await self._session.one(
            _CUSTOMER_BY_EXTERNAL_ID, {"environment_id": environment_id, "external_id": external_id}
        )
        return rows.customer_from(row) if row else None


class SqlInvoiceRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, invoice: Invoice) -> None:
        await self._session.execute(_INVOICES.insert, rows.invoice_values(invoice))

    async def get(
        self, environment_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice | None:
        statement = _INVOICES.get_for_update if for_update else _INVOICES.get
        row = await self._session.one(statement, _INVOICES.key(environment_id, invoice_id))
        return rows.invoice_from(row) if row else None

    async def get_with_customer(
        self, environment_id: str, invoice_id: str
    ) -> tuple[Invoice, Customer] | None:
        row = await self._session.one(
            _INVOICE_WITH_CUSTOMER, _INVOICES.key(environment_id, invoice_id)
        )
        if row is None:
            return None
        customer = {column: row[label] for column, label in _CUSTOMER_LABELS.items()}
        return rows.invoice_from(row), rows.customer_from(customer)

    async def update(self, invoice: Invoice) -> None:
        values = rows.invoice_values(invoice)
        self._session.stage_update(_INVOICES, (invoice.environment_id, invoice.id), values)

    async def list(self, query: InvoiceQuery) -> Page[Invoice]:
        t = tables.invoices
        statement = select(t).where(t.c.environment_id == query.environment_id)
        if query.customer_id is not None:
            statement = statement.where(t.c.customer_id == query.customer_id)
        if query.statuses is not None:
            statement = statement.where(_any_of(t.c.status, [s.value for s in query.statuses]))
        after = _keyset(t, query.environment_id, query.starting_after)
        if after is not None:
            statement = statement.where(after)
        statement = statement.order_by(t.c.created_at.desc(), t.c.id.desc())
        return await _page(self._session, statement, query.limit, rows.invoice_from)


class SqlPaymentRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    @staticmethod
    def _conflict(payment: Payment) -> CheckoutError:
        """Which rule a payment row broke: its status says which unique index it is in."""
        if payment.status in LIVE_STATUSES:
            return PaymentInProgress(invoice_id=payment.invoice_id)
        if payment.status in PAID_STATUSES:
            return InvoiceAlreadyPaid(invoice_id=payment.invoice_id)
        return ConcurrentUpdate()

    async def add(self, payment: Payment) -> None:
        key = (payment.environment_id, payment.id)
        values = rows.payment_values(payment)
        self._session.stage(tables.payments, key, values, self._conflict(payment))

    async def get(
        self, environment_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment | None:
        statement = _PAYMENTS.get_for_update if for_update else _PAYMENTS.get
        row = await self._session.one(statement, _PAYMENTS.key(environment_id, payment_id))
        return rows.payment_from(row) if row else None

    async def get_by_tracking_id(self, gateway_tracking_id: str) -> Payment | None:
        row = await self._session.one(_PAYMENT_BY_TRACKING_ID, {"tracking_id": gateway_tracking_id})
        return rows.payment_from(row) if row else None

    async def update(self, payment: Payment) -> None:
        key = (payment.environment_id, payment.id)
        values = rows.payment_values(payment)
        conflict = self._conflict(payment)
        self._session.stage_update(_PAYMENTS, key, values, conflict)

    async def live_for_invoice(self, environment_id: str, invoice_id: str) -> Payment | None:
        row = await self._session.one(
            _LIVE_PAYMENT, {"environment_id": environment_id, "invoice_id": invoice_id}
        )
        return rows.payment_from(row) if row else None

    async def list(self, query: PaymentQuery) -> Page[Payment]:
        t = tables.payments
        statement = select(t).where(t.c.environment_id == query.environment_id)
        for column, value in ((t.c.invoice_id, query.invoice_id),
                              (t.c.customer_id, query.customer_id)):  # fmt: skip
            if value is not None:
                statement = statement.where(column == value)
        if query.statuses is not None:
            statement = statement.where(_any_of(t.c.status, [s.value for s in query.statuses]))
        if query.created_gte is not None:
            statement = statement.where(t.c.created_at >= query.created_gte)
        if query.created_lt is not None:
            statement = statement.where(t.c.created_at < query.created_lt)
        after = _keyset(t, query.environment_id, query.starting_after)
        if after is not None:
            statement = statement.where(after)
        statement = statement.order_by(t.c.created_at.desc(), t.c.id.desc())
        return await _page(self._session, statement, query.limit, rows.payment_from)

    async def processing(self, not_updated_since: datetime, limit: int) -> Sequence[Payment]:
        t = tables.payments
        result = await self._session.execute(
            select(t)
            .where(t.c.status == "processing", t.c.updated_at <= not_updated_since)
            .order_by(t.c.updated_at)
            .limit(limit)
        )
        return [rows.payment_from(row) for row in result.records]

    async def add_event(self, event: PaymentEvent) -> None:
        key = (event.payment_id, event.sequence)
        self._session.stage(tables.payment_events, key, rows.event_values(event))

    async def events(self, environment_id: str, payment_id: str) -> Sequence[PaymentEvent]:
        t = tables.payment_events
        result = await self._session.execute(
            select(t)
            .where(t.c.payment_id == payment_id, t.c.environment_id == environment_id)
            .order_by(t.c.sequence)
        )
        return [rows.event_from(row) for row in result.records]


class SqlRefundRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, refund: Refund) -> None:
        await self._session.execute(_REFUNDS.insert, rows.refund_values(refund))

    async def get(self, environment_id: str, refund_id: str) -> Refund | None:
        row = await self._session.one(_REFUNDS.get, _REFUNDS.key(environment_id, refund_id))
        return rows.refund_from(row) if row else None

    async def update(self, refund: Refund) -> None:
        await self._session.versioned_update(_REFUNDS, rows.refund_values(refund))

    async def for_payment(self, environment_id: str, payment_id: str) -> Sequence[Refund]:
        t = tables.refunds
        result = await self._session.execute(
            select(t)
            .where(t.c.environment_id == environment_id, t.c.payment_id == payment_id)
            .order_by(t.c.created_at, t.c.id)
        )
        return [rows.refund_from(row) for row in result.records]

    async def pending(self, not_updated_since: datetime, limit: int) -> Sequence[Refund]:
        t = tables.refunds
        result = await self._session.execute(
            select(t)
            .where(t.c.status == "pending", t.c.updated_at <= not_updated_since)
            .order_by(t.c.updated_at)
            .limit(limit)
        )
        return [rows.refund_from(row) for row in result.records]


class SqlIdempotencyRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def get(self, environment_id: str, key: str) -> IdempotencyRecord | None:
        row = await self._session.one(_IDEMPOTENCY.get, _IDEMPOTENCY.key(environment_id, key))
        return rows.idempotency_from(row) if row else None

    async def put(self, record: IdempotencyRecord) -> None:
        values = rows.idempotency_values(record)
        if record.version == 1:
            await self._session.execute(_IDEMPOTENCY.insert, values, IdempotencyKeyInUse())
            return
        try:
            await self._session.versioned_update(_IDEMPOTENCY, values)
        except ConcurrentUpdate:
            raise IdempotencyKeyInUse() from None


class SqlOutboxRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, notification: Notification) -> None:
        values = rows.notification_values(notification)
        self._session.stage(tables.outbox, notification.id, values)

    async def undelivered(self, limit: int) -> Sequence[Notification]:
        result = await self._session.execute(_UNDELIVERED, {"limit": limit})
        return [rows.notification_from(row) for row in result.records]

    async def remove_delivered(self, notification_ids: Sequence[str]) -> None:
        if self._session.postgresql:  # one statement for any count
            await self._session.execute(_REMOVE_DELIVERED_ANY, {"ids": list(notification_ids)})
            return
        t = tables.outbox
        await self._session.execute(delete(t).where(t.c.id.in_(list(notification_ids))))


class SqlGatewayEventLog:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def seen(self, event_id: str) -> bool:
        result = await self._session.execute(_GATEWAY_EVENT_SEEN, {"event_id": event_id})
        return result.first() is not None

    async def add(self, event_id: str, event_type: str, at: datetime) -> None:
        await self._session.execute(
            _INSERT[tables.gateway_events], {"id": event_id, "type": event_type, "processed_at": at}
        )


class SqlWebhookEndpointRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, endpoint: WebhookEndpoint) -> None:
        await self._session.execute(
            _WEBHOOK_ENDPOINTS.insert, rows.webhook_endpoint_values(endpoint)
        )

    async def get(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        row = await self._session.one(
            _WEBHOOK_ENDPOINTS.get, _WEBHOOK_ENDPOINTS.key(environment_id, endpoint_id)
        )
        return rows.webhook_endpoint_from(row) if row else None

    async def list(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        result = await self._session.execute(
            _ENDPOINTS_OF_ENVIRONMENT, {"environment_id": environment_id}
        )
        return [rows.webhook_endpoint_from(row) for row in result.records]

    async def update(self, endpoint: WebhookEndpoint) -> None:
        values = rows.webhook_endpoint_values(endpoint)
        await self._session.versioned_update(_WEBHOOK_ENDPOINTS, values)


class SqlWebhookDeliveryRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, delivery: WebhookDelivery) -> None:
        values = rows.webhook_delivery_values(delivery)
        await self._session.execute(_WEBHOOK_DELIVERIES.insert, values)

    async def get(self, environment_id: str, delivery_id: str) -> WebhookDelivery | None:
        row = await self._session.one(
            _WEBHOOK_DELIVERIES.get, _WEBHOOK_DELIVERIES.key(environment_id, delivery_id)
        )
        return rows.webhook_delivery_from(row) if row else None

    async def due(self, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
        t = tables.webhook_deliveries
        result = await self._session.execute(
            select(t)
            .where(t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, t.c.created_at, t.c.id)
            .limit(limit)
        )
        return [rows.webhook_delivery_from(row) for row in result.records]

    async def update(self, delivery: WebhookDelivery) -> None:
        values = rows.webhook_delivery_values(delivery)
        await self._session.versioned_update(_WEBHOOK_DELIVERIES, values)

    async def for_endpoint(
        self, environment_id: str, endpoint_id: str, limit: int
    ) -> Sequence[WebhookDelivery]:
        t = tables.webhook_deliveries
        result = await self._session.execute(
            select(t)
            .where(t.c.environment_id == environment_id, t.c.endpoint_id == endpoint_id)
            .order_by(t.c.created_at.desc(), t.c.id.desc())
            .limit(limit)
        )
        return [rows.webhook_delivery_from(row) for row in result.records]


class SqlUnitOfWork:
    def __init__(self, factory: SqlUnitOfWorkFactory, read_only: bool) -> None:
        self._factory = factory
        self._session = _Session(factory.engine, factory.binder, read_only)
        self.environments = SqlEnvironmentRepository(self._session)
        self.api_keys = SqlApiKeyRepository(self._session)
        self.customers = SqlCustomerRepository(self._session)
        self.invoices = SqlInvoiceRepository(self._session)
        self.payments = SqlPaymentRepository(self._session)
        self.refunds = SqlRefundRepository(self._session)
        self.idempotency = SqlIdempotencyRepository(self._session)
        self.outbox = SqlOutboxRepository(self._session)
        self.gateway_events = SqlGatewayEventLog(self._session)
        self.webhook_endpoints = SqlWebhookEndpointRepository(self._session)
        self.webhook_deliveries = SqlWebhookDeliveryRepository(self._session)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    async def commit(self) -> None:
        session = self._session
        if session.read_only:
            await self.rollback()
            session.refuse_if_read_only()
        if not session.opened and session.postgresql and session.staged:
            await session.write_alone()  # nothing was read: the writes are the transaction
            self._factory.commits += 1
            return
        await session.flush()
        if await session.commit():
            self._factory.commits += 1

    async def rollback(self) -> None:
        await self._session.close()


@attrs.define
class SqlUnitOfWorkFactory:
    engine: AsyncEngine
    commits: int = 0  # transactions committed by its units of work
    binder: Binder | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        dialect = self.engine.dialect
        self.binder = Binder(dialect) if dialect.name == "postgresql" else None

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self, read_only)
