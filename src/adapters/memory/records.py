"""Repositories of environments, API keys, customers, invoices, payments and refunds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from adapters.memory.table import InMemoryStore, Table, page
from core.model import (
    ApiKey,
    Customer,
    Environment,
    Invoice,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from core.ports import CustomerQuery, InvoiceQuery, Page, PaymentQuery

if TYPE_CHECKING:  # the invoices read customers through the unit of work that opens them
    from adapters.memory.uow import InMemoryUnitOfWork


class InMemoryEnvironmentRepository:
    def __init__(self, table: Table[str, Environment]) -> None:
        self.table = table

    async def add(self, environment: Environment) -> None:
        self.table.add(environment.id, environment)

    async def get(self, environment_id: str) -> Environment | None:
        return self.table.get(environment_id)

    async def update(self, environment: Environment) -> None:
        self.table.update(environment.id, environment)


class InMemoryApiKeyRepository:
    def __init__(self, table: Table[str, ApiKey]) -> None:
        self.table = table

    async def add(self, key: ApiKey) -> None:
        self.table.add(key.id, key)

    async def get(self, key_id: str) -> ApiKey | None:
        return self.table.get(key_id)

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self.table.rows() if k.key_hash == key_hash), None)

    async def update(self, key: ApiKey) -> None:
        self.table.update(key.id, key)

    async def of_tenant(self, tenant_id: str) -> Sequence[ApiKey]:
        keys = (k for k in self.table.rows() if k.tenant_id == tenant_id)
        return sorted(keys, key=lambda k: (k.created_at, k.id), reverse=True)


class InMemoryCustomerRepository:
    def __init__(self, table: Table[tuple[str, str], Customer]) -> None:
        self.table = table

    async def add(self, customer: Customer) -> None:
        self.table.add((customer.environment_id, customer.id), customer)

    async def get(self, environment_id: str, customer_id: str) -> Customer | None:
        return self.table.get((environment_id, customer_id))

    async def get_by_external_id(self, environment_id: str, external_id: str) -> Customer | None:
        return next(
            (
                c
                for c in self.table.rows()
                if c.environment_id == environment_id and c.external_id == external_id
            ),
            None,
        )

    async def get_by_gateway_customer_id(
        self, environment_id: str, gateway_customer_id: str
    ) -> Customer | None:
        return next(
            (
                c
                for c in self.table.rows()
                if c.environment_id == environment_id
                and c.gateway_customer_id == gateway_customer_id
            ),
            None,
        )

    async def list(self, query: CustomerQuery) -> Page[Customer]:
        rows = (c for c in self.table.rows() if c.environment_id == query.environment_id)
        return page(
            rows,
            lambda c: query.external_id is None or c.external_id == query.external_id,
            query.window,
            lambda c: (c.created_at, c.id),
        )


class InMemoryInvoiceRepository:
    def __init__(self, table: Table[tuple[str, str], Invoice], uow: InMemoryUnitOfWork) -> None:
        self.table = table
        self.uow = uow  # for customers as this transaction sees them; dropped at its end

    async def add(self, invoice: Invoice) -> None:
        self.table.add((invoice.environment_id, invoice.id), invoice)

    async def get(
        self, environment_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice | None:
        return self.table.get((environment_id, invoice_id))

    async def get_with_customer(
        self, environment_id: str, invoice_id: str
    ) -> tuple[Invoice, Customer] | None:
        invoice = self.table.get((environment_id, invoice_id))
        if invoice is None:
            return None
        customer = await self.uow.customers.get(environment_id, invoice.customer_id)
        assert customer is not None, "an invoice's customer is never deleted"
        return invoice, customer

    async def update(self, invoice: Invoice) -> None:
        self.table.update((invoice.environment_id, invoice.id), invoice)

    async def list(self, query: InvoiceQuery) -> Page[Invoice]:
        rows = (i for i in self.table.rows() if i.environment_id == query.environment_id)

        def kept(i: Invoice) -> bool:
            return (query.customer_id is None or i.customer_id == query.customer_id) and (
                query.statuses is None or i.status in query.statuses
            )

        return page(rows, kept, query.window, lambda i: (i.created_at, i.id))


class InMemoryPaymentRepository:
    def __init__(self, table: Table[tuple[str, str], Payment], store: InMemoryStore) -> None:
        self.table = table
        self._store = store
        self.new_events: list[PaymentEvent] = []

    async def add(self, payment: Payment) -> None:
        self.table.add((payment.environment_id, payment.id), payment)

    async def get(
        self, environment_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment | None:
        return self.table.get((environment_id, payment_id))

    async def get_by_tracking_id(
        self, environment_id: str, gateway_tracking_id: str
    ) -> Payment | None:
        for payment in self.table.staged.values():
            if (payment.environment_id, payment.gateway_tracking_id) == (
                environment_id,
                gateway_tracking_id,
            ):
                return payment
        key = self._store.payments_by_tracking_id.get((environment_id, gateway_tracking_id))
        return self.table.get(key) if key else None

    async def update(self, payment: Payment) -> None:
        self.table.update((payment.environment_id, payment.id), payment)

    def for_invoice(self, environment_id: str, invoice_id: str) -> list[Payment]:
        ids = self._store.payments_by_invoice.get((environment_id, invoice_id), [])
        found = {p.id: p for p in (self.table.get((environment_id, i)) for i in ids) if p}
        for payment in self.table.staged.values():
            if payment.environment_id == environment_id and payment.invoice_id == invoice_id:
                found[payment.id] = payment
        return list(found.values())

    async def live_for_invoice(self, environment_id: str, invoice_id: str) -> Payment | None:
        return next((p for p in self.for_invoice(environment_id, invoice_id) if p.is_live), None)

    async def list(self, query: PaymentQuery) -> Page[Payment]:
        rows = (p for p in self.table.rows() if p.environment_id == query.environment_id)

        def kept(p: Payment) -> bool:
            return (
                (query.invoice_id is None or p.invoice_id == query.invoice_id)
                and (query.customer_id is None or p.customer_id == query.customer_id)
                and (query.statuses is None or p.status in query.statuses)
                and (query.created_gte is None or p.created_at >= query.created_gte)
                and (query.created_lt is None or p.created_at < query.created_lt)
            )

        return page(rows, kept, query.window, lambda p: (p.created_at, p.id))

    async def processing(self, not_updated_since: datetime, limit: int) -> Sequence[Payment]:
        stuck = [
            p
            for p in self.table.rows()
            if p.status is PaymentStatus.PROCESSING and p.updated_at <= not_updated_since
        ]
        return sorted(stuck, key=lambda p: p.updated_at)[:limit]

    async def add_event(self, event: PaymentEvent) -> None:
        self.new_events.append(event)

    async def events(self, environment_id: str, payment_id: str) -> Sequence[PaymentEvent]:
        stored = self._store.events.get(payment_id, [])
        staged = [e for e in self.new_events if e.payment_id == payment_id]
        return [e for e in [*stored, *staged] if e.environment_id == environment_id]


class InMemoryRefundRepository:
    def __init__(self, table: Table[tuple[str, str], Refund]) -> None:
        self.table = table

    async def add(self, refund: Refund) -> None:
        self.table.add((refund.environment_id, refund.id), refund)

    async def get(self, environment_id: str, refund_id: str) -> Refund | None:
        return self.table.get((environment_id, refund_id))

    async def update(self, refund: Refund) -> None:
        self.table.update((refund.environment_id, refund.id), refund)

    async def for_payment(self, environment_id: str, payment_id: str) -> Sequence[Refund]:
        found = [
            r
            for r in self.table.rows()
            if r.environment_id == environment_id and r.payment_id == payment_id
        ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def pending(self, not_updated_since: datetime, limit: int) -> Sequence[Refund]:
        found = [
            r
            for r in self.table.rows()
            if r.status is RefundStatus.PENDING and r.updated_at <= not_updated_since
        ]
        return sorted(found, key=lambda r: r.updated_at)[:limit]
