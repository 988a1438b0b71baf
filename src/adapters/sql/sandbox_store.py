"""The sandbox gateway's documents in the project's database, so they survive a restart."""

from __future__ import annotations

from typing import Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sandbox.store import Document, Expected, StoreFailures, Writes
from adapters.sql.errors import DATABASE_ERRORS, Refusal, refusal
from adapters.sql.tables import sandbox_documents as t

# The store's database failing is, to the sandbox's callers, a gateway that did not answer.
_UNANSWERED: Final = StoreFailures(DATABASE_ERRORS)


class SqlSandboxStore:
    """Each call is its own short transaction, as each call to Stripe is its own request."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, kind: str, key: str) -> Document | None:
        with _UNANSWERED:
            return await self._get(kind, key)

    async def _get(self, kind: str, key: str) -> Document | None:
        async with self._engine.connect() as connection:
            result = await connection.execute(
                select(t.c.document).where(t.c.kind == kind, t.c.key == key)
            )
            document = result.scalar_one_or_none()
        return dict(document) if document is not None else None

    async def put(self, kind: str, key: str, document: Document) -> None:
        await self.put_all([(kind, key, document)])

    async def put_all(self, documents: Writes, *, expected: Expected | None = None) -> bool:
        with _UNANSWERED:
            return await self._put_all(documents, expected)

    async def _put_all(self, documents: Writes, expected: Expected | None) -> bool:
        dialect_insert = (
            postgresql_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        )
        upsert = dialect_insert(t).values(
            [{"kind": kind, "key": key, "document": document} for kind, key, document in documents]
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[t.c.kind, t.c.key], set_={"document": upsert.excluded.document}
        )
        async with self._engine.begin() as connection:
            if expected is not None and not await _lock_if_held(connection, expected):
                return False  # nothing was written
            await connection.execute(upsert)
        return True

    async def insert(self, kind: str, key: str, document: Document) -> bool:
        with _UNANSWERED:
            return await self._insert(kind, key, document)

    async def _insert(self, kind: str, key: str, document: Document) -> bool:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(t).values(kind=kind, key=key, document=document))
        except DBAPIError as error:
            if refusal(error) is not Refusal.UNIQUE:
                raise
            return False
        return True

    async def delete(self, kind: str, key: str) -> None:
        with _UNANSWERED:
            async with self._engine.begin() as connection:
                await connection.execute(delete(t).where(t.c.kind == kind, t.c.key == key))

    async def all(self, kind: str) -> list[Document]:
        with _UNANSWERED:
            async with self._engine.connect() as connection:
                result = await connection.execute(select(t.c.document).where(t.c.kind == kind))
                return [dict(document) for document in result.scalars()]


async def _lock_if_held(connection: AsyncConnection, expected: Expected) -> bool:
    """Check `expected` by updating its row in place: the row stays locked until the
    transaction ends, so nobody changes it between this check and the writes."""
    held = await connection.execute(
        update(t)
        .where(
            t.c.kind == expected.kind,
            t.c.key == expected.key,
            t.c.document[expected.field].as_string() == expected.value,
        )
        .values(document=t.c.document)
    )
    return held.rowcount == 1
