"""Writes staged by a unit of work, and the statements that send them.

Every repository stages its writes here (inserts, versioned updates, deletes); they are sent
together before a statement that must see them, and at commit. A row inserted then updated
in one transaction costs one INSERT, and a table's new rows go in one statement.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping
from typing import Any

import attrs
from sqlalchemy import Table
from sqlalchemy.sql import Executable

from adapters.sql.statements import INSERT, TableStatements, delete_where_in
from core.errors import CheckoutError, ConcurrentUpdate


@attrs.define
class PendingInsert:
    """Rows of one table waiting to be inserted, by key, with the error a clash means."""

    rows: dict[Hashable, dict[str, Any]] = attrs.Factory(dict)
    conflict: CheckoutError | None = None


@attrs.define
class PendingUpdate:
    """A row's new values, waiting to be written over the version it was read at."""

    statements: TableStatements
    values: dict[str, Any]
    read_version: int
    conflict: CheckoutError | None = None  # what a unique index's refusal means
    stale: CheckoutError | None = None  # what finding the row moved means (None: ConcurrentUpdate)


@attrs.define  # not frozen: one is built per statement, and a frozen init costs ten times more
class Write:
    """One statement that sends staged writes, and what its failures mean."""

    statement: Executable
    params: Any  # a mapping, or a sequence of them for one row each
    # By table name: what a unique index's refusal means (None: ConcurrentUpdate).
    conflicts: Mapping[str, CheckoutError | None]
    # A versioned UPDATE: exactly one row must match, else the row moved since it was read.
    versioned: bool = False
    stale: CheckoutError | None = None

    def moved(self) -> CheckoutError:
        return self.stale or ConcurrentUpdate()


class StagedWrites:
    def __init__(self) -> None:
        self.inserts: dict[Table, PendingInsert] = {}
        self.updates: dict[tuple[Table, Hashable], PendingUpdate] = {}
        self.deletes: dict[tuple[Table, str], list[Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.deletes)

    def tables(self) -> set[Table]:
        return {*self.inserts, *(t for t, _ in self.updates), *(t for t, _ in self.deletes)}

    def take(self) -> StagedWrites:
        """Hand the staged writes over, leaving none."""
        taken = StagedWrites()
        taken.inserts, taken.updates, taken.deletes = self.inserts, self.updates, self.deletes
        self.inserts, self.updates, self.deletes = {}, {}, {}
        return taken

    def insert(self, table: Table, key: Hashable, values: dict[str, Any],
               conflict: CheckoutError | None = None) -> None:  # fmt: skip
        """Insert a row, in one INSERT with its table's other rows."""
        pending = self.inserts.setdefault(table, PendingInsert())
        pending.rows[key] = values
        pending.conflict = conflict if len(pending.rows) == 1 else None  # else: which row?

    def update(self, statements: TableStatements, key: Hashable, values: dict[str, Any],
               conflict: CheckoutError | None = None,
               stale: CheckoutError | None = None) -> None:  # fmt: skip
        """Write a row's new values if it is still at the version before them. A row added
        or changed earlier in this transaction and still waiting is changed where it waits
        (at once refused if it waits at another version)."""
        table = statements.table
        read_version = values["version"] - 1
        inserted = self.inserts.get(table)
        waiting = inserted.rows.get(key) if inserted else None
        if waiting is not None:
            if waiting["version"] != read_version:
                raise stale or ConcurrentUpdate()
            self.insert(table, key, values, conflict)  # inserted as changed
            return
        pending = self.updates.get((table, key))
        if pending is None:
            self.updates[(table, key)] = PendingUpdate(
                statements, values, read_version, conflict, stale
            )
            return
        if pending.values["version"] != read_version:
            raise stale or ConcurrentUpdate()
        pending.values, pending.conflict = values, conflict

    def delete(self, table: Table, column: str, values: list[Any]) -> None:
        """Delete the rows whose `column` is one of `values`."""
        self.deletes.setdefault((table, column), []).extend(values)

    def inserts_in_order(self) -> list[tuple[Table, PendingInsert]]:
        """Tables in the order first staged, each after the staged tables it refers to."""
        if len(self.inserts) == 1:
            return list(self.inserts.items())
        ordered: dict[Table, PendingInsert] = {}
        for table in self.inserts:
            _place(table, self.inserts, ordered, frozenset())
        return list(ordered.items())


def _place(
    table: Table,
    staged: dict[Table, PendingInsert],
    ordered: dict[Table, PendingInsert],
    path: frozenset[Table],
) -> None:
    """Put `table` in `ordered` after the staged tables it refers to.

    A module function, not a closure over itself: a recursive closure is a reference cycle
    that only the garbage collector frees, one per transaction."""
    if table in ordered or table in path:
        return
    for referred in _referred_tables(table):
        if referred in staged:
            _place(referred, staged, ordered, path | {table})
    ordered[table] = staged[table]


@functools.cache
def _referred_tables(table: Table) -> tuple[Table, ...]:
    """The tables `table`'s foreign keys refer to (SQLAlchemy builds that set anew on
    every call)."""
    return tuple(foreign_key.referred_table for foreign_key in table.foreign_key_constraints)


def one_statement_each(writes: StagedWrites) -> list[Write]:
    """The reference way to send staged writes: an INSERT per table (its rows as one
    execution each), a versioned UPDATE per row, a DELETE per table."""
    sent = []
    for table, pending in writes.inserts_in_order():
        rows = list(pending.rows.values())
        params = rows[0] if len(rows) == 1 else rows
        sent.append(Write(INSERT[table], params, {table.name: pending.conflict}))
    for update in writes.updates.values():
        statements = update.statements
        sent.append(
            Write(
                statements.update,
                statements.versioned(update.values, update.read_version),
                {statements.table.name: update.conflict},
                versioned=True,
                stale=update.stale,
            )
        )
    for (table, column), values in writes.deletes.items():
        sent.append(Write(delete_where_in(table, column), {"values": values}, {}))
    return sent
