"""What a database's refusal means to the core, decided in one place for every executor.

Errors are told apart by SQLSTATE (PostgreSQL, from asyncpg directly or through SQLAlchemy)
and by SQLite's extended result code, never by their message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum, auto

import asyncpg
from sqlalchemy.exc import DBAPIError, EmulatedDBAPIException, InvalidRequestError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.errors import CheckoutError, ConcurrentUpdate, ServiceUnavailable

# The database's own refusals, as each driver raises them (a pooled connection that fails to
# open comes as SQLAlchemy's adapted driver error, not wrapped in a DBAPIError).
_REFUSALS: tuple[type[Exception], ...] = (
    DBAPIError,
    EmulatedDBAPIException,
    asyncpg.PostgresError,
    sqlite3.Error,
)
# A connection that never came or went away: refused, reset, timed out (OSError covers
# TimeoutError), lost mid-statement, or none left in the pool in time.
_CONNECTION_FAILURES: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.ConnectionDoesNotExistError,
    PoolTimeout,
)
# Everything an executor may raise for the database's answer (anything else propagates).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    *_REFUSALS,
    *_CONNECTION_FAILURES,
    asyncpg.InterfaceError,  # an outage only when it says the connection is gone
)

UNIQUE_VIOLATION = "23505"
SERIALIZATION_FAILURE = "40001"  # also what card_checkout_expect_rows raises
DEADLOCK_DETECTED = "40P01"
INTEGRITY_CLASS = "23"
# The server is unreachable, shutting down, out of connections or resources, or a statement
# ran past statement_timeout or waited past lock_timeout: nothing the request did.
UNAVAILABLE_CLASSES = ("08", "53")  # connection exception, insufficient resources
UNAVAILABLE_STATES = {
    "57P01",  # admin_shutdown (also pg_terminate_backend)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, in recovery)
    "57014",  # query_canceled (statement_timeout)
    "55P03",  # lock_not_available (lock_timeout)
}

_SQLITE_UNIQUE = {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
# Written over by another writer since this transaction's snapshot: retrying may succeed.
_SQLITE_BUSY_SNAPSHOT = sqlite3.SQLITE_BUSY | (2 << 8)
# Primary codes: still locked after busy_timeout, or the file unusable.
_SQLITE_UNAVAILABLE = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
}


class Refusal(Enum):
    UNIQUE = auto()  # a unique index refused a row: what it means depends on the table
    CONTENDED = auto()  # another transaction won: serialization failure, deadlock
    INTEGRITY = auto()  # another constraint: a bug while writing, a race when committing
    UNAVAILABLE = auto()  # the database is down, unreachable or stalled past our timeouts


def refusal(error: BaseException) -> Refusal | None:
    """Which kind of refusal `error` is, if it is one the core has a word for."""
    if unavailable(error):
        return Refusal.UNAVAILABLE
    driver = _driver_error(error)
    if isinstance(driver, sqlite3.Error):
        code = getattr(driver, "sqlite_errorcode", None)
        if code is None:
            return None
        if code in _SQLITE_UNIQUE:
            return Refusal.UNIQUE
        if code == _SQLITE_BUSY_SNAPSHOT:
            return Refusal.CONTENDED
        if code & 0xFF == sqlite3.SQLITE_CONSTRAINT:
            return Refusal.INTEGRITY
        return None
    state = _sqlstate(driver)
    if state is None:
        return None
    if state == UNIQUE_VIOLATION:
        return Refusal.UNIQUE
    if state in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED):
        return Refusal.CONTENDED
    if state.startswith(INTEGRITY_CLASS):
        return Refusal.INTEGRITY
    return None


def unavailable(error: BaseException) -> bool:
    """Whether `error` says the database is down, unreachable or stalled (not that the
    request, or our code, is wrong)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True  # SQLAlchemy found the connection gone
    driver = _driver_error(error)
    for candidate in (driver, driver.__cause__ if driver is not None else None):
        if isinstance(candidate, _CONNECTION_FAILURES):
            return True
    if isinstance(driver, sqlite3.Error):
        code = getattr(driver, "sqlite_errorcode", None)
        return (
            code is not None
            and code != _SQLITE_BUSY_SNAPSHOT
            and (code & 0xFF in _SQLITE_UNAVAILABLE)
        )
    state = _sqlstate(driver)
    return state is not None and (
        state in UNAVAILABLE_STATES or state.startswith(UNAVAILABLE_CLASSES)
    )


# Also: the pool gave up replacing connections the server had closed (InvalidRequestError).
_CONNECTING_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, InvalidRequestError)


@contextmanager
def connecting() -> Iterator[None]:
    """Around opening a unit of work's connection: whatever stops it (refused, timed out,
    none free in the pool, a database not accepting connections, wrong credentials) means
    the database is unavailable to us, and nothing of the unit began."""
    try:
        yield
    except _CONNECTING_ERRORS as error:
        raise ServiceUnavailable() from error


def table_named(error: BaseException) -> str | None:
    """The table PostgreSQL names in the error (SQLite names none but in its message)."""
    driver = _driver_error(error)
    cause = driver.__cause__ if driver is not None else None
    for candidate in (driver, cause):
        if isinstance(candidate, asyncpg.PostgresError):
            name = getattr(candidate, "table_name", None)
            return name if isinstance(name, str) else None
    return None


def translated(error: BaseException, conflicts: Mapping[str, CheckoutError | None],
               *, committing: bool = False) -> CheckoutError | None:  # fmt: skip
    """The core's error for a statement's (or a commit's) failure, or None to let it go.

    `conflicts`: by table, what a unique index's refusal means in the statement (None, or a
    table not named: `ConcurrentUpdate`). A statement of one table need not be named by the
    error. Any other constraint broken by a statement is a bug and propagates; at commit
    (deferred checks) it means another transaction changed the rows first.
    """
    kind = refusal(error)
    if kind is Refusal.UNAVAILABLE:
        return ServiceUnavailable()
    if kind is Refusal.UNIQUE:
        table = table_named(error)
        if table is None and len(conflicts) == 1:
            [meaning] = conflicts.values()
        else:
            meaning = conflicts.get(table or "")
        return meaning or ConcurrentUpdate()
    if kind is Refusal.CONTENDED or (kind is Refusal.INTEGRITY and committing):
        return ConcurrentUpdate()
    return None


def _sqlstate(driver: BaseException | None) -> str | None:
    state = getattr(driver, "sqlstate", None)
    return state if isinstance(state, str) else None


def _driver_error(error: BaseException) -> BaseException | None:
    """The driver's own exception: SQLAlchemy wraps it (and its asyncpg adapter wraps
    asyncpg's again, as its cause)."""
    if isinstance(error, DBAPIError):
        return error.orig
    return error
