"""Staged writes, and the statements each executor sends them as (no database needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.sql import rows, tables
from adapters.sql import statements as s
from adapters.sql.asyncpg_executor import AsyncpgExecutor
from adapters.sql.staging import StagedWrites, one_statement_each
from adapters.sql.uow import executor_for
from core.errors import ConcurrentUpdate, IdempotencyKeyInUse
from tests.storage_contract import customer, invoice, record


@pytest.fixture
def postgresql() -> Iterator[AsyncEngine]:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1/none")  # never connects
    yield engine
    engine.sync_engine.dispose()


def test_a_row_added_then_changed_is_inserted_once_as_changed() -> None:
    writes = StagedWrites()
    added = rows.invoice_values(invoice())
    changed = rows.invoice_values(invoice().void(invoice().created_at))
    writes.insert(tables.invoices, s.INVOICES.row_key(added), added)
    writes.update(s.INVOICES, s.INVOICES.row_key(changed), changed)

    [insert] = one_statement_each(writes)

    assert insert.params == changed
    assert not writes.updates


def test_a_change_over_another_version_than_the_waiting_one_is_refused_at_once() -> None:
    writes = StagedWrites()
    first = rows.idempotency_values(record(version=2))
    writes.update(s.IDEMPOTENCY, ("env_a", "k"), first, stale=IdempotencyKeyInUse())
    later = rows.idempotency_values(record(version=4))  # read at 3, yet 2 waits

    with pytest.raises(IdempotencyKeyInUse):
        writes.update(s.IDEMPOTENCY, ("env_a", "k"), later, stale=IdempotencyKeyInUse())
    writes.insert(tables.invoices, ("env_a", "inv_0001"), rows.invoice_values(invoice()))
    stale = rows.invoice_values(invoice()) | {"version": 9}
    with pytest.raises(ConcurrentUpdate):
        writes.update(s.INVOICES, ("env_a", "inv_0001"), stale)


def test_rows_go_in_after_the_rows_they_refer_to() -> None:
    writes = StagedWrites()
    writes.insert(tables.invoices, "i", rows.invoice_values(invoice()))
    writes.insert(tables.outbox, "n", {"id": "evt_1"})
    writes.insert(tables.customers, "c", rows.customer_values(customer()))

    order = [table.name for table, _ in writes.inserts_in_order()]

    assert order == ["customers", "invoices", "outbox"]


def test_the_reference_sends_a_statement_per_table_and_per_versioned_row() -> None:
    writes = StagedWrites()
    writes.insert(tables.outbox, "evt_1", {"id": "evt_1"})
    writes.insert(tables.outbox, "evt_2", {"id": "evt_2"})
    changed = rows.invoice_values(invoice()) | {"version": 2}
    writes.update(s.INVOICES, s.INVOICES.row_key(changed), changed)
    writes.delete(tables.outbox, "id", ["evt_0"])

    sent = one_statement_each(writes)

    assert [w.versioned for w in sent] == [False, True, False]
    assert sent[0].params == [{"id": "evt_1"}, {"id": "evt_2"}]
    assert sent[1].params["match_version"] == 1
    assert sent[2].params == {"values": ["evt_0"]}


def test_asyncpg_combines_all_but_updates_whose_stale_row_means_more(
    postgresql: AsyncEngine,
) -> None:
    writes = StagedWrites()
    writes.insert(tables.outbox, "evt_1", {"id": "evt_1"})
    changed = rows.invoice_values(invoice()) | {"version": 2}
    writes.update(s.INVOICES, s.INVOICES.row_key(changed), changed)
    taken = rows.idempotency_values(record(version=2))
    writes.update(s.IDEMPOTENCY, ("env_a", "k"), taken, stale=IdempotencyKeyInUse())

    alone, combined = AsyncpgExecutor(postgresql).statements_for(writes)

    assert alone.versioned
    assert isinstance(alone.stale, IdempotencyKeyInUse)
    assert isinstance(combined.statement, Select)  # a SELECT over data-modifying CTEs
    assert not combined.versioned  # its check is inside: card_checkout_expect_rows
    assert set(combined.conflicts) == {"outbox", "invoices"}


def test_each_database_has_its_default_executor_and_refuses_one_it_cannot_run(
    postgresql: AsyncEngine,
) -> None:
    sqlite = create_async_engine("sqlite+aiosqlite://")

    assert executor_for(postgresql).name == "asyncpg"
    assert executor_for(postgresql, "sqlalchemy").name == "sqlalchemy"
    assert executor_for(sqlite).name == "sqlalchemy"
    with pytest.raises(ValueError, match="does not run on sqlite"):
        executor_for(sqlite, "asyncpg")
    with pytest.raises(ValueError, match="unknown database executor 'psycopg'"):
        executor_for(postgresql, "psycopg")
    sqlite.sync_engine.dispose()
