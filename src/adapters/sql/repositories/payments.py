"""Payments, their events, and refunds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Table, select

from adapters.sql import rows, tables
from adapters.sql.repositories.pages import page
from adapters.sql.rows import Row
from adapters.sql.session import SqlSession
from adapters.sql.statements import (
    LIVE_PAYMENT,
    PAYMENT_BY_TRACKING_ID,
    PAYMENTS,
    REFUNDS,
    any_of,
)
from core.errors import CheckoutError, ConcurrentUpdate, InvoiceAlreadyPaid, PaymentInProgress
from core.model import LIVE_STATUSES, PAID_STATUSES, Payment, PaymentEvent, Refund
from core.ports import Page, PaymentQuery

T = TypeVar("T")


def _conflict(payment: Payment) -> CheckoutError:
    """Which rule a payment row broke: its status says which unique index it is in."""
    if payment.status in LIVE_STATUSES:
        return PaymentInProgress(invoice_id=payment.invoice_id)
    if payment.status in PAID_STATUSES:
        return InvoiceAlreadyPaid(invoice_id=payment.invoice_id)
    return ConcurrentUpdate()


async def _left_in(
    session: SqlSession,
    table: Table,
    status: str,
    not_updated_since: datetime,
    limit: int,
    convert: Callable[[Row], T],
) -> list[T]:
    """Rows left in `status` since `not_updated_since`, oldest first: what reconciliation
    settles."""
    result = await session.execute(
        select(table)
        .where(table.c.status == status, table.c.updated_at <= not_updated_since)
        .order_by(table.c.updated_at)
        .limit(limit)
    )
    return [convert(row) for row in result.records]


class SqlPaymentRepository:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def add(self, payment: Payment) -> None:
        values = rows.payment_values(payment)
        self._session.stage_insert(PAYMENTS, values, _conflict(payment))

    async def get(
        self, environment_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment | None:
        statement = PAYMENTS.get_for_update if for_update else PAYMENTS.get
        row = await self._session.one(statement, PAYMENTS.key(environment_id, payment_id))
        return rows.payment_from(row) if row else None

    async def get_by_tracking_id(
        self, environment_id: str, gateway_tracking_id: str
    ) -> Payment | None:
        row = await self._session.one(
            PAYMENT_BY_TRACKING_ID,
            {"environment_id": environment_id, "gateway_tracking_id": gateway_tracking_id},
        )
        return rows.payment_from(row) if row else None

    async def update(self, payment: Payment) -> None:
        values = rows.payment_values(payment)
        self._session.stage_update(PAYMENTS, values, _conflict(payment))

    async def live_for_invoice(self, environment_id: str, invoice_id: str) -> Payment | None:
        row = await self._session.one(
            LIVE_PAYMENT, {"environment_id": environment_id, "invoice_id": invoice_id}
        )
        return rows.payment_from(row) if row else None

    async def list(self, query: PaymentQuery) -> Page[Payment]:
        t = tables.payments
        statement = select(t).where(t.c.environment_id == query.environment_id)
        for column, value in ((t.c.invoice_id, query.invoice_id),
                              (t.c.customer_id, query.customer_id)):  # fmt: skip
            if value is not None:
                statement = statement.where(column == value)
        if query.statuses is not None:
            statuses = [status.value for status in query.statuses]
            statement = statement.where(any_of(t.c.status, statuses))
        if query.created_gte is not None:
            statement = statement.where(t.c.created_at >= query.created_gte)
        if query.created_lt is not None:
            statement = statement.where(t.c.created_at < query.created_lt)
        mine = [t.c.environment_id == query.environment_id]
        return await page(self._session, t, statement, query.window, mine, rows.payment_from)

    async def processing(self, not_updated_since: datetime, limit: int) -> Sequence[Payment]:
        return await _left_in(
            self._session,
            tables.payments,
            "processing",
            not_updated_since,
            limit,
            rows.payment_from,
        )

    async def add_event(self, event: PaymentEvent) -> None:
        key = (event.payment_id, event.sequence)
        self._session.stage_append(tables.payment_events, key, rows.event_values(event))

    async def events(self, environment_id: str, payment_id: str) -> Sequence[PaymentEvent]:
        t = tables.payment_events
        result = await self._session.execute(
            select(t)
            .where(t.c.payment_id == payment_id, t.c.environment_id == environment_id)
            .order_by(t.c.sequence)
        )
        return [rows.event_from(row) for row in result.records]


class SqlRefundRepository:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def add(self, refund: Refund) -> None:
        self._session.stage_insert(REFUNDS, rows.refund_values(refund))

    async def get(self, environment_id: str, refund_id: str) -> Refund | None:
        row = await self._session.one(REFUNDS.get, REFUNDS.key(environment_id, refund_id))
        return rows.refund_from(row) if row else None

    async def update(self, refund: Refund) -> None:
        self._session.stage_update(REFUNDS, rows.refund_values(refund))

    async def for_payment(self, environment_id: str, payment_id: str) -> Sequence[Refund]:
        t = tables.refunds
        result = await self._session.execute(
            select(t)
            .where(t.c.environment_id == environment_id, t.c.payment_id == payment_id)
            .order_by(t.c.created_at, t.c.id)
        )
        return [rows.refund_from(row) for row in result.records]

    async def pending(self, not_updated_since: datetime, limit: int) -> Sequence[Refund]:
        return await _left_in(
            self._session, tables.refunds, "pending", not_updated_since, limit, rows.refund_from
        )
