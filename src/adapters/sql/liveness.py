"""Connections the server closed, told apart from live ones without a round trip.

The server says nothing to a connection between statements but when it ends it: a FATAL
error (`pg_terminate_backend`, a restart, a failover), then the end of the stream. Until the
event loop has read both, asyncpg calls the connection open, and refuses the next statement
as if another operation held it ("cannot switch to state ...; another operation (2) is in
progress") or sends it into the closing socket. So a connection is checked as the pool lends
it, and a statement refused that way is reported as the lost connection it is.
"""

from __future__ import annotations

from select import POLLIN, poll
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

SERVER_CLOSED = "the server closed the connection"
PROTOCOL_BROKEN = "the connection broke: the server closed it, or its protocol failed"


def closed_by_server(driver: asyncpg.Connection | None) -> bool:
    """Whether the server has ended this connection: anything readable on its socket between
    statements means that (one poll, no round trip)."""
    if driver is None or driver.is_closed():
        return True
    transport = getattr(driver, "_transport", None)  # asyncpg keeps it private
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    readable = poll()
    readable.register(sock.fileno(), POLLIN)
    return bool(readable.poll(0))


def watch_connections(engine: AsyncEngine) -> None:
    """On a PostgreSQL engine: the pool replaces a connection the server closed before
    lending it, and SQLAlchemy drops (never rolls back and lends again) one whose statement
    asyncpg refused as broken. The asyncpg executor checks its statements itself."""
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    event.listen(engine.sync_engine, "handle_error", _lost_if_broken)


def _replace_if_closed(dbapi_connection: Any, _: Any, __: Any) -> None:
    if closed_by_server(dbapi_connection.driver_connection):
        raise DisconnectionError(SERVER_CLOSED)  # the pool opens another in its place


def _lost_if_broken(context: ExceptionContext) -> BaseException | None:
    # SQLAlchemy's asyncpg adapter raises its own error from the driver's.
    if not isinstance(context.original_exception.__cause__, asyncpg.InternalClientError):
        return None
    context.is_disconnect = True
    lost = asyncpg.ConnectionDoesNotExistError(PROTOCOL_BROKEN)
    return OperationalError(
        context.statement, context.parameters, lost, connection_invalidated=True
    )
