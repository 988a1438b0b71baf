"""What a database's refusal means to the core, told by SQLSTATE or SQLite's result code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from adapters.sql import errors
from core.errors import ConcurrentUpdate, CustomerAlreadyExists, IdempotencyKeyInUse


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


def test_sqlite_busy_with_another_writer_is_a_concurrent_update(tmp_path: Path) -> None:
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
    assert isinstance(errors.translated(wrapped, {}), ConcurrentUpdate)


def test_another_broken_constraint_is_a_bug_but_a_race_at_commit() -> None:
    check = _wrapped(_sqlite("INSERT INTO t VALUES (3, 'c', 0)"))
    foreign_key = _postgres(asyncpg.ForeignKeyViolationError, "23503", "invoices")

    for error in (check, foreign_key):
        assert errors.translated(error, CONFLICTS) is None
        assert isinstance(errors.translated(error, {}, committing=True), ConcurrentUpdate)


def test_an_error_the_core_has_no_word_for_is_left_alone() -> None:
    assert errors.translated(_postgres(asyncpg.UndefinedTableError, "42P01"), {}) is None
    assert errors.translated(ValueError("not the database's"), {}) is None
