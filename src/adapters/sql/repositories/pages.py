"""Pages of a listing: one row more than asked for tells whether there are more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select

from adapters.sql.rows import Row
from adapters.sql.session import SqlSession
from core.ports import Page

T = TypeVar("T")


async def page(session: SqlSession, statement: Select[Any], limit: int,
               convert: Callable[[Row], T]) -> Page[T]:  # fmt: skip
    result = await session.execute(statement.limit(limit + 1))
    found = [convert(row) for row in result.records]
    return Page(items=found[:limit], has_more=len(found) > limit)
