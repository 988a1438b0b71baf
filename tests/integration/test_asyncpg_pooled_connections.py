"""A connection the server closed is never lent again, nor reported as busy with another
operation.

The server says nothing to a connection between statements unless it is ending it: a FATAL
error (`pg_terminate_backend`, a restart, a failover), then the end of the stream. Until the
event loop has read both, asyncpg still calls the connection open; one that read the error
but not the end refuses any statement with `InternalClientError: cannot switch to state ...;
another operation (2) is in progress`, and one that read neither sends the statement into
the closing socket. The background passes of `serve` logged the first at connection kills.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import SqlUnitOfWorkFactory, create_engine_from_url
from tests.integration.drills import plain

TCP_CLOSE_WAIT = 8  # Linux's tcp_info state: the peer's end of the stream has arrived
LOOP_TURNS = [0, 1, 2]  # the loop reads nothing, the FATAL, or the FATAL and the end


@pytest.fixture
async def one_connection(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """A pool of one connection, so that every unit of work gets the same one back."""
    engine = create_engine_from_url(postgres_url, pool_size=1)
    yield engine
    await engine.dispose()


async def _pooled(engine: AsyncEngine) -> tuple[int, Any]:
    """The server process and the socket of the connection now idle in the pool."""
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        return driver.get_server_pid(), driver._transport.get_extra_info("socket")


def _terminate_while_the_loop_sleeps(url: str, pid: int, sock: Any) -> None:
    """Terminate the backend and wait until its FATAL and the end of its stream reached
    `sock`, without letting this event loop run: both wait there, unread."""

    async def terminate() -> None:
        admin = await asyncpg.connect(plain(url), timeout=5)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        deadline = time.monotonic() + 5
        while sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_CLOSE_WAIT:
            assert time.monotonic() < deadline, "the server did not close the connection"
            await asyncio.sleep(0.005)

    worker = threading.Thread(target=asyncio.run, args=(terminate(),))
    worker.start()
    worker.join()


async def _turn_the_loop(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


def _a_lost_connection(error: BaseException) -> bool:
    """`error` says the connection was lost (itself, or as the cause of the service's 503)."""
    return any(isinstance(e, asyncpg.PostgresConnectionError) for e in (error, error.__cause__))


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "transaction"])
@pytest.mark.parametrize("loop_turns", LOOP_TURNS)
async def test_a_unit_of_work_never_gets_a_connection_the_server_closed_while_pooled(
    postgres_url: str, one_connection: AsyncEngine, read_only: bool, loop_turns: int
) -> None:
    units = SqlUnitOfWorkFactory(one_connection, executor="asyncpg")
    for _ in range(3):
        killed, sock = await _pooled(one_connection)
        _terminate_while_the_loop_sleeps(postgres_url, killed, sock)
        await _turn_the_loop(loop_turns)
        async with units(read_only=read_only) as uow:
            assert await uow.environments.get("env_none") is None
            if not read_only:
                await uow.commit()
        assert (await _pooled(one_connection))[0] != killed


@pytest.mark.parametrize("loop_turns", LOOP_TURNS)
async def test_sqlalchemy_never_gets_a_connection_the_server_closed_while_pooled(
    postgres_url: str, one_connection: AsyncEngine, loop_turns: int
) -> None:
    """The same pool lends connections to SQLAlchemy's own path (the sandbox's store, the
    SQLAlchemy executor): it must not get a dead one either."""
    for _ in range(3):
        killed, sock = await _pooled(one_connection)
        _terminate_while_the_loop_sleeps(postgres_url, killed, sock)
        await _turn_the_loop(loop_turns)
        async with one_connection.begin() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
        assert (await _pooled(one_connection))[0] != killed


@pytest.mark.parametrize("then", ["read", "commit"])
@pytest.mark.parametrize("loop_turns", LOOP_TURNS)
async def test_a_connection_closed_between_two_statements_fails_as_a_lost_connection(
    postgres_url: str, one_connection: AsyncEngine, loop_turns: int, then: str
) -> None:
    units = SqlUnitOfWorkFactory(one_connection, executor="asyncpg")
    killed, sock = await _pooled(one_connection)
    async with units() as uow:
        assert await uow.environments.get("env_none") is None  # on that connection
        _terminate_while_the_loop_sleeps(postgres_url, killed, sock)
        await _turn_the_loop(loop_turns)
        # Which error depends on the layers above; its cause is what is checked.
        with pytest.raises(Exception) as raised:  # noqa: PT011
            await (uow.environments.get("env_other") if then == "read" else uow.commit())
    assert _a_lost_connection(raised.value), repr(raised.value)
    assert (await _pooled(one_connection))[0] != killed


@pytest.mark.parametrize("loop_turns", LOOP_TURNS)
async def test_a_unit_whose_connection_the_server_closed_rolls_back_quietly(
    postgres_url: str, one_connection: AsyncEngine, loop_turns: int
) -> None:
    """Rolling back (as a unit does after any failure) has nothing to undo: the server ended
    the transaction with the connection. The error that ended the unit is the one to tell."""
    units = SqlUnitOfWorkFactory(one_connection, executor="asyncpg")
    killed, sock = await _pooled(one_connection)
    async with units() as uow:
        assert await uow.environments.get("env_none") is None
        _terminate_while_the_loop_sleeps(postgres_url, killed, sock)
        await _turn_the_loop(loop_turns)
    assert (await _pooled(one_connection))[0] != killed


# The server's FATAL (57P01, as pg_terminate_backend sends it), as the wire carries it.
_FIELDS = b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0"
FATAL_MESSAGE = b"E" + struct.pack("!i", 4 + len(_FIELDS)) + _FIELDS


async def test_a_fatal_read_before_the_end_of_the_stream_fails_as_a_lost_connection(
    one_connection: AsyncEngine,
) -> None:
    """The end of the stream comes a moment after the FATAL (the server process exits):
    in between, nothing is left to read, and asyncpg is mid-failure."""
    units = SqlUnitOfWorkFactory(one_connection, executor="asyncpg")
    async with one_connection.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
    async with units() as uow:
        assert await uow.environments.get("env_none") is None
        assert driver is not None
        driver._protocol.data_received(FATAL_MESSAGE)
        # Which error depends on the layers above; its cause is what is checked.
        with pytest.raises(Exception) as raised:  # noqa: PT011
            await uow.environments.get("env_other")
    assert _a_lost_connection(raised.value), repr(raised.value)


async def test_sqlalchemy_reports_a_fatal_read_before_the_end_as_a_lost_connection(
    one_connection: AsyncEngine,
) -> None:
    """On SQLAlchemy's path too: the connection is dropped (not rolled back and lent again)
    and the error is the driver's lost connection."""
    async with one_connection.connect() as connection:
        assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        driver._protocol.data_received(FATAL_MESSAGE)
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(text("SELECT 2"))
    assert isinstance(raised.value.orig, asyncpg.PostgresConnectionError), repr(raised.value)
    assert raised.value.connection_invalidated
    async with one_connection.connect() as connection:
        assert (await connection.execute(text("SELECT 3"))).scalar_one() == 3
