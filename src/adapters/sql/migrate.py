"""Alembic, driven from code: bring a database to the newest schema, and tell whether it is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from adapters.sql.engine import sqlite_file

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class SchemaAhead(RuntimeError):
    """The database was migrated by a newer version: this one cannot bring it anywhere."""

    def __init__(self, revisions: tuple[str, ...]) -> None:
        super().__init__(
            f"it was migrated by a newer version of Card Checkout (revision {', '.join(revisions)}"
            f"; this version's newest is {head_revision()}): run that version or a newer one"
        )


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision` (`SchemaAhead` if it is past it)."""
    if revision == "head":
        revisions = await schema_revisions(engine)
        if schema_state(revisions) is SchemaState.AHEAD:
            raise SchemaAhead(revisions)

    def upgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    if sqlite_file(engine.url.render_as_string(hide_password=False)) is not None:
        await _migrate_sqlite(engine, upgrade)
        return
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A migration may rewrite a large table: the service's timeouts are not for it.
            await connection.execute(text("SET LOCAL statement_timeout = 0"))
            await connection.execute(text("SET LOCAL lock_timeout = 0"))
        await connection.run_sync(upgrade)


async def _migrate_sqlite(engine: AsyncEngine, upgrade: Callable[[Any], None]) -> None:
    """Migrate a SQLite file all or nothing. Its driver commits DDL as it goes unless the
    transaction is begun by hand (a failed migration would leave half-built tables that
    stop every later attempt), and a table rebuilt by a migration needs foreign keys off
    (its DROP would otherwise delete, or be refused by, the rows that point at it): they
    are checked whole before the commit instead."""
    own = create_async_engine(engine.url, poolclass=NullPool)

    @event.listens_for(own.sync_engine, "connect")
    def _manual_transactions(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None

    try:
        async with own.connect() as connection:
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                await connection.run_sync(upgrade)
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(
                        f"the migration left rows whose references are broken: {broken[:5]}"
                    )
            except BaseException:
                await connection.exec_driver_sql("ROLLBACK")
                raise
            await connection.exec_driver_sql("COMMIT")
    finally:
        await own.dispose()


@cache
def head_revision() -> str:
    """The newest migration's revision, read from the scripts once per process."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must have one head, not {sorted(heads)}")
    return str(heads[0])


@cache
def known_revisions() -> frozenset[str]:
    """Every revision this version's migrations know."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.revision for script in scripts.walk_revisions())


class SchemaState(StrEnum):
    CURRENT = "current"  # at this version's newest migration
    BEHIND = "behind"  # never migrated, or by an older version: `migrate` brings it on
    AHEAD = "ahead"  # migrated by a newer version: only that version (or newer) can serve it


def schema_state(revisions: tuple[str, ...]) -> SchemaState:
    """Where a database at `revisions` stands against this version's migrations."""
    if revisions == (head_revision(),):
        return SchemaState.CURRENT
    if any(revision not in known_revisions() for revision in revisions):
        return SchemaState.AHEAD
    return SchemaState.BEHIND


async def schemas_state(engines: Sequence[AsyncEngine]) -> SchemaState:
    """The furthest from current of these databases' schemas (none: current)."""
    states = {schema_state(await schema_revisions(engine)) for engine in engines}
    for state in (SchemaState.AHEAD, SchemaState.BEHIND):
        if state in states:
            return state
    return SchemaState.CURRENT


async def schema_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    """The revisions the database behind `engine` is at (none: never migrated). Reads the
    version table only, if there is one: cheap enough for a readiness probe."""

    def current(connection: Any) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        return await connection.run_sync(current)
