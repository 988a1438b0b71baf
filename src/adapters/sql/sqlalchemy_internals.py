"""Every use of SQLAlchemy's private or undocumented API, in one place.

The asyncpg executor compiles statements with SQLAlchemy and runs them on the driver itself,
which needs the compiler's own view of a statement: its cache key, its positional parameters
and their bind processors, whether it returns rows or must be expanded per call. pyproject
bounds SQLAlchemy to the minor versions in `TESTED_MINOR_VERSIONS`; `check()` (run by
tests/unit/test_sql_internals.py and when an asyncpg executor is made) says plainly which
internal an upgrade changed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import attrs
import sqlalchemy
from sqlalchemy import bindparam, literal_column, select, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import LRUCache as LRUCache
from sqlalchemy.util import greenlet_spawn as greenlet_spawn

from adapters.sql.tables import invoices

TESTED_MINOR_VERSIONS = ("2.1",)

Processor = Callable[[Any], Any]


class InternalsChanged(RuntimeError):
    """The installed SQLAlchemy no longer has an internal this adapter relies on."""


@attrs.frozen
class StatementKey:
    """SQLAlchemy's cache key: equal for statements that differ only in their values."""

    key: Hashable
    cache_key: Any  # sqlalchemy.sql.cache_key.CacheKey


@attrs.frozen
class Shape:
    """What a compiled statement needs at execution: its SQL, its parameters in order with
    the processors their types bind them through, and whether it answers with rows."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Processor | None, ...]
    returns_rows: bool
    # Compiled from this very statement's values (an `IN` list spliced into the SQL).
    expands: bool


def statement_key(statement: ClauseElement) -> StatementKey | None:
    """The key SQLAlchemy's compiled cache uses, memoized on the statement; None for a
    statement SQLAlchemy would not cache either."""
    found = statement._generate_cache_key()
    return None if found is None else StatementKey(found.key, found)


def skip_idle_rollbacks(dialect: Dialect) -> None:
    """On aiosqlite, skip a rollback where SQLite has no transaction open: pysqlite would
    skip it too, but only after a hop to aiosqlite's thread and back. The pool rolls back
    every connection given back, after a commit too, and a unit that only read has none open
    (pysqlite begins one at the first write). `in_transaction` is read here without a hop.
    Replaces the dialect's `do_rollback`, once."""
    if dialect.driver != "aiosqlite" or getattr(dialect, "_skips_idle_rollbacks", False):
        return
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        driver = dbapi_connection.driver_connection  # the aiosqlite.Connection
        if driver is not None and driver._connection is not None and not driver.in_transaction:
            return
        rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    dialect._skips_idle_rollbacks = True  # type: ignore[attr-defined]


def locks_rows(statement: Any) -> bool:
    """A SELECT ... FOR UPDATE (or SHARE)."""
    return getattr(statement, "_for_update_arg", None) is not None


def compile_positional(statement: ClauseElement, dialect: Dialect, names: Sequence[str],
                       key: StatementKey | None = None) -> SQLCompiler:  # fmt: skip
    """Compile for a positional dialect; `names`: the values given, which for an INSERT or
    UPDATE without values() are its columns. With `key`, literal values the statement
    carries can later be bound from another statement of the same key."""
    extra = {} if key is None else {"cache_key": key.cache_key}
    compiled = statement.compile(dialect=dialect, column_keys=list(names), **extra)
    assert isinstance(compiled, SQLCompiler)
    return compiled


def shape(compiled: SQLCompiler, dialect: Dialect) -> Shape:
    names = tuple(compiled.positiontup or ())
    processors = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    return Shape(compiled.string, names, processors, _returns_rows(compiled),
                 bool(compiled.post_compile_params))  # fmt: skip


