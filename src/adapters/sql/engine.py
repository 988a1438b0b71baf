"""Engines for the two supported databases, set up the way each needs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.sql.liveness import watch_connections

# Wait this long for SQLite's single writer instead of failing at once.
SQLITE_BUSY_TIMEOUT_MS = 5000
# On PostgreSQL, a statement that runs longer than this, or waits longer for a lock, fails
# (answered 503) instead of holding its request and its connection through a stall.
STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 2000
# How long a unit of work waits for a free pooled connection, and for a new one to open.
POOL_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5.0


def normalize_url(url: str) -> str:
    """Name the async driver for plain URLs: sqlite:// -> aiosqlite, postgresql:// -> asyncpg."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg"}.get(parsed.drivername)  # fmt: skip
    return parsed.set(drivername=driver).render_as_string(False) if driver else url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or one in memory."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    return None if name.startswith("file:") or parsed.query.get("mode") == "memory" else Path(name)


def create_owner_only(database: Path) -> None:
    """Create the database file readable by its owner only (SQLite gives its journal and WAL
    files the same mode); an existing file is left as it is, and one that cannot be made is
    SQLite's to report when it is opened (a 503, like any unreachable database)."""
    with contextlib.suppress(OSError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def create_engine_from_url(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    pool_timeout: float = POOL_TIMEOUT_SECONDS,
) -> AsyncEngine:
    """An engine for `url`. On PostgreSQL every connection carries the timeouts (0: none),
    whichever executor runs on it."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        database = sqlite_file(url)
        if database is not None:
            create_owner_only(database)
        engine = create_async_engine(url, echo=echo)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    # No pre-ping: it would cost a round trip (and a transaction) per checkout; connections
    # are recycled instead, one the server closed while pooled is replaced at checkout (a
    # poll of its socket), and one dead otherwise fails its request, which may be retried.
    # No overflow: under steady load overflow connections are opened and closed again and
    # again (a TLS handshake each); a fixed pool of short transactions just queues.
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
        pool_timeout=pool_timeout,
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            # Sent with the startup message: no round trip of its own.
            "server_settings": {
                "statement_timeout": str(statement_timeout_ms),
                "lock_timeout": str(lock_timeout_ms),
            },
        },
    )
    watch_connections(engine)
    return engine


def _configure_sqlite(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
