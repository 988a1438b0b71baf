"""`/readyz` is ready only while every database is at the newest migration, and ready again
once `migrate` has run, without a restart: on SQLite and PostgreSQL, in process and as served
by `card-checkout serve` with `card-checkout migrate` run beside it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import create_engine_from_url
from adapters.sql.migrate import (
    MIGRATIONS,
    SchemaState,
    alembic_config,
    head_revision,
    migrate,
    schema_revisions,
)
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from entrypoints.http import create_app
from tests.integration.conftest import _admin
from tests.integration.http_server import CLI, Server, cli_environ

NOT_CURRENT = {"status": "schema_not_current"}
NEWER = {"status": "schema_newer_than_code"}
READY = {"status": "ready"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database of its own that was never migrated."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.sqlite3'}"
        return
    postgres_url = request.getfixturevalue("postgres_url")  # skips (or fails in CI) if down
    name = f"card_checkout_readiness_{os.getpid()}"
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
async def empty_engine(empty_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_from_url(empty_database)
    yield engine
    await engine.dispose()


def _previous_revision() -> str:
    """The migration before the newest (a database one release behind)."""
    newest = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision())
    assert newest is not None
    assert isinstance(newest.down_revision, str), "the newest migration has one parent"
    return newest.down_revision


def test_the_newest_schema_is_the_newest_migration_script() -> None:
    # The scripts are numbered in order: the head is the highest number.
    numbered = sorted(path.name for path in (MIGRATIONS / "versions").glob("[0-9]*.py"))
    assert head_revision() == numbered[-1].split("_", 1)[0]


async def test_the_revisions_read_are_none_before_migrating_and_the_head_after(
    empty_engine: AsyncEngine,
) -> None:
    assert await schema_revisions(empty_engine) == ()
    await migrate(empty_engine, _previous_revision())
    assert await schema_revisions(empty_engine) == (_previous_revision(),)
    await migrate(empty_engine)
    assert await schema_revisions(empty_engine) == (head_revision(),)


@asynccontextmanager
async def _served(database_url: str) -> AsyncIterator[tuple[CardCheckout, httpx.AsyncClient]]:
    """Card Checkout on `database_url` and a client of its app, both closed on leaving."""
    checkout = bootstrap(Settings(database_url=database_url))
    app = create_app(checkout, notify_every=None, close_checkout=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield checkout, client
    finally:
        await checkout.aclose()


async def test_never_migrated_is_not_ready_until_migrate_runs_then_ready_without_a_restart(
    empty_database: str,
) -> None:
    async with _served(empty_database) as (checkout, client):
        assert await checkout.schema_state() is SchemaState.BEHIND
        response = await client.get("/readyz")
        assert (response.status_code, response.json()) == (503, NOT_CURRENT)

        await checkout.migrate()  # what `card-checkout migrate` does, here in process

        assert await checkout.schema_state() is SchemaState.CURRENT
        response = await client.get("/readyz")
        assert (response.status_code, response.json()) == (200, READY)


async def test_a_database_one_migration_behind_is_not_ready(
    empty_database: str, empty_engine: AsyncEngine
) -> None:
    await migrate(empty_engine, _previous_revision())
    async with _served(empty_database) as (_, client):
        response = await client.get("/readyz")
        assert (response.status_code, response.json()) == (503, NOT_CURRENT)
        await migrate(empty_engine)
        response = await client.get("/readyz")
        assert (response.status_code, response.json()) == (200, READY)


async def test_a_database_migrated_by_a_newer_version_is_not_ready_and_says_so(
    empty_database: str, empty_engine: AsyncEngine
) -> None:
    """An older version deployed over a newer schema (a rollback) must not serve it, and
    `migrate` cannot help: the answer says which way the schema is off."""
    await migrate(empty_engine)
    async with empty_engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    async with _served(empty_database) as (checkout, client):
        assert await checkout.schema_state() is SchemaState.AHEAD
        response = await client.get("/readyz")
        assert (response.status_code, response.json()) == (503, NEWER)


async def test_a_separate_sandbox_database_must_be_migrated_too(
    tmp_path: Path, empty_engine: AsyncEngine, empty_database: str
) -> None:
    await migrate(empty_engine)
    sandbox_url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}"
    checkout = bootstrap(Settings(database_url=empty_database, sandbox_database_url=sandbox_url))
    try:
        assert await checkout.schema_state() is SchemaState.BEHIND
        await checkout.migrate()
        assert await checkout.schema_state() is SchemaState.CURRENT
    finally:
        await checkout.aclose()


async def test_storage_in_memory_is_always_current() -> None:
    checkout = bootstrap()
    assert checkout.newest_schema() is None
    assert await checkout.schema_state() is SchemaState.CURRENT


def test_the_served_service_is_ready_once_migrate_has_run_beside_it(tmp_path: Path) -> None:
    """As an operator meets it: `serve` on a new database file, then `migrate` from a shell."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'served.sqlite3'}"
    server = Server(database_url, tmp_path / "server.log")
    server.start()
    try:
        response = httpx.get(f"{server.base_url}/readyz", timeout=5)
        assert (response.status_code, response.json()) == (503, NOT_CURRENT)
        assert "SchemaNotCurrent" in server.log()  # the probe's log line says why

        migrated = subprocess.run(
            [str(CLI), "migrate"],
            env=cli_environ(database_url),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr

        response = httpx.get(f"{server.base_url}/readyz", timeout=5)
        assert (response.status_code, response.json()) == (200, READY)
        assert server.running  # the same process: nothing was restarted
    finally:
        server.stop()
