"""What a database's refusal means to the core, told by SQLSTATE or SQLite's result code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError, InvalidRequestError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from adapters.sql import errors
from core.errors import (
    ConcurrentUpdate,
    CustomerAlreadyExists,
    IdempotencyKeyInUse,
    ServiceUnavailable,
)


def _postgres(
    kind: type[asyncpg.PostgresError], sqlstate: str, table: str | None = None
) -> asyncpg.PostgresError:
    """As asyncpg raises it from the server's report."""
    fields = {"C": sqlstate, "M": "refused"} | ({"t": table} if table else {})
    made: asyncpg.PostgresError = kind.new(fields)
    return made


def _sqlite(statement: str) -> sqlite3.Error:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (id PRIMARY KEY, name UNIQUE, n CHECK (n > 0))")
    connection.execute("INSERT INTO t VALUES (1, 'a', 1)")
    try:
        connection.execute(statement)
    except sqlite3.Error as error:
        return error
    finally:
        connection.close()
    raise AssertionError("not refused")


def _adapted(driver: asyncpg.PostgresError) -> BaseException:
    """As SQLAlchemy's asyncpg adapter raises it, with asyncpg's error as its cause."""
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

    adapted: BaseException = AsyncAdapt_asyncpg_dbapi.OperationalError("refused", driver)  # type: ignore[no-untyped-call]
    adapted.__cause__ = driver
    return adapted


def _wrapped(orig: BaseException) -> IntegrityError:
    """As SQLAlchemy raises it."""
    return IntegrityError("INSERT ...", {}, orig)


CONFLICTS = {"customers": CustomerAlreadyExists(), "idempotency_records": IdempotencyKeyInUse()}


def test_a_unique_violation_means_what_its_table_says() -> None:
    error = _postgres(asyncpg.UniqueViolationError, "23505", "idempotency_records")

    assert isinstance(errors.translated(error, CONFLICTS), IdempotencyKeyInUse)


def test_a_unique_violation_of_a_table_with_no_meaning_is_a_lost_race() -> None:
    error = _postgres(asyncpg.UniqueViolationError, "23505", "gateway_events")

    assert isinstance(errors.translated(error, CONFLICTS), ConcurrentUpdate)


@pytest.mark.parametrize(
    "statement", ["INSERT INTO t VALUES (1, 'b', 1)", "INSERT INTO t VALUES (2, 'a', 1)"]
)
def test_sqlite_names_no_table_the_statements_one_table_is_meant(statement: str) -> None:
    error = _wrapped(_sqlite(statement))

    assert errors.refusal(error) is errors.Refusal.UNIQUE
    meaning = errors.translated(error, {"customers": CustomerAlreadyExists()})
    assert isinstance(meaning, CustomerAlreadyExists)


def test_through_sqlalchemys_asyncpg_adapter_the_sqlstate_and_table_are_read() -> None:
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

    driver = _postgres(asyncpg.UniqueViolationError, "23505", "customers")
    try:
        try:
            raise driver
        except asyncpg.UniqueViolationError as cause:
            adapted_error = AsyncAdapt_asyncpg_dbapi.IntegrityError("duplicate", cause)  # type: ignore[no-untyped-call]
            raise adapted_error from cause
    except AsyncAdapt_asyncpg_dbapi.IntegrityError as adapted:
        error = _wrapped(adapted)

    assert errors.table_named(error) == "customers"
    assert isinstance(errors.translated(error, CONFLICTS), CustomerAlreadyExists)


@pytest.mark.parametrize(
    "error",
    [
        _postgres(asyncpg.SerializationError, "40001"),
        _postgres(asyncpg.DeadlockDetectedError, "40P01"),
    ],
    ids=["serialization failure", "deadlock"],
)
def test_losing_to_another_transaction_is_a_concurrent_update(error: BaseException) -> None:
    assert isinstance(errors.translated(error, {}), ConcurrentUpdate)


def test_sqlite_still_busy_with_another_writer_after_its_wait_is_unavailable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "busy.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (id)")
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as busy:
            other.execute("BEGIN IMMEDIATE")
    finally:
        holder.close()
        other.close()

    wrapped = OperationalError("BEGIN", {}, busy.value)
    assert isinstance(errors.translated(wrapped, {}), ServiceUnavailable)


