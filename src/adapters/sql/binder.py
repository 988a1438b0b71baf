"""SQLAlchemy statements bound for asyncpg: SQL and positional arguments, compiled once per
shape of statement.

Values are bound through the columns' own bind processors; rows come back as asyncpg
records, whose values are already what the row converters take (aware UTC datetimes; JSON
decoded by the codec SQLAlchemy sets on each connection it opens).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from adapters.sql import sqlalchemy_internals as internals


@attrs.frozen
class Bound:
    """A statement ready for asyncpg: its SQL, arguments in order, and whether it answers
    with rows (else asyncpg gives its status, with the count of rows written)."""

    sql: str
    arguments: Sequence[Any]
    returns_rows: bool


@attrs.frozen
class _Compiled:
    compiled: SQLCompiler
    shape: internals.Shape
    # Every value comes from the parameters given (none is a literal the statement carries).
    given_only: bool


class Binder:
    """Compiles each shape of statement once (by SQLAlchemy's cache key and the names of
    the values given) and binds values to it on every call."""

    def __init__(self, dialect: Dialect, size: int = 500) -> None:
        self.dialect = dialect
        self.size = size
        self.cache: internals.LRUCache[Any, _Compiled] = internals.LRUCache(size)
        # Statements bound before, by identity, with the names they were given: most are
        # built once, and finding them here skips hashing their cache keys (a combined
        # write's holds hundreds of items). Each entry keeps its statement alive, so an id
        # is never reused while it is here.
        self.known: dict[int, tuple[ClauseElement, tuple[str, ...], _Compiled]] = {}

    def bind(self, statement: ClauseElement, params: Mapping[str, Any] | None) -> Bound:
        params = params or {}
        names = tuple(params)
        known = self.known.get(id(statement))
        if known is not None and known[0] is statement and known[1] == names:
            return self._bound(known[2], params)
        key = internals.statement_key(statement)
        if key is None:  # a statement SQLAlchemy would not cache either
            return self._expanded(self._compile(statement, names), params)
        entry = self.cache.get((key.key, names))
        if entry is None:
            compiled = self._compile(statement, names, key)
            found = internals.shape(compiled, self.dialect)
            if found.expands:  # compiled from this very statement: bound with its values
                return self._expanded(compiled, params)
            entry = _Compiled(compiled, found, all(name in params for name in found.names))
            self.cache[(key.key, names)] = entry
        if entry.given_only:
            if len(self.known) >= self.size:
                self.known.clear()  # statements built per call fill it; the rest come back
            self.known[id(statement)] = (statement, names, entry)
            return self._bound(entry, params)
        # A statement built per call may carry other literal values than the cached one.
        return self._bound(entry, internals.values_with_literals(entry.compiled, params, key))

    @staticmethod
    def _bound(entry: _Compiled, values: Mapping[str, Any]) -> Bound:
        shape = entry.shape
        arguments = [
            values[name] if processor is None else processor(values[name])
            for name, processor in zip(shape.names, shape.processors, strict=True)
        ]
        return Bound(shape.sql, arguments, shape.returns_rows)

    @staticmethod
    def _expanded(compiled: SQLCompiler, params: Mapping[str, Any]) -> Bound:
        return Bound(*internals.expanded(compiled, params))

    def _compile(self, statement: ClauseElement, names: Sequence[str],
                 key: internals.StatementKey | None = None) -> SQLCompiler:  # fmt: skip
        return internals.compile_positional(statement, self.dialect, names, key)


def rows_written(status: str) -> int:
    """The row count in a command status such as `UPDATE 1` or `INSERT 0 3`."""
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0
