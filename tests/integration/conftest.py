"""Real databases for integration tests: a SQLite file, and PostgreSQL when reachable.

PostgreSQL is found at TEST_POSTGRES_URL (default: the local server's `test` database as
`postgres`); a fresh database is created for the session and dropped after. Without a server
the PostgreSQL tests skip with the reason, except in CI (CI=true), where they must run.
`sql_path` runs a test on SQLite and on PostgreSQL through each of the adapter's executors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import attrs
import httpx
import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.notifiers import RecordingNotifier
from adapters.sandbox import SandboxFaults
from adapters.sql import SqlUnitOfWorkFactory, create_engine_from_url, tables
from adapters.sql.migrate import migrate
from core.ports import Clock
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from tests.integration.http_server import free_port

T = TypeVar("T")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _plain(url: str) -> str:
    """The URL as asyncpg takes it (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(_plain(POSTGRES_URL), timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end from synchronous code, even while a loop runs in this thread
    (a session fixture first asked for by an async one): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, work).result()


async def migrated(url: str) -> None:
    engine = create_engine_from_url(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def emptied(url: str) -> None:
    engine = create_engine_from_url(url)
    try:
        async with engine.begin() as connection:
            names = ", ".join(t.name for t in tables.metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    try:
        _run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL}: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
        pytest.skip(reason)
    name = f"card_checkout_test_{os.getpid()}"
    _run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    _run(_admin(f"CREATE DATABASE {name}"))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    _run(migrated(url))
    yield url
    _run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'card-checkout.sqlite3'}"
    asyncio.run(migrated(url))
    return url


@pytest.fixture
def clean_postgres_url(postgres_url: str) -> str:
    asyncio.run(emptied(postgres_url))
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs on a migrated, empty SQLite file and PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "clean_postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_from_url(database_url)
    yield engine
    await engine.dispose()


@attrs.frozen
class SqlPath:
    """A database and the executor that runs the SQL adapter's statements on it."""

    database: str
    executor: str
    url: str
    engine: AsyncEngine

    def units(self) -> SqlUnitOfWorkFactory:
        return SqlUnitOfWorkFactory(self.engine, executor=self.executor)


# Every way the SQL adapter reaches a database: SQLite, and PostgreSQL on each executor.
SQL_PATHS = [
    pytest.param(("sqlite", "sqlalchemy"), id="sqlite"),
    pytest.param(("postgresql", "asyncpg"), id="postgresql-asyncpg"),
    pytest.param(("postgresql", "sqlalchemy"), id="postgresql-sqlalchemy"),
]


@pytest.fixture(params=SQL_PATHS)
def sql_database(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """A path's database, executor and URL: a migrated, empty database."""
    database, executor = request.param
    name = "sqlite_url" if database == "sqlite" else "clean_postgres_url"
    return database, executor, str(request.getfixturevalue(name))


@pytest.fixture
async def sql_path(sql_database: tuple[str, str, str]) -> AsyncIterator[SqlPath]:
    """Each test that takes this runs on every path."""
    database, executor, url = sql_database
    engine = create_engine_from_url(url)
    yield SqlPath(database, executor, url, engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """localstripe, a Stripe-compatible server, on a free loopback port."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("localstripe")), "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not _answers(url):
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            _, errors = server.communicate()
            raise AssertionError(f"localstripe did not start: {errors}")
        time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/v1/customers", auth=("sk_test_local", ""), timeout=1)
    except httpx.TransportError:
        return False
    return True


async def attach_card(localstripe_url: str, customer: str, number: str) -> str:
    """What a hosted page does at Stripe: card `number` saved for `customer` and made its
    default, here through localstripe's API. Returns the PaymentMethod's id."""
    http_client = stripe.HTTPXClient()
    client = stripe.StripeClient(
        "sk_test_local", base_addresses={"api": localstripe_url}, http_client=http_client
    )
    try:
        pm = await client.v1.payment_methods.create_async(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        await client.v1.payment_methods.attach_async(pm.id, params={"customer": customer})
        await client.v1.customers.update_async(
            customer, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
    finally:
        await http_client.close_async()  # type: ignore[no-untyped-call]  # SDK: untyped
    return str(pm.id)


@asynccontextmanager
async def two_instances(
    url: str, *, latency: float = 0.02, clock: Clock | None = None
) -> AsyncIterator[tuple[CardCheckout, CardCheckout]]:
    """Two instances sharing only the database (and `clock`, if given); every gateway call
    takes `latency` seconds, so that their requests truly overlap."""
    first, second = (
        bootstrap(
            Settings(database_url=url, database_pool_size=5),
            clock=clock,
            notifier=RecordingNotifier(),
            sandbox_faults=SandboxFaults(latency=latency),
        )
        for _ in range(2)
    )
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The drills' counts, even under -q: what an operator would want to read."""
    from tests.integration.drill_tally import REPORTED

    if REPORTED:
        terminalreporter.section("drills: counted from the database and the gateway's records")
        for summary in REPORTED:
            terminalreporter.write_line(summary)
