"""The statements the repositories run, built once at import; values are bound per call.

Building `insert(t).values(...)` per call costs more CPU than the round trip, and a statement
built once is compiled once (by SQLAlchemy's cache, or by the asyncpg executor's binder).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Delete,
    Insert,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    false,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.sql import ColumnElement

from adapters.sql import tables
from core.model import LIVE_STATUSES


def any_of(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values` as ORed equalities: one cached statement per count of values,
    where an IN list's values are spliced into the SQL as it runs (compiled each time)."""
    return or_(false(), *(column == value for value in values))  # none: matches nothing


def where_equal(table: Table, *columns: str) -> Select[Any]:
    """The table's rows whose columns equal the parameters bound under their names."""
    return select(table).where(*(table.c[name] == bindparam(name) for name in columns))


# An INSERT per table, its columns named by the values bound when it runs.
INSERT: dict[Table, Insert] = {table: insert(table) for table in tables.metadata.tables.values()}


@functools.cache
def delete_where_in(table: Table, column: str) -> Delete:
    """DELETE the rows whose `column` is one of the list bound as `values`."""
    return delete(table).where(table.c[column].in_(bindparam("values", expanding=True)))


class TableStatements:
    """One table's statements by key; values are bound at execution."""

    def __init__(self, table: Table, *keys: str) -> None:
        self.table = table
        self.keys = keys
        self.match_names = tuple(f"match_{k}" for k in keys)
        self.insert = INSERT[table]
        self.get = select(table).where(*(table.c[k] == bindparam(f"match_{k}") for k in keys))
        self.get_for_update = self.get.with_for_update()
        # No values(): the SET clause is made of the parameters named like columns.
        self.update = update(table).where(self.at_version())

    def at_version(self, prefix: str = "") -> ColumnElement[bool]:
        """The row by its key, only while still at the version it was read at (parameters
        `match_<key>` and `match_version`, after `prefix`)."""
        t = self.table
        return and_(
            *(t.c[k] == bindparam(f"{prefix}match_{k}") for k in self.keys),
            t.c.version == bindparam(f"{prefix}match_version"),
        )

    def key(self, *values: str) -> dict[str, str]:
        """Parameters that match one row by its key."""
        return dict(zip(self.match_names, values, strict=True))

    def row_key(self, values: dict[str, Any]) -> tuple[Any, ...]:
        """A row's key, from its values."""
        return tuple(map(values.__getitem__, self.keys))

    def versioned(self, values: dict[str, Any], read_version: int) -> dict[str, Any]:
        """UPDATE parameters: the new values, for the row still at the version it was read at."""
        params = dict(values)  # copied whole (in C), its key columns then renamed
        for column, name in zip(self.keys, self.match_names, strict=True):
            params[name] = params.pop(column)
        params["match_version"] = read_version
        return params


ENVIRONMENTS = TableStatements(tables.environments, "id")
API_KEYS = TableStatements(tables.api_keys, "id")
API_KEY_BY_HASH = select(tables.api_keys).where(tables.api_keys.c.key_hash == bindparam("key_hash"))
API_KEYS_OF_TENANT = (
    select(tables.api_keys)
    .where(tables.api_keys.c.tenant_id == bindparam("tenant_id"))
    .order_by(tables.api_keys.c.created_at.desc(), tables.api_keys.c.id.desc())
)
CUSTOMERS = TableStatements(tables.customers, "environment_id", "id")
CUSTOMER_BY_EXTERNAL_ID = where_equal(tables.customers, "environment_id", "external_id")
CUSTOMER_BY_GATEWAY_CUSTOMER_ID = where_equal(
    tables.customers, "environment_id", "gateway_customer_id"
)
INVOICES = TableStatements(tables.invoices, "environment_id", "id")
CUSTOMER_LABELS = {column.name: f"customer__{column.name}" for column in tables.customers.c}
INVOICE_WITH_CUSTOMER = (
    select(
        tables.invoices,
        *(tables.customers.c[name].label(label) for name, label in CUSTOMER_LABELS.items()),
    )
    .join(
        tables.customers,
        (tables.customers.c.environment_id == tables.invoices.c.environment_id)
        & (tables.customers.c.id == tables.invoices.c.customer_id),
    )
    .where(*(tables.invoices.c[k] == bindparam(f"match_{k}") for k in INVOICES.keys))
)
PAYMENTS = TableStatements(tables.payments, "environment_id", "id")
PAYMENT_BY_TRACKING_ID = where_equal(tables.payments, "environment_id", "gateway_tracking_id")
LIVE_PAYMENT = where_equal(tables.payments, "environment_id", "invoice_id").where(
    any_of(tables.payments.c.status, [s.value for s in LIVE_STATUSES])
)
REFUNDS = TableStatements(tables.refunds, "environment_id", "id")
IDEMPOTENCY = TableStatements(tables.idempotency_records, "environment_id", "key")
_KEYS = tables.idempotency_records.c
# A claim's lease extended where it is still in progress at the version claimed.
IDEMPOTENCY_RENEW = (
    update(tables.idempotency_records)
    .where(IDEMPOTENCY.at_version(), _KEYS.state == "in_progress")
    .values(lease_expires_at=bindparam("until"))
)
IDEMPOTENCY_IN_PROGRESS_FOR = select(tables.idempotency_records).where(
    _KEYS.environment_id == bindparam("environment_id"),
    _KEYS.resource_id == bindparam("resource_id"),
    _KEYS.state == "in_progress",
)
_EVENTS = tables.gateway_events.c
# Seen in the environment, or before the log was per environment (migration 0010): those
# were seen by every environment then, and stay so.
GATEWAY_EVENT_SEEN = select(_EVENTS.id).where(
    any_of(_EVENTS.environment_id, [bindparam("environment_id"), tables.BEFORE_ENVIRONMENTS]),
    _EVENTS.id == bindparam("event_id"),
)
WEBHOOK_ENDPOINTS = TableStatements(tables.webhook_endpoints, "environment_id", "id")
WEBHOOK_DELIVERIES = TableStatements(tables.webhook_deliveries, "environment_id", "id")
# The dispatcher runs these after every payment.
UNDELIVERED = select(tables.outbox).order_by(tables.outbox.c.sequence).limit(bindparam("limit"))
ENDPOINTS_OF_ENVIRONMENT = (
    select(tables.webhook_endpoints)
    .where(tables.webhook_endpoints.c.environment_id == bindparam("environment_id"))
    .order_by(tables.webhook_endpoints.c.created_at, tables.webhook_endpoints.c.id)
)
