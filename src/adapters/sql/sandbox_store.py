"""The sandbox gateway's documents in the project's database, so they survive a restart."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sandbox.store import Document
from adapters.sql.errors import Refusal, refusal
from adapters.sql.tables import sandbox_documents as t


class SqlSandboxStore:
    """Each call is its own short transaction, as each call to Stripe is its own request."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, kind: str, key: str) -> Document | None:
        async with self._engine.connect() as connection:
            result = await connection.execute(
                select(t.c.document).where(t.c.kind == kind, t.c.key == key)
            )
            document = result.scalar_one_or_none()
        return dict(document) if document is not None else None

    async def put(self, kind: str, key: str, document: Document) -> None:
        dialect_insert = (
            postgresql_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        )
        upsert = dialect_insert(t).values(kind=kind, key=key, document=document)
        upsert = upsert.on_conflict_do_update(
            index_elements=[t.c.kind, t.c.key], set_={"document": upsert.excluded.document}
        )
        async with self._engine.begin() as connection:
            await connection.execute(upsert)

    async def insert(self, kind: str, key: str, document: Document) -> bool:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(t).values(kind=kind, key=key, document=document))
        except DBAPIError as error:
            if refusal(error) is not Refusal.UNIQUE:
                raise
            return False
        return True

    async def delete(self, kind: str, key: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(delete(t).where(t.c.kind == kind, t.c.key == key))

    async def all(self, kind: str) -> list[Document]:
        async with self._engine.connect() as connection:
            result = await connection.execute(select(t.c.document).where(t.c.kind == kind))
            return [dict(document) for document in result.scalars()]