def test_sqlite_writing_over_a_snapshot_another_writer_changed_is_a_concurrent_update(
    tmp_path: Path,
) -> None:
    path = tmp_path / "snapshot.sqlite3"
    reader = sqlite3.connect(path, isolation_level=None)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("PRAGMA journal_mode=WAL")
        reader.execute("CREATE TABLE t (id)")
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM t").fetchall()
        writer.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.OperationalError) as stale:
            reader.execute("INSERT INTO t VALUES (2)")
    finally:
        reader.close()
        writer.close()

    wrapped = OperationalError("INSERT", {}, stale.value)
    assert isinstance(errors.translated(wrapped, {}), ConcurrentUpdate)


@pytest.mark.parametrize(
    ("kind", "sqlstate"),
    [
        (asyncpg.ConnectionFailureError, "08006"),
        (asyncpg.ClientCannotConnectError, "08001"),
        (asyncpg.AdminShutdownError, "57P01"),
        (asyncpg.CrashShutdownError, "57P02"),
        (asyncpg.CannotConnectNowError, "57P03"),
        (asyncpg.QueryCanceledError, "57014"),
        (asyncpg.LockNotAvailableError, "55P03"),
        (asyncpg.TooManyConnectionsError, "53300"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_database_that_is_down_or_stalled_is_service_unavailable(
    kind: type[asyncpg.PostgresError], sqlstate: str
) -> None:
    error = _postgres(kind, sqlstate)

    assert errors.refusal(error) is errors.Refusal.UNAVAILABLE
    assert isinstance(errors.translated(error, CONFLICTS), ServiceUnavailable)
    assert isinstance(errors.translated(error, {}, committing=True), ServiceUnavailable)
    # The same through SQLAlchemy's adapter of asyncpg, which keeps the SQLSTATE.
    adapted = OperationalError("SELECT", {}, _adapted(error))
    assert isinstance(errors.translated(adapted, {}), ServiceUnavailable)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
        PoolTimeout("QueuePool limit of size 10 overflow 0 reached"),
        OperationalError("SELECT 1", {}, Exception("closed"), connection_invalidated=True),
    ],
    ids=[
        "connection lost mid-statement",
        "refused",
        "reset",
        "connect timed out",
        "pool exhausted",
        "sqlalchemy saw a disconnect",
    ],
)
def test_a_connection_lost_refused_or_never_lent_is_service_unavailable(
    error: BaseException,
) -> None:
    assert isinstance(error, errors.DATABASE_ERRORS)
    assert errors.unavailable(error)
    assert isinstance(errors.translated(error, {}), ServiceUnavailable)


def test_a_client_side_misuse_of_a_live_connection_is_not_an_outage() -> None:
    misuse = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")

    assert not errors.unavailable(misuse)
    assert errors.translated(misuse, {}) is None


def test_another_broken_constraint_is_a_bug_but_a_race_at_commit() -> None:
    check = _wrapped(_sqlite("INSERT INTO t VALUES (3, 'c', 0)"))
    foreign_key = _postgres(asyncpg.ForeignKeyViolationError, "23503", "invoices")

    for error in (check, foreign_key):
        assert errors.translated(error, CONFLICTS) is None
        assert isinstance(errors.translated(error, {}, committing=True), ConcurrentUpdate)


def test_an_error_the_core_has_no_word_for_is_left_alone() -> None:
    assert errors.translated(_postgres(asyncpg.UndefinedTableError, "42P01"), {}) is None
    assert errors.translated(ValueError("not the database's"), {}) is None


@pytest.mark.parametrize(
    ("kind", "sqlstate"),
    [
        (asyncpg.ObjectNotInPrerequisiteStateError, "55000"),  # not accepting connections
        (asyncpg.InvalidCatalogNameError, "3D000"),  # no such database
        (asyncpg.InvalidPasswordError, "28P01"),
    ],
    ids=["not accepting connections", "no such database", "wrong password"],
)
def test_whatever_stops_a_connection_from_opening_is_service_unavailable(
    kind: type[asyncpg.PostgresError], sqlstate: str
) -> None:
    refused = _postgres(kind, sqlstate)

    for raising in (refused, _adapted(refused)):  # as the pool raises it, adapted
        with pytest.raises(ServiceUnavailable) as raised, errors.connecting():
            raise raising
        assert raised.value.__cause__ is raising


def test_an_error_that_is_not_the_databases_passes_through_connecting() -> None:
    with pytest.raises(KeyError), errors.connecting():
        raise KeyError("a bug")


def test_a_pool_that_gave_up_replacing_closed_connections_is_service_unavailable() -> None:
    gave_up = InvalidRequestError("This connection is closed")

    with pytest.raises(ServiceUnavailable), errors.connecting():
        raise gave_up
