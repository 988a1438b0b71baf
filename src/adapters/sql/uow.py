"""`SqlUnitOfWork`: one database transaction, with repositories over SQLAlchemy Core.

Its repositories read through a `SqlSession` and stage their writes there; an `Executor`
runs the statements: the SQLAlchemy executor (the reference, and SQLite's), or on
PostgreSQL by default the asyncpg executor. The unit rolls back unless committed.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.secrets import SecretBox
from adapters.sql.asyncpg_executor import AsyncpgExecutor
from adapters.sql.executor import Executor
from adapters.sql.repositories import (
    SqlApiKeyRepository,
    SqlCustomerRepository,
    SqlEnvironmentRepository,
    SqlGatewayEventLog,
    SqlIdempotencyRepository,
    SqlInvoiceRepository,
    SqlOutboxRepository,
    SqlPaymentRepository,
    SqlRefundRepository,
    SqlWebhookDeliveryRepository,
    SqlWebhookEndpointRepository,
)
from adapters.sql.session import SqlSession
from adapters.sql.sqlalchemy_executor import SqlAlchemyExecutor
from adapters.unit_of_work import RollsBackOnExit

__all__ = ["EXECUTORS", "SqlUnitOfWork", "SqlUnitOfWorkFactory", "executor_for"]

# The executors by name, with the databases each runs on.
EXECUTORS = {"sqlalchemy": ("sqlite", "postgresql"), "asyncpg": ("postgresql",)}


def executor_for(engine: AsyncEngine, name: str | None = None) -> Executor:
    """The executor `name` on this engine's database; None: the database's default
    (asyncpg on PostgreSQL, else SQLAlchemy)."""
    database = engine.dialect.name
    name = name or ("asyncpg" if database == "postgresql" else "sqlalchemy")
    if name not in EXECUTORS:
        raise ValueError(f"unknown database executor {name!r}: one of {', '.join(EXECUTORS)}")
    if database not in EXECUTORS[name]:
        raise ValueError(f"the {name} executor does not run on {database}")
    return AsyncpgExecutor(engine) if name == "asyncpg" else SqlAlchemyExecutor(engine)


class SqlUnitOfWork(RollsBackOnExit):
    def __init__(self, factory: SqlUnitOfWorkFactory, read_only: bool) -> None:
        self._factory = factory
        self._session = SqlSession(factory.executor, read_only)
        self.environments = SqlEnvironmentRepository(self._session, factory.secrets)
        self.api_keys = SqlApiKeyRepository(self._session)
        self.customers = SqlCustomerRepository(self._session)
        self.invoices = SqlInvoiceRepository(self._session)
        self.payments = SqlPaymentRepository(self._session)
        self.refunds = SqlRefundRepository(self._session)
        self.idempotency = SqlIdempotencyRepository(self._session)
        self.outbox = SqlOutboxRepository(self._session)
        self.gateway_events = SqlGatewayEventLog(self._session)
        self.webhook_endpoints = SqlWebhookEndpointRepository(self._session, factory.secrets)
        self.webhook_deliveries = SqlWebhookDeliveryRepository(self._session)

    async def commit(self) -> None:
        if await self._session.commit():
            self._factory.commits += 1

    async def rollback(self) -> None:
        await self._session.close()


class SqlUnitOfWorkFactory:
    """Units of work on `engine`, their statements run by `executor`: "sqlalchemy" or
    "asyncpg" (None: the database's default, asyncpg on PostgreSQL). Secrets are sealed with
    `secrets` (None: a key of this process alone, for tests and throwaway databases)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        executor: str | None = None,
        secrets: SecretBox | None = None,
    ) -> None:
        self.engine = engine
        self.executor = executor_for(engine, executor)
        self.secrets = secrets or SecretBox([SecretBox.new_key()])
        self.commits = 0  # transactions its units committed

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self, read_only)
