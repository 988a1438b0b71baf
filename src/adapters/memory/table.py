"""`Table` (one table's committed rows and staged changes), the shared `InMemoryStore`, paging."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import attrs

from core.errors import ConcurrentUpdate
from core.lists import Window, cursor_of, trimmed, unknown_cursor
from core.model import (
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
from core.ports import IdempotencyRecord, Page


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


E = TypeVar("E", bound=_Versioned)
K = TypeVar("K", bound=Hashable)


class Table(Generic[K, E]):
    """One table's committed rows plus this transaction's staged changes."""

    def __init__(self, committed: dict[K, E]) -> None:
        self.committed = committed
        self.staged: dict[K, E] = {}
        self.read_versions: dict[K, int] = {}
        self.inserted: set[K] = set()

    def get(self, key: K) -> E | None:
        return self.staged.get(key) or self.committed.get(key)

    def add(self, key: K, row: E) -> None:
        self.staged[key] = row
        self.inserted.add(key)

    def update(self, key: K, row: E) -> None:
        current = self.get(key)
        if current is None or current.version != row.version - 1:
            raise ConcurrentUpdate()
        if key not in self.inserted:
            self.read_versions.setdefault(key, current.version)
        self.staged[key] = row

    def conflicts(self) -> Iterable[K]:
        """Keys another transaction wrote first: inserted twice, or updated since read."""
        for key in self.inserted:
            if key in self.committed:
                yield key
        for key, version in self.read_versions.items():
            row = self.committed.get(key)
            if row is None or row.version != version:
                yield key

    def rows(self) -> Iterable[E]:
        """Every row as this transaction sees it."""
        yield from self.staged.values()
        for key, row in self.committed.items():
            if key not in self.staged:
                yield row

    def apply(self) -> None:
        self.committed.update(self.staged)


@attrs.define
class InMemoryStore:
    """The committed state, shared by every unit of work made from it."""

    environments: dict[str, Environment] = attrs.Factory(dict)
    api_keys: dict[str, ApiKey] = attrs.Factory(dict)
    customers: dict[tuple[str, str], Customer] = attrs.Factory(dict)
    invoices: dict[tuple[str, str], Invoice] = attrs.Factory(dict)
    payments: dict[tuple[str, str], Payment] = attrs.Factory(dict)
    payments_by_invoice: dict[tuple[str, str], list[str]] = attrs.Factory(dict)
    # (environment id, gateway tracking id) -> payment key
    payments_by_tracking_id: dict[tuple[str, str], tuple[str, str]] = attrs.Factory(dict)
    events: dict[str, list[PaymentEvent]] = attrs.Factory(dict)
    refunds: dict[tuple[str, str], Refund] = attrs.Factory(dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = attrs.Factory(dict)
    # Only what is not yet delivered: delivery removes a notification.
    outbox: dict[str, Notification] = attrs.Factory(dict)
    # (environment id, event id) -> event type
    gateway_events: dict[tuple[str, str], str] = attrs.Factory(dict)
    webhook_endpoints: dict[tuple[str, str], WebhookEndpoint] = attrs.Factory(dict)
    webhook_deliveries: dict[tuple[str, str], WebhookDelivery] = attrs.Factory(dict)
    commits: int = 0


def page(collection: Iterable[E], kept: Callable[[E], bool], window: Window,
         key: Callable[[E], tuple[datetime, str]]) -> Page[E]:  # fmt: skip
    """The page of the rows `kept` keeps, newest first by `key` (created_at, id); the cursor
    is any row of the collection, kept or not."""
    rows = list(collection)
    kept_rows = [row for row in rows if kept(row)]
    cursor = cursor_of(window)
    if cursor is None:
        return trimmed(sorted(kept_rows, key=key, reverse=True)[: window.limit + 1], window.limit)
    at = next((key(row) for row in rows if key(row)[1] == cursor.id), None)
    if at is None:
        raise unknown_cursor(cursor)
    if cursor.backwards:  # the rows just newer than the cursor, walking up from it
        newer = sorted((row for row in kept_rows if key(row) > at), key=key)
        return trimmed(newer[: window.limit + 1], window.limit, backwards=True)
    older = sorted((row for row in kept_rows if key(row) < at), key=key, reverse=True)
    return trimmed(older[: window.limit + 1], window.limit)
