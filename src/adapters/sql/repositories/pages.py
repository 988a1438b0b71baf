"""Pages of a listing, newest first by (created_at, id), keyset-paginated (`core.lists`).

A page is read from the list's index, walking from the cursor's place away from it: after
it down the index, before it up the index (then turned to the list's order). One row more
than asked for tells whether there are more. The cursor's place is read in the same
statement; only an empty page costs a second look, to tell an unknown cursor from the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, Table, select, tuple_
from sqlalchemy.sql import ColumnElement

from adapters.sql.rows import Row
from adapters.sql.session import SqlSession
from core.lists import Window, cursor_of, trimmed, unknown_cursor
from core.ports import Page

T = TypeVar("T")


async def page(session: SqlSession, table: Table, statement: Select[Any], window: Window,
               collection: Sequence[ColumnElement[bool]],
               convert: Callable[[Row], T]) -> Page[T]:  # fmt: skip
    """The page of what `statement` selects from `table`; a cursor is any row that
    `collection` (e.g. the environment's) holds, whether or not `statement` selects it."""
    limit = window.limit
    order = (table.c.created_at, table.c.id)
    cursor = cursor_of(window)
    if cursor is None:
        newest = statement.order_by(*(c.desc() for c in order)).limit(limit + 1)
        return trimmed(await _rows(session, newest, convert), limit)
    place = select(*order).where(*collection, table.c.id == cursor.id).subquery()
    at = tuple_(*(select(c).scalar_subquery() for c in place.c))
    if cursor.backwards:
        walk = statement.where(tuple_(*order) > at).order_by(*order)
    else:
        walk = statement.where(tuple_(*order) < at).order_by(*(c.desc() for c in order))
    found = await _rows(session, walk.limit(limit + 1), convert)
    if not found:
        known = select(table.c.id).where(*collection, table.c.id == cursor.id)
        if not (await session.execute(known)).records:
            raise unknown_cursor(cursor)
    return trimmed(found, limit, backwards=cursor.backwards)


async def _rows(session: SqlSession, statement: Select[Any],
                convert: Callable[[Row], T]) -> list[T]:  # fmt: skip
    return [convert(row) for row in (await session.execute(statement)).records]
