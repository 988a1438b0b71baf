"""What a database's refusal means to the core, decided in one place for every executor.

Errors are told apart by SQLSTATE (PostgreSQL, from asyncpg directly or through SQLAlchemy)
and by SQLite's extended result code, never by their message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from enum import Enum, auto

import asyncpg
from sqlalchemy.exc import DBAPIError

from core.errors import CheckoutError, ConcurrentUpdate

# Everything an executor may raise for the database's answer (anything else propagates).
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, asyncpg.PostgresError, sqlite3.Error)

UNIQUE_VIOLATION = "23505"
SERIALIZATION_FAILURE = "40001"  # also what card_checkout_expect_rows raises
DEADLOCK_DETECTED = "40P01"
INTEGRITY_CLASS = "23"

_SQLITE_UNIQUE = {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
_SQLITE_CONTENDED = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}  # primary codes


class Refusal(Enum):
    UNIQUE = auto()  # a unique index refused a row: what it means depends on the table
    CONTENDED = auto()  # another transaction won: serialization failure, deadlock, busy
    INTEGRITY = auto()  # another constraint: a bug while writing, a race when committing


def refusal(error: BaseException) -> Refusal | None:
    """Which kind of refusal `error` is, if it is one the core has a word for."""
    driver = _driver_error(error)
    if isinstance(driver, sqlite3.Error):
        code = getattr(driver, "sqlite_errorcode", None)
        if code is None:
            return None
        if code in _SQLITE_UNIQUE:
            return Refusal.UNIQUE
        if code & 0xFF in _SQLITE_CONTENDED:
            return Refusal.CONTENDED
        if code & 0xFF == sqlite3.SQLITE_CONSTRAINT:
            return Refusal.INTEGRITY
        return None
    state = getattr(driver, "sqlstate", None)
    if not isinstance(state, str):
        return None
    if state == UNIQUE_VIOLATION:
        return Refusal.UNIQUE
    if state in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED):
        return Refusal.CONTENDED
    if state.startswith(INTEGRITY_CLASS):
        return Refusal.INTEGRITY
    return None


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


def _driver_error(error: BaseException) -> BaseException | None:
    """The driver's own exception: SQLAlchemy wraps it (and its asyncpg adapter wraps
    asyncpg's again, as its cause)."""
    if isinstance(error, DBAPIError):
        return error.orig
    return error
