"""Customers and their invoices."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from adapters.sql import rows, tables
from adapters.sql.repositories.pages import page
from adapters.sql.session import SqlSession
from adapters.sql.statements import (
    CUSTOMER_BY_EXTERNAL_ID,
    CUSTOMER_BY_GATEWAY_CUSTOMER_ID,
    CUSTOMER_LABELS,
    CUSTOMERS,
    INVOICE_WITH_CUSTOMER,
    INVOICES,
    any_of,
)
from core.errors import CustomerAlreadyExists, GatewayCustomerNotOwned
from core.model import Customer, Invoice
from core.ports import CustomerQuery, InvoiceQuery, Page

# Across environments, on purpose: a gateway customer has one holder.
_GATEWAY_CUSTOMER_HOLDER = select(tables.customers.c.environment_id, tables.customers.c.id).where(
    tables.customers.c.gateway_customer_id == bindparam("gateway_customer_id")
)
LINKED_HERE = "Another customer in this environment already links that gateway customer."


class SqlCustomerRepository:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def add(self, customer: Customer) -> None:
        """Refuses a gateway customer another customer links: of another environment,
        `GatewayCustomerNotOwned`. Two adding it at once: the unique index refuses the
        second (`CustomerAlreadyExists`, as it cannot tell its indexes apart)."""
        if (gateway_id := customer.gateway_customer_id) is not None:
            holder = await self._session.one(
                _GATEWAY_CUSTOMER_HOLDER, {"gateway_customer_id": gateway_id}
            )
            if holder is not None and holder["environment_id"] != customer.environment_id:
                raise GatewayCustomerNotOwned(gateway_customer_id=gateway_id)
            if holder is not None:
                raise CustomerAlreadyExists(LINKED_HERE, customer_id=holder["id"])
        values = rows.customer_values(customer)
        self._session.stage_insert(CUSTOMERS, values, CustomerAlreadyExists())

    async def get(self, environment_id: str, customer_id: str) -> Customer | None:
        row = await self._session.one(CUSTOMERS.get, CUSTOMERS.key(environment_id, customer_id))
        return rows.customer_from(row) if row else None

    async def get_by_external_id(self, environment_id: str, external_id: str) -> Customer | None:
        row = await self._session.one(
            CUSTOMER_BY_EXTERNAL_ID,
            {"environment_id": environment_id, "external_id": external_id},
        )
        return rows.customer_from(row) if row else None

    async def get_by_gateway_customer_id(
        self, environment_id: str, gateway_customer_id: str
    ) -> Customer | None:
        row = await self._session.one(
            CUSTOMER_BY_GATEWAY_CUSTOMER_ID,
            {"environment_id": environment_id, "gateway_customer_id": gateway_customer_id},
        )
        return rows.customer_from(row) if row else None

    async def list(self, query: CustomerQuery) -> Page[Customer]:
        t = tables.customers
        statement = select(t).where(t.c.environment_id == query.environment_id)
        if query.external_id is not None:
            statement = statement.where(t.c.external_id == query.external_id)
        mine = [t.c.environment_id == query.environment_id]
        return await page(self._session, t, statement, query.window, mine, rows.customer_from)


class SqlInvoiceRepository:
    def __init__(self, session: SqlSession) -> None:
        self._session = session

    async def add(self, invoice: Invoice) -> None:
        self._session.stage_insert(INVOICES, rows.invoice_values(invoice))

    async def get(
        self, environment_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice | None:
        statement = INVOICES.get_for_update if for_update else INVOICES.get
        row = await self._session.one(statement, INVOICES.key(environment_id, invoice_id))
        return rows.invoice_from(row) if row else None

    async def get_with_customer(
        self, environment_id: str, invoice_id: str
    ) -> tuple[Invoice, Customer] | None:
        row = await self._session.one(
            INVOICE_WITH_CUSTOMER, INVOICES.key(environment_id, invoice_id)
        )
        if row is None:
            return None
        customer = {column: row[label] for column, label in CUSTOMER_LABELS.items()}
        return rows.invoice_from(row), rows.customer_from(customer)

    async def update(self, invoice: Invoice) -> None:
        self._session.stage_update(INVOICES, rows.invoice_values(invoice))

    async def list(self, query: InvoiceQuery) -> Page[Invoice]:
        t = tables.invoices
        statement = select(t).where(t.c.environment_id == query.environment_id)
        if query.customer_id is not None:
            statement = statement.where(t.c.customer_id == query.customer_id)
        if query.statuses is not None:
            statuses = [status.value for status in query.statuses]
            statement = statement.where(any_of(t.c.status, statuses))
        mine = [t.c.environment_id == query.environment_id]
        return await page(self._session, t, statement, query.window, mine, rows.invoice_from)
