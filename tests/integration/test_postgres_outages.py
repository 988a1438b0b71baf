"""PostgreSQL stalled or gone, as an operator sees it: a table locked by someone else, the
service's connections terminated, a server refusing connections. Each answers `503
service_unavailable` with `Retry-After` within about the configured timeout, never a 500, and
`/readyz` answers within a second."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from adapters.notifiers import RecordingNotifier
from adapters.sql import SqlUnitOfWorkFactory, create_engine_from_url
from adapters.sql.migrate import migrate
from adapters.sql.session import SqlSession
from core.errors import ServiceUnavailable
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from entrypoints.http import create_app
from tests.helpers import ENV
from tests.integration.conftest import _admin
from tests.integration.http_server import free_port

EXECUTORS = ["asyncpg", "sqlalchemy"]


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_every_connection_carries_the_statement_and_lock_timeouts(
    clean_postgres_url: str, executor: str
) -> None:
    engine = create_engine_from_url(
        clean_postgres_url, statement_timeout_ms=1234, lock_timeout_ms=567
    )
    units = SqlUnitOfWorkFactory(engine, executor=executor)
    try:
        connection = await units.executor.connect(transaction=False)
        try:
            settings = select(
                func.current_setting("statement_timeout").label("statement"),
                func.current_setting("lock_timeout").label("lock"),
            )
            found = (await connection.run(settings)).first()
        finally:
            await connection.close()
    finally:
        await engine.dispose()
    assert found is not None
    assert (found["statement"], found["lock"]) == ("1234ms", "567ms")


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_a_statement_past_the_statement_timeout_is_service_unavailable(
    clean_postgres_url: str, executor: str
) -> None:
    engine = create_engine_from_url(clean_postgres_url, statement_timeout_ms=200)
    session = SqlSession(SqlUnitOfWorkFactory(engine, executor=executor).executor, True)
    started = time.perf_counter()
    try:
        with pytest.raises(ServiceUnavailable):
            await session.execute(select(func.pg_sleep(5)))
    finally:
        await session.close()
        await engine.dispose()
    assert time.perf_counter() - started < 2


# Over HTTP, in process, on PostgreSQL ---------------------------------------------------------


class Service:
    def __init__(self, checkout: CardCheckout, client: httpx.AsyncClient) -> None:
        self.checkout = checkout
        self.client = client


@pytest.fixture(params=EXECUTORS)
async def service(
    request: pytest.FixtureRequest, clean_postgres_url: str
) -> AsyncIterator[Service]:
    settings = Settings(
        database_url=clean_postgres_url,
        database_executor=request.param,
        database_pool_size=2,
        database_lock_timeout_ms=500,
    )
    checkout = bootstrap(settings, notifier=RecordingNotifier(), dispatch_inline=False)
    await checkout.create_environment("t", "test", environment_id=ENV)
    _, key = await checkout.create_api_key("t", [ENV], "write")
    app = create_app(checkout, notify_every=None, close_checkout=False)
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers, timeout=30
    ) as client:
        await client.get("/api/v1/payments")  # the key is read (and cached) before any lock
        yield Service(checkout, client)
    await checkout.aclose()


async def _holding_a_lock(url: str, table: str) -> asyncpg.Connection:
    holder = await asyncpg.connect(_plain(url), timeout=5)
    await holder.execute(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return holder


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "service_unavailable"


async def _timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await call
    return response, time.perf_counter() - started


async def test_a_table_locked_by_another_connection_answers_503_within_the_lock_timeout(
    service: Service, clean_postgres_url: str
) -> None:
    holder = await _holding_a_lock(clean_postgres_url, "payments")
    try:
        response, elapsed = await _timed(service.client.get("/api/v1/payments/pay_locked"))
    finally:
        await holder.close()

    _unavailable(response)
    assert elapsed < 2.0  # the lock timeout (0.5 s), not the 10 s the lock would have held
    assert (await service.client.get("/api/v1/payments/pay_locked")).status_code == 404


async def test_readiness_answers_within_a_second_while_a_lock_holds_every_connection(
    service: Service, clean_postgres_url: str
) -> None:
    holder = await _holding_a_lock(clean_postgres_url, "payments")
    try:
        # More requests than the pool's two connections, each waiting on the lock.
        waiting = [
            asyncio.create_task(service.client.get(f"/api/v1/payments/pay_{n}")) for n in range(4)
        ]
        await asyncio.sleep(0.1)
        ready, elapsed = await _timed(service.client.get("/readyz"))
        answers = await asyncio.gather(*waiting)
    finally:
        await holder.close()

    assert elapsed < 1.0
    assert ready.status_code in (200, 503)
    for answer in answers:
        _unavailable(answer)
    assert (await service.client.get("/readyz")).status_code == 200


async def _service_backends(url: str, *, besides: int) -> list[int]:
    admin = await asyncpg.connect(_plain(url), timeout=5)
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND pid <> $1",
            besides,
        )
        return [row["pid"] for row in rows]
    finally:
        await admin.close()


async def _terminate(url: str, pids: list[int]) -> None:
    admin = await asyncpg.connect(_plain(url), timeout=5)
    try:
        for pid in pids:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_connections_terminated_during_a_request_answer_503_not_500(
    service: Service, clean_postgres_url: str
) -> None:
    # A lock keeps the request on its connection long enough to terminate it mid-statement.
    holder = await _holding_a_lock(clean_postgres_url, "payments")
    try:
        request = asyncio.create_task(service.client.get("/api/v1/payments/pay_terminated"))
        await asyncio.sleep(0.2)
        holder_pid = holder.get_server_pid()
        await _terminate(
            clean_postgres_url, await _service_backends(clean_postgres_url, besides=holder_pid)
        )
        response = await request
    finally:
        await holder.close()

    _unavailable(response)
    # The pool lends no dead connection again.
    for _ in range(3):
        assert (await service.client.get("/api/v1/payments/pay_terminated")).status_code == 404


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_a_database_refusing_connections_answers_503(
    clean_postgres_url: str, executor: str
) -> None:
    refusing = make_url(clean_postgres_url).set(host="127.0.0.1", port=free_port())
    checkout = bootstrap(
        Settings(
            database_url=refusing.render_as_string(hide_password=False),
            database_executor=executor,
        ),
        notifier=RecordingNotifier(),
    )
    app = create_app(checkout, notify_every=None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": "Bearer ck_any", "X-Environment-ID": ENV}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as client:
            response, elapsed = await _timed(client.get("/api/v1/payments"))
            ready = await client.get("/readyz")
    finally:
        await checkout.aclose()
    _unavailable(response)
    assert elapsed < 2.0
    assert ready.status_code == 503


async def test_migrate_waits_for_a_busy_table_past_the_services_lock_timeout(
    postgres_url: str,
) -> None:
    name = f"card_checkout_migrate_{os.getpid()}"
    await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await _admin(f"CREATE DATABASE {name}")
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine_from_url(url, statement_timeout_ms=100, lock_timeout_ms=100)
    try:
        await migrate(engine, "0007")
        # A reader keeps the table 0008 alters busy for longer than the service would wait.
        reader = await asyncpg.connect(_plain(url))
        try:
            async with reader.transaction():
                await reader.execute("LOCK TABLE idempotency_records IN ACCESS SHARE MODE")
                upgrade = asyncio.create_task(migrate(engine, "0008"))
                await asyncio.sleep(1.0)
            await upgrade
        finally:
            await reader.close()
        async with engine.connect() as connection:
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
        await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert revision == "0008"
