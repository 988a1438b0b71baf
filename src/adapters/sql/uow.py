"""`SqlUnitOfWork`: one database transaction, with repositories over SQLAlchemy Core.

Writes run as they are made, inside the transaction: a versioned UPDATE that matches no row
raises `ConcurrentUpdate` at once, and a constraint violation becomes the core's error for it.
The transaction begins on the first statement, so a unit of work that only reads never holds
a connection longer than its reads, and it rolls back unless committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import attrs
from sqlalchemy import Table, and_, event, insert, select, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ColumnElement

from adapters.sql import rows, tables
from core.errors import (
    CheckoutError,
    ConcurrentUpdate,
    CustomerAlreadyExists,
    IdempotencyKeyInUse,
    InvoiceAlreadyPaid,
    PaymentInProgress,
)
from core.model import (
    LIVE_STATUSES,
    PAID_STATUSES,
    ApiKey,
    Customer,
    Environment,
    Invoice,
    Notification,
    Payment,
    PaymentEvent,
    Refund,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.ports import IdempotencyRecord, InvoiceQuery, Page, PaymentQuery

_LIVE = [s.value for s in LIVE_STATUSES]


def _is_unique_violation(error: IntegrityError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate == "23505" or "UNIQUE constraint failed" in str(error.orig)


class _Session:
    """The unit of work's connection, opened (and its transaction begun) on first use."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.connection: AsyncConnection | None = None

    async def conn(self) -> AsyncConnection:
        if self.connection is None:
            self.connection = await self.engine.connect()
            await self.connection.begin()
        return self.connection

    async def execute(self, statement: Any, conflict: CheckoutError | None = None) -> Any:
        connection = await self.conn()
        try:
            return await connection.execute(statement)
        except IntegrityError as error:
            if not _is_unique_violation(error):
                raise  # a broken foreign key or check is a bug, not a race
            raise (conflict or ConcurrentUpdate()) from error
        except OperationalError as error:
            # SQLite: another writer holds the database, or our snapshot went stale.
            if "locked" in str(error.orig) or "busy" in str(error.orig):
                raise ConcurrentUpdate() from error
            raise
        except DBAPIError as error:
            # PostgreSQL: a serialization failure or deadlock; the work is re-run.
            if getattr(error.orig, "sqlstate", None) in {"40001", "40P01"}:
                raise ConcurrentUpdate() from error
            raise

    async def versioned_update(self, table: Table, values: dict[str, Any], *keys: str) -> None:
        """UPDATE the row to `values` only if it still has the version before them."""
        where = [table.c[k] == values[k] for k in keys]
        where.append(table.c.version == values["version"] - 1)
        result = await self.execute(update(table).where(*where).values(**values))
        if result.rowcount != 1:
            raise ConcurrentUpdate()


def _keyset(table: Table, env: str, starting_after: str | None) -> ColumnElement[bool] | None:
    """Rows after the cursor row, newest first by (created_at, id)."""
    if starting_after is None:
        return None
    cursor = (
        select(table.c.created_at, table.c.id)
        .where(table.c.environment_id == env, table.c.id == starting_after)
        .subquery()
    )
    return tuple_(table.c.created_at, table.c.id) < tuple_(
        select(cursor.c.created_at).scalar_subquery(), select(cursor.c.id).scalar_subquery()
    )


async def _page(session: _Session, statement: Any, limit: int, convert: Any) -> Page[Any]:
    result = await session.execute(statement.limit(limit + 1))
    found = [convert(row) for row in result.mappings()]
    return Page(items=found[:limit], has_more=len(found) > limit)


class SqlEnvironmentRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, environment: Environment) -> None:
        values = rows.environment_values(environment)
        await self._session.execute(insert(tables.environments).values(values))

    async def get(self, environment_id: str) -> Environment | None:
        t = tables.environments
        result = await self._session.execute(select(t).where(t.c.id == environment_id))
        row = result.mappings().first()
        return rows.environment_from(row) if row else None

    async def update(self, environment: Environment) -> None:
        values = rows.environment_values(environment)
        await self._session.versioned_update(tables.environments, values, "id")


class SqlApiKeyRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, key: ApiKey) -> None:
        await self._session.execute(insert(tables.api_keys).values(rows.api_key_values(key)))

    async def get(self, key_id: str) -> ApiKey | None:
        t = tables.api_keys
        result = await self._session.execute(select(t).where(t.c.id == key_id))
        row = result.mappings().first()
        return rows.api_key_from(row) if row else None

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        t = tables.api_keys
        result = await self._session.execute(select(t).where(t.c.key_hash == key_hash))
        row = result.mappings().first()
        return rows.api_key_from(row) if row else None

    async def update(self, key: ApiKey) -> None:
        await self._session.versioned_update(tables.api_keys, rows.api_key_values(key), "id")


class SqlCustomerRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, customer: Customer) -> None:
        conflict = CustomerAlreadyExists()
        await self._session.execute(
            insert(tables.customers).values(rows.customer_values(customer)), conflict
        )

    async def get(self, environment_id: str, customer_id: str) -> Customer | None:
        t = tables.customers
        result = await self._session.execute(
            select(t).where(t.c.environment_id == environment_id, t.c.id == customer_id)
        )
        row = result.mappings().first()
        return rows.customer_from(row) if row else None

    async def get_by_external_id(self, environment_id: str, external_id: str) -> Customer | None:
        t = tables.customers
        result = await self._session.execute(
            select(t).where(t.c.environment_id == environment_id, t.c.external_id == external_id)
        )
        row = result.mappings().first()
        return rows.customer_from(row) if row else None


class SqlInvoiceRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, invoice: Invoice) -> None:
        await self._session.execute(insert(tables.invoices).values(rows.invoice_values(invoice)))

    async def get(
        self, environment_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice | None:
        t = tables.invoices
        statement = select(t).where(t.c.environment_id == environment_id, t.c.id == invoice_id)
        result = await self._session.execute(
            statement.with_for_update() if for_update else statement
        )
        row = result.mappings().first()
        return rows.invoice_from(row) if row else None

    async def update(self, invoice: Invoice) -> None:
        await self._session.versioned_update(
            tables.invoices, rows.invoice_values(invoice), "environment_id", "id"
        )

    async def list(self, query: InvoiceQuery) -> Page[Invoice]:
        t = tables.invoices
        statement = select(t).where(t.c.environment_id == query.environment_id)
        if query.customer_id is not None:
            statement = statement.where(t.c.customer_id == query.customer_id)
        if query.statuses is not None:
            statement = statement.where(t.c.status.in_([s.value for s in query.statuses]))
        after = _keyset(t, query.environment_id, query.starting_after)
        if after is not None:
            statement = statement.where(after)
        statement = statement.order_by(t.c.created_at.desc(), t.c.id.desc())
        return await _page(self._session, statement, query.limit, rows.invoice_from)


class SqlPaymentRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    @staticmethod
    def _conflict(payment: Payment) -> CheckoutError:
        """Which rule a payment row broke: its status says which unique index it is in."""
        if payment.status in LIVE_STATUSES:
            return PaymentInProgress(invoice_id=payment.invoice_id)
        if payment.status in PAID_STATUSES:
            return InvoiceAlreadyPaid(invoice_id=payment.invoice_id)
        return ConcurrentUpdate()

    async def add(self, payment: Payment) -> None:
        await self._session.execute(
            insert(tables.payments).values(rows.payment_values(payment)), self._conflict(payment)
        )

    async def get(
        self, environment_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment | None:
        t = tables.payments
        statement = select(t).where(t.c.environment_id == environment_id, t.c.id == payment_id)
        result = await self._session.execute(
            statement.with_for_update() if for_update else statement
        )
        row = result.mappings().first()
        return rows.payment_from(row) if row else None

    async def get_by_tracking_id(self, gateway_tracking_id: str) -> Payment | None:
        t = tables.payments
        result = await self._session.execute(
            select(t).where(t.c.gateway_tracking_id == gateway_tracking_id)
        )
        row = result.mappings().first()
        return rows.payment_from(row) if row else None

    async def update(self, payment: Payment) -> None:
        values = rows.payment_values(payment)
        t = tables.payments
        where = and_(
            t.c.environment_id == payment.environment_id,
            t.c.id == payment.id,
            t.c.version == payment.version - 1,
        )
        result = await self._session.execute(
            update(t).where(where).values(**values), self._conflict(payment)
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate()

    async def live_for_invoice(self, environment_id: str, invoice_id: str) -> Payment | None:
        t = tables.payments
        result = await self._session.execute(
            select(t).where(
                t.c.environment_id == environment_id,
                t.c.invoice_id == invoice_id,
                t.c.status.in_(_LIVE),
            )
        )
        row = result.mappings().first()
        return rows.payment_from(row) if row else None

    async def list(self, query: PaymentQuery) -> Page[Payment]:
        t = tables.payments
        statement = select(t).where(t.c.environment_id == query.environment_id)
        for column, value in ((t.c.invoice_id, query.invoice_id),
                              (t.c.customer_id, query.customer_id)):  # fmt: skip
            if value is not None:
                statement = statement.where(column == value)
        if query.statuses is not None:
            statement = statement.where(t.c.status.in_([s.value for s in query.statuses]))
        if query.created_gte is not None:
            statement = statement.where(t.c.created_at >= query.created_gte)
        if query.created_lt is not None:
            statement = statement.where(t.c.created_at < query.created_lt)
        after = _keyset(t, query.environment_id, query.starting_after)
        if after is not None:
            statement = statement.where(after)
        statement = statement.order_by(t.c.created_at.desc(), t.c.id.desc())
        return await _page(self._session, statement, query.limit, rows.payment_from)

    async def processing(self, not_updated_since: datetime, limit: int) -> Sequence[Payment]:
        t = tables.payments
        result = await self._session.execute(
            select(t)
            .where(t.c.status == "processing", t.c.updated_at <= not_updated_since)
            .order_by(t.c.updated_at)
            .limit(limit)
        )
        return [rows.payment_from(row) for row in result.mappings()]

    async def add_event(self, event: PaymentEvent) -> None:
        await self._session.execute(insert(tables.payment_events).values(rows.event_values(event)))

    async def events(self, environment_id: str, payment_id: str) -> Sequence[PaymentEvent]:
        t = tables.payment_events
        result = await self._session.execute(
            select(t)
            .where(t.c.payment_id == payment_id, t.c.environment_id == environment_id)
            .order_by(t.c.sequence)
        )
        return [rows.event_from(row) for row in result.mappings()]


class SqlRefundRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, refund: Refund) -> None:
        await self._session.execute(insert(tables.refunds).values(rows.refund_values(refund)))

    async def get(self, environment_id: str, refund_id: str) -> Refund | None:
        t = tables.refunds
        result = await self._session.execute(
            select(t).where(t.c.environment_id == environment_id, t.c.id == refund_id)
        )
        row = result.mappings().first()
        return rows.refund_from(row) if row else None

    async def update(self, refund: Refund) -> None:
        await self._session.versioned_update(
            tables.refunds, rows.refund_values(refund), "environment_id", "id"
        )

    async def for_payment(self, environment_id: str, payment_id: str) -> Sequence[Refund]:
        t = tables.refunds
        result = await self._session.execute(
            select(t)
            .where(t.c.environment_id == environment_id, t.c.payment_id == payment_id)
            .order_by(t.c.created_at, t.c.id)
        )
        return [rows.refund_from(row) for row in result.mappings()]

    async def pending(self, not_updated_since: datetime, limit: int) -> Sequence[Refund]:
        t = tables.refunds
        result = await self._session.execute(
            select(t)
            .where(t.c.status == "pending", t.c.updated_at <= not_updated_since)
            .order_by(t.c.updated_at)
            .limit(limit)
        )
        return [rows.refund_from(row) for row in result.mappings()]


class SqlIdempotencyRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def get(self, environment_id: str, key: str) -> IdempotencyRecord | None:
        t = tables.idempotency_records
        result = await self._session.execute(
            select(t).where(t.c.environment_id == environment_id, t.c.key == key)
        )
        row = result.mappings().first()
        return rows.idempotency_from(row) if row else None

    async def put(self, record: IdempotencyRecord) -> None:
        values = rows.idempotency_values(record)
        if record.version == 1:
            statement = insert(tables.idempotency_records).values(values)
            await self._session.execute(statement, IdempotencyKeyInUse())
            return
        try:
            await self._session.versioned_update(
                tables.idempotency_records, values, "environment_id", "key"
            )
        except ConcurrentUpdate:
            raise IdempotencyKeyInUse() from None


class SqlOutboxRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, notification: Notification) -> None:
        values = rows.notification_values(notification)
        await self._session.execute(insert(tables.outbox).values(values))

    async def undelivered(self, limit: int) -> Sequence[Notification]:
        t = tables.outbox
        result = await self._session.execute(
            select(t).where(t.c.delivered_at.is_(None)).order_by(t.c.sequence).limit(limit)
        )
        return [rows.notification_from(row) for row in result.mappings()]

    async def mark_delivered(self, notification_ids: Sequence[str], at: datetime) -> None:
        t = tables.outbox
        await self._session.execute(
            update(t).where(t.c.id.in_(list(notification_ids))).values(delivered_at=at)
        )


class SqlGatewayEventLog:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def seen(self, event_id: str) -> bool:
        t = tables.gateway_events
        result = await self._session.execute(select(t.c.id).where(t.c.id == event_id))
        return result.first() is not None

    async def add(self, event_id: str, event_type: str, at: datetime) -> None:
        await self._session.execute(
            insert(tables.gateway_events).values(id=event_id, type=event_type, processed_at=at)
        )


class SqlWebhookEndpointRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, endpoint: WebhookEndpoint) -> None:
        values = rows.webhook_endpoint_values(endpoint)
        await self._session.execute(insert(tables.webhook_endpoints).values(values))

    async def get(self, environment_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        t = tables.webhook_endpoints
        result = await self._session.execute(
            select(t).where(t.c.environment_id == environment_id, t.c.id == endpoint_id)
        )
        row = result.mappings().first()
        return rows.webhook_endpoint_from(row) if row else None

    async def list(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        t = tables.webhook_endpoints
        result = await self._session.execute(
            select(t).where(t.c.environment_id == environment_id).order_by(t.c.created_at, t.c.id)
        )
        return [rows.webhook_endpoint_from(row) for row in result.mappings()]

    async def update(self, endpoint: WebhookEndpoint) -> None:
        await self._session.versioned_update(
            tables.webhook_endpoints,
            rows.webhook_endpoint_values(endpoint),
            "environment_id",
            "id",
        )


class SqlWebhookDeliveryRepository:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def add(self, delivery: WebhookDelivery) -> None:
        values = rows.webhook_delivery_values(delivery)
        await self._session.execute(insert(tables.webhook_deliveries).values(values))

    async def get(self, environment_id: str, delivery_id: str) -> WebhookDelivery | None:
        t = tables.webhook_deliveries
        result = await self._session.execute(
            select(t).where(t.c.environment_id == environment_id, t.c.id == delivery_id)
        )
        row = result.mappings().first()
        return rows.webhook_delivery_from(row) if row else None

    async def due(self, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
        t = tables.webhook_deliveries
        result = await self._session.execute(
            select(t)
            .where(t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, t.c.created_at, t.c.id)
            .limit(limit)
        )
        return [rows.webhook_delivery_from(row) for row in result.mappings()]

    async def update(self, delivery: WebhookDelivery) -> None:
        await self._session.versioned_update(
            tables.webhook_deliveries,
            rows.webhook_delivery_values(delivery),
            "environment_id",
            "id",
        )

    async def for_endpoint(
        self, environment_id: str, endpoint_id: str, limit: int
    ) -> Sequence[WebhookDelivery]:
        t = tables.webhook_deliveries
        result = await self._session.execute(
            select(t)
            .where(t.c.environment_id == environment_id, t.c.endpoint_id == endpoint_id)
            .order_by(t.c.created_at.desc(), t.c.id.desc())
            .limit(limit)
        )
        return [rows.webhook_delivery_from(row) for row in result.mappings()]


class SqlUnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._session = _Session(engine)
        self.environments = SqlEnvironmentRepository(self._session)
        self.api_keys = SqlApiKeyRepository(self._session)
        self.customers = SqlCustomerRepository(self._session)
        self.invoices = SqlInvoiceRepository(self._session)
        self.payments = SqlPaymentRepository(self._session)
        self.refunds = SqlRefundRepository(self._session)
        self.idempotency = SqlIdempotencyRepository(self._session)
        self.outbox = SqlOutboxRepository(self._session)
        self.gateway_events = SqlGatewayEventLog(self._session)
        self.webhook_endpoints = SqlWebhookEndpointRepository(self._session)
        self.webhook_deliveries = SqlWebhookDeliveryRepository(self._session)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    async def commit(self) -> None:
        connection = self._session.connection
        if connection is None:
            return
        try:
            await connection.commit()
        except IntegrityError as error:  # deferred checks, e.g. SQLite foreign keys
            raise ConcurrentUpdate() from error
        finally:
            await self._close()

    async def rollback(self) -> None:
        connection = self._session.connection
        if connection is not None:
            try:
                await connection.rollback()
            finally:
                await self._close()

    async def _close(self) -> None:
        connection, self._session.connection = self._session.connection, None
        if connection is not None:
            await connection.close()


@attrs.define
class SqlUnitOfWorkFactory:
    engine: AsyncEngine
    commits: int = 0  # committed transactions, counted by the engine

    def __attrs_post_init__(self) -> None:
        def count(_: Any) -> None:
            self.commits += 1

        event.listen(self.engine.sync_engine, "commit", count)

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)
