"""Engines for the two supported databases, set up the way each needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Wait this long for SQLite's single writer instead of failing at once.
SQLITE_BUSY_TIMEOUT_MS = 5000


def normalize_url(url: str) -> str:
    """Name the async driver for plain URLs: sqlite:// -> aiosqlite, postgresql:// -> asyncpg."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg"}.get(parsed.drivername)  # fmt: skip
    return parsed.set(drivername=driver).render_as_string(False) if driver else url


def create_engine_from_url(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_async_engine(url, echo=echo)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    # No pre-ping: it would cost a round trip (and a transaction) per checkout; connections
    # are recycled instead, and a dead one fails its request, which the caller may retry.
    # No overflow: under steady load overflow connections are opened and closed again and
    # again (a TLS handshake each); a fixed pool of short transactions just queues.
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=0, pool_recycle=1800
    )


def _configure_sqlite(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