def values_with_literals(compiled: SQLCompiler, params: Mapping[str, Any],
                         key: StatementKey) -> Mapping[str, Any]:  # fmt: skip
    """`params` and the literal values of the statement `key` was taken from, by name, for
    the compiled form of another statement of the same key."""
    return compiled.construct_params(
        dict(params), extracted_parameters=key.cache_key.bindparams, escape_names=False
    )


def expanded(compiled: SQLCompiler, params: Mapping[str, Any]) -> tuple[str, list[Any], bool]:
    """A statement compiled for one call (its `IN` lists spliced in): the SQL, its arguments
    in order through their bind processors, and whether it returns rows."""
    state = compiled.construct_expanded_state(dict(params), escape_names=False)
    arguments = [
        state.processors[name](state.parameters[name])
        if name in state.processors
        else state.parameters[name]
        for name in state.positiontup or ()
    ]
    return state.statement, arguments, _returns_rows(compiled)


def _returns_rows(compiled: SQLCompiler) -> bool:
    """A SELECT, or a write with RETURNING. Not `effective_returning`: it reads a column list
    that `returning()` copies stale from a statement compiled before."""
    statement = compiled.statement
    return bool(getattr(statement, "is_select", False) or getattr(statement, "_returning", ()))


def installed_minor_version() -> str:
    return ".".join(sqlalchemy.__version__.split(".")[:2])


@functools.cache
def check() -> None:
    """Exercise every internal above on known statements; raise `InternalsChanged` naming
    the one that no longer behaves as this module expects."""
    dialect = asyncpg_dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy: untyped

    def changed(what: str, error: object = None) -> InternalsChanged:
        detail = f" ({type(error).__name__}: {error})" if error is not None else ""
        return InternalsChanged(
            f"SQLAlchemy {sqlalchemy.__version__} changed {what}{detail}; "
            "adapters/sql/sqlalchemy_internals.py relies on it (tested on "
            f"{', '.join(TESTED_MINOR_VERSIONS)}). Adapt that module, then widen the bound "
            "in pyproject.toml and TESTED_MINOR_VERSIONS."
        )

    def by_id(value: str) -> Any:
        return select(invoices.c.id).where(invoices.c.id == value)

    one, other = by_id("inv_1"), by_id("inv_2")
    try:
        one_key, other_key = statement_key(one), statement_key(other)
    except Exception as error:
        raise changed("Select._generate_cache_key()", error) from error
    if one_key is None or other_key is None or one_key.key != other_key.key:
        raise changed("the cache key of statements that differ only in values")
    try:
        locking = locks_rows(one.with_for_update()) and not locks_rows(one)
    except Exception as error:
        raise changed("Select._for_update_arg", error) from error
    if not locking:
        raise changed("Select._for_update_arg (no longer tells a locking SELECT)")
    written = update(invoices).where(invoices.c.id == bindparam("match_id"))
    listed = select(invoices.c.id).where(invoices.c.id.in_(["a", "b"]))
    try:
        found = shape(compile_positional(written, dialect, ["amount_paid", "match_id"]), dialect)
        keyed = compile_positional(one, dialect, [], one_key)
        literals = values_with_literals(keyed, {}, other_key)
        sql, arguments, _ = expanded(compile_positional(listed, dialect, []), {})
        returning: Any = written.returning(literal_column("1"))
        returns = shape(compile_positional(returning, dialect, ["match_id"]), dialect)
    except Exception as error:
        raise changed("the SQL compiler's positional parameters or expansion", error) from error
    if found.names != ("amount_paid", "match_id") or found.returns_rows or found.expands:
        raise changed(f"SQLCompiler.positiontup or binds (got {found.names})")
    if list(literals.values()) != ["inv_2"]:
        raise changed(f"construct_params(extracted_parameters=...) (got {dict(literals)})")
    if arguments != ["a", "b"] or "$2" not in sql:
        raise changed(f"construct_expanded_state (got {sql!r} with {arguments})")
    if not returns.returns_rows:
        raise changed("UpdateBase._returning")
