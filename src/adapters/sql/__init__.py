"""SQL storage on SQLAlchemy 2 (async): SQLite by default, PostgreSQL for production."""

from adapters.sql.engine import create_engine_from_url
from adapters.sql.sandbox_store import SqlSandboxStore
from adapters.sql.uow import EXECUTORS, SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "EXECUTORS",
    "SqlSandboxStore",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "create_engine_from_url",
]
