"""SQL storage: the storage contract on SQLite and on PostgreSQL through each executor, and the
schema's migrations."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import attrs
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event as event_module
from sqlalchemy import insert, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import SqlUnitOfWorkFactory, create_engine_from_url, rows, tables
from adapters.sql.migrate import alembic_config, migrate
from core.errors import ConcurrentUpdate, IdempotencyKeyInUse, ServiceUnavailable
from core.model import (
    Actor,
    InvoicePaymentStatus,
    Notification,
    NotificationType,
    PaymentStatus,
)
from core.ports import UnitOfWorkFactory
from tests.integration.conftest import SqlPath, _admin, _plain
from tests.storage_contract import (
    ENV,
    T0,
    StorageContract,
    customer,
    invoice,
    paid,
    record,
    started_then_processing,
)


class TestSqlStorage(StorageContract):
    @pytest.fixture
    def units(self, sql_path: SqlPath) -> UnitOfWorkFactory:
        return sql_path.units()


async def test_the_migrated_schema_is_exactly_the_models(engine: AsyncEngine) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, tables.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


def _recording(sql_path: SqlPath) -> tuple[list[str], Any]:
    """The first words of each statement sent from now on (on the asyncpg executor, as asyncpg
    sends them, transaction control included)."""
    engine = sql_path.engine
    statements: list[str] = []

    def heading(statement: str) -> str:
        return " ".join(statement.split()[:3])

    if sql_path.executor == "sqlalchemy":

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(heading(statement))

        event_module.listen(engine.sync_engine, "before_cursor_execute", record)
        return statements, lambda: event_module.remove(
            engine.sync_engine, "before_cursor_execute", record
        )

    logged: list[Any] = []

    def log(query: Any) -> None:
        statements.append(heading(query.query))

    def watch(dbapi_connection: Any, *_: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver not in logged:
            driver.add_query_logger(log)
            logged.append(driver)

    def stop() -> None:
        event_module.remove(engine.sync_engine, "checkout", watch)
        for driver in logged:
            driver.remove_query_logger(log)

    event_module.listen(engine.sync_engine, "checkout", watch)
    return statements, stop


async def test_a_payments_writes_cost_one_statement_on_asyncpg_one_per_table_else(
    sql_path: SqlPath,
) -> None:
    """The first transaction of a payment: its row (added, then moved: no UPDATE), two events,
    two notifications and its invoice's new version. Then its outcome, written without a
    read: on the asyncpg executor one statement that commits on its own."""
    units = sql_path.units()
    async with units() as uow:
        await uow.customers.add(customer())
        await uow.invoices.add(invoice())
        await uow.commit()
    started, created, processing, event = started_then_processing("pay_0001")
    statements, stop = _recording(sql_path)
    try:
        async with units() as uow:
            read = await uow.invoices.get(ENV, "inv_0001", for_update=True)
            assert read is not None
            await uow.payments.add(started)
            await uow.payments.add_event(created)
            await uow.outbox.add(_notification(1))
            await uow.payments.update(processing)
            await uow.payments.add_event(event)
            await uow.outbox.add(_notification(2))
            charging = read.with_payment_status(InvoicePaymentStatus.PROCESSING, T0)
            await uow.invoices.update(charging)
            await uow.commit()
        await asyncio.sleep(0)  # asyncpg hands its query log over on the next turn
        first = list(statements)
        statements.clear()
        succeeded, settled = processing.transition(
            PaymentStatus.SUCCEEDED, at=T0, reason="charge succeeded", actor=Actor.API
        )
        async with units() as uow:
            await uow.payments.update(succeeded)
            await uow.payments.add_event(settled)
            await uow.invoices.update(charging.record_payment(succeeded.amount, T0))
            await uow.commit()
        await asyncio.sleep(0)
        second = list(statements)
    finally:
        stop()
    if sql_path.executor == "asyncpg":
        assert first == ["BEGIN;", "SELECT invoices.environment_id, invoices.id,", "WITH w0 AS",
                         "COMMIT;"]  # fmt: skip
        assert second == ["WITH w0 AS"]  # no BEGIN: it commits as it ends
    else:
        assert _without_transaction_control(first) == [
            "SELECT invoices.environment_id, invoices.id,",
            "INSERT INTO payments",
            "INSERT INTO payment_events",
            "INSERT INTO outbox",
            "UPDATE invoices SET",
        ]
        assert _without_transaction_control(second) == [
            "INSERT INTO payment_events",
            "UPDATE payments SET",
            "UPDATE invoices SET",
        ]
    async with units() as uow:
        assert await uow.payments.get(ENV, "pay_0001") == succeeded
        assert list(await uow.payments.events(ENV, "pay_0001")) == [created, event, settled]
        assert [n.id for n in await uow.outbox.undelivered(10)] == ["evt_1", "evt_2"]
        paid = await uow.invoices.get(ENV, "inv_0001")
        assert paid is not None
        assert paid.amount_remaining.is_zero


def _without_transaction_control(statements: list[str]) -> list[str]:
    return [s for s in statements if s.split()[0].rstrip(";") not in ("BEGIN", "COMMIT")]


async def test_an_update_whose_stale_row_has_its_own_meaning_is_sent_on_its_own(
    sql_path: SqlPath,
) -> None:
    """A stale idempotency record means the key is in use, not just a lost race: the asyncpg
    executor sends its update apart from the combined statement, whose check cannot say
    which row moved."""
    units = sql_path.units()
    async with units() as uow:
        await uow.customers.add(customer())
        await uow.invoices.add(invoice())
        await uow.idempotency.put(record())
        await uow.commit()
    async with units() as uow:
        await uow.idempotency.put(record(version=3))  # read at 2: another request took it
        await uow.invoices.update(attrs.evolve(invoice().void(T0), version=2))
        with pytest.raises(IdempotencyKeyInUse):
            await uow.commit()
    async with units() as uow:
        assert await uow.invoices.get(ENV, "inv_0001") == invoice()  # nothing landed
        await uow.idempotency.put(record(version=2))
        await uow.invoices.update(attrs.evolve(invoice(), version=5))  # the invoice moved
        with pytest.raises(ConcurrentUpdate):
            await uow.commit()
    async with units() as uow:
        assert await uow.idempotency.get(ENV, "k") == record()


async def test_a_delivered_notification_leaves_the_outbox_table(sql_path: SqlPath) -> None:
    engine, units = sql_path.engine, sql_path.units()
    async with units() as uow:
        for number in range(3):
            await uow.outbox.add(_notification(number))
        await uow.commit()
    async with units() as uow:
        await uow.outbox.remove_delivered(["evt_0", "evt_2"])
        await uow.commit()
    async with engine.connect() as connection:
        left = await connection.execute(select(tables.outbox.c.id))
        assert left.scalars().all() == ["evt_1"]  # deleted, not marked: no row to rewrite


def _notification(number: int) -> Notification:
    return Notification(f"evt_{number}", ENV, NotificationType.PAYMENT_PROCESSING, T0, {})


async def _backend_pids(url: str) -> set[int]:
    """Server processes connected to this test's database, other than the asking one."""
    admin = await asyncpg.connect(_plain(url))
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return {row["pid"] for row in rows}
    finally:
        await admin.close()


@pytest.mark.parametrize("executor", ["asyncpg", "sqlalchemy"])
async def test_a_connection_the_server_dropped_is_not_lent_again(
    clean_postgres_url: str, executor: str
) -> None:
    engine = create_engine_from_url(clean_postgres_url, pool_size=1)
    units = SqlUnitOfWorkFactory(engine, executor=executor)
    try:
        async with units() as uow:
            await uow.customers.add(customer())
            await uow.commit()
        for pid in await _backend_pids(clean_postgres_url):
            await _admin(f"SELECT pg_terminate_backend({pid})")

        # The next unit fails on the dead connection (an outage: `ServiceUnavailable`), or
        # finds it closed in the pool and borrows a new one: which, depends on when the client
        # hears of the termination.
        try:
            async with units() as uow:
                found = await uow.customers.get(ENV, "cust_0001")
            assert found == customer()
        except ServiceUnavailable:
            pass
        for _ in range(3):  # never the dead one again
            async with units() as uow:
                assert await uow.customers.get(ENV, "cust_0001") == customer()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("executor", ["asyncpg", "sqlalchemy"])
async def test_a_unit_left_by_an_error_gives_its_connection_back_rolled_back(
    clean_postgres_url: str, executor: str
) -> None:
    engine = create_engine_from_url(clean_postgres_url, pool_size=1)
    units = SqlUnitOfWorkFactory(engine, executor=executor)
    try:
        async with units() as uow:
            await uow.customers.add(customer())
            await uow.invoices.add(invoice())
            await uow.commit()

        async def give_up_holding_a_lock() -> None:
            async with units() as uow:
                await uow.invoices.get(ENV, "inv_0001", for_update=True)
                raise LookupError("the use case gave up")

        with pytest.raises(LookupError):
            await give_up_holding_a_lock()

        # The pool's only connection again: no transaction left open on it, no lock held.
        async with units() as uow:
            locked = await uow.invoices.get(ENV, "inv_0001", for_update=True)
            assert locked == invoice()
            await uow.invoices.update(paid(locked))
            await uow.commit()
        assert len(await _backend_pids(clean_postgres_url)) == 1
    finally:
        await engine.dispose()
    elsewhere = create_engine_from_url(clean_postgres_url)
    try:  # committed for every other connection to see, not just within a lingering transaction
        async with SqlUnitOfWorkFactory(elsewhere)(read_only=True) as uow:
            stored = await uow.invoices.get(ENV, "inv_0001")
            assert stored is not None
            assert stored.amount_remaining.is_zero
    finally:
        await elsewhere.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def unmigrated_engine(
    request: pytest.FixtureRequest, tmp_path: Any
) -> AsyncIterator[AsyncEngine]:
    """An empty database of its own: a migration test moves its schema back and forth."""
    if request.param == "sqlite":
        engine = create_engine_from_url(f"sqlite+aiosqlite:///{tmp_path / 'migrations.sqlite3'}")
        yield engine
        await engine.dispose()
        return
    postgres_url = request.getfixturevalue("postgres_url")  # skips (or fails in CI) if down
    name = f"card_checkout_migrations_{os.getpid()}"
    await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await _admin(f"CREATE DATABASE {name}")
    engine = create_engine_from_url(str(make_url(postgres_url).set(database=name)))
    try:
        yield engine
    finally:
        await engine.dispose()
        await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_the_outbox_migration_keeps_what_is_left_to_deliver_and_goes_back(
    unmigrated_engine: AsyncEngine,
) -> None:
    await migrate(unmigrated_engine, "0005")
    insert_row = text(
        "INSERT INTO outbox (id, environment_id, type, occurred_at, data, delivered_at) "
        "VALUES (:id, 'env_1', 'payment.created', :at, '{}', :delivered_at)"
    )
    async with unmigrated_engine.begin() as connection:
        await connection.execute(insert_row, {"id": "evt_sent", "at": T0, "delivered_at": T0})
        await connection.execute(insert_row, {"id": "evt_due", "at": T0, "delivered_at": None})
    await migrate(unmigrated_engine)
    async with unmigrated_engine.connect() as connection:
        left = await connection.execute(select(tables.outbox.c.id))
        assert left.scalars().all() == ["evt_due"]
    units = SqlUnitOfWorkFactory(unmigrated_engine)
    async with units() as uow:
        assert [n.id for n in await uow.outbox.undelivered(10)] == ["evt_due"]

    def downgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")

    async with unmigrated_engine.begin() as connection:
        await connection.run_sync(downgrade)
    async with unmigrated_engine.connect() as connection:
        due = await connection.execute(text("SELECT id FROM outbox WHERE delivered_at IS NULL"))
        assert due.scalars().all() == ["evt_due"]


async def test_claims_from_before_leases_read_back_without_a_lease_and_the_migration_goes_back(
    unmigrated_engine: AsyncEngine,
) -> None:
    await migrate(unmigrated_engine, "0007")
    async with unmigrated_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO idempotency_records (environment_id, key, operation, fingerprint, "
                "state, created_at, expires_at, version) "
                "VALUES (:env, 'k', 'create_payment', 'f', 'in_progress', :at, :expires, 1)"
            ),
            {"env": ENV, "at": T0, "expires": record().expires_at},
        )
    await migrate(unmigrated_engine)
    units = SqlUnitOfWorkFactory(unmigrated_engine)
    async with units() as uow:
        assert await uow.idempotency.get(ENV, "k") == record()  # no lease, nothing recorded

    def downgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")

    async with unmigrated_engine.begin() as connection:
        await connection.run_sync(downgrade)
    async with unmigrated_engine.connect() as connection:
        kept = await connection.execute(text("SELECT key FROM idempotency_records"))
        assert kept.scalars().all() == ["k"]


async def test_the_one_holder_migration_names_shared_gateway_customers_instead_of_failing_blind(
    unmigrated_engine: AsyncEngine,
) -> None:
    await migrate(unmigrated_engine, "0008")
    async with unmigrated_engine.begin() as connection:
        for env in ("env_a", "env_b"):  # as the attack of issue 18 left it
            await connection.execute(
                text(
                    "INSERT INTO customers (environment_id, id, external_id, gateway_customer_id,"
                    " created_at, version) VALUES (:env, 'cust_1', 'x', 'cus_shared', :at, 1)"
                ),
                {"env": env, "at": T0},
            )

    with pytest.raises(RuntimeError, match=r"cus_shared \(2 customers\)"):
        await migrate(unmigrated_engine)

    async with unmigrated_engine.begin() as connection:
        await connection.execute(
            text("UPDATE customers SET gateway_customer_id = NULL WHERE environment_id = 'env_a'")
        )
    await migrate(unmigrated_engine, "0009")
    async with unmigrated_engine.connect() as connection:
        version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    assert version == "0009"


async def test_events_seen_before_the_per_environment_log_stay_seen_and_the_migration_goes_back(
    unmigrated_engine: AsyncEngine,
) -> None:
    await migrate(unmigrated_engine, "0009")
    async with unmigrated_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO gateway_events (id, type, processed_at)"
                " VALUES ('evt_before', 'checkout.session.completed', :at)"
            ),
            {"at": T0},
        )
    await migrate(unmigrated_engine, "0010")
    units = SqlUnitOfWorkFactory(unmigrated_engine)
    async with units() as uow:
        # Which environment handled it is not known: none applies it again.
        assert await uow.gateway_events.seen(ENV, "evt_before")
        assert await uow.gateway_events.seen("env_b", "evt_before")
        assert not await uow.gateway_events.seen(ENV, "evt_after")
        await uow.gateway_events.add(ENV, "evt_after", "checkout_completed", T0)
        await uow.gateway_events.add("env_b", "evt_after", "checkout_completed", T0)
        await uow.commit()
    async with units() as uow:
        assert await uow.gateway_events.seen("env_b", "evt_after")
        assert not await uow.gateway_events.seen("env_c", "evt_after")

    def downgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")

    async with unmigrated_engine.begin() as connection:
        await connection.run_sync(downgrade)
    async with unmigrated_engine.connect() as connection:
        kept = await connection.execute(text("SELECT id FROM gateway_events ORDER BY id"))
        assert kept.scalars().all() == ["evt_after", "evt_before"]  # one row per event id


async def test_the_gapless_events_migration_renumbers_each_payments_events_and_goes_back(
    unmigrated_engine: AsyncEngine,
) -> None:
    """Events numbered by their payment's version (gaps where a refund was reserved) become
    1..n per payment, in their order; each payment counts them and numbers the next after."""
    await migrate(unmigrated_engine, "0011")
    numbered = {"pay_0001": [1, 2, 3, 5, 7], "pay_0002": [1, 2, 4], "pay_0003": [1, 2]}
    async with unmigrated_engine.begin() as connection:
        await connection.execute(insert(tables.customers).values(rows.customer_values(customer())))
        for n, payment_id in enumerate(numbered, start=1):
            await connection.execute(
                insert(tables.invoices).values(rows.invoice_values(invoice(n)))
            )
            before = rows.payment_values(started_then_processing(payment_id)[2])
            del before["event_count"]  # not a column yet
            before.update(invoice_id=f"inv_{n:04d}", version=9)
            await connection.execute(insert(tables.payments).values(before))
        for sequence in range(1, 8):  # the payments' events interleaved, as they were written
            for payment_id, sequences in numbered.items():
                if sequence in sequences:
                    await connection.execute(
                        insert(tables.payment_events).values(
                            payment_id=payment_id, sequence=sequence, environment_id=ENV,
                            to_status="processing", reason=f"was {sequence}", actor="api",
                            occurred_at=T0,
                        )
                    )  # fmt: skip
    await migrate(unmigrated_engine)

    units = SqlUnitOfWorkFactory(unmigrated_engine)
    async with units() as uow:
        for payment_id, sequences in numbered.items():
            events = await uow.payments.events(ENV, payment_id)
            assert [(e.sequence, e.reason) for e in events] == [
                (n, f"was {old}") for n, old in enumerate(sequences, start=1)
            ]
            stored = await uow.payments.get(ENV, payment_id)
            assert stored is not None
            assert stored.event_count == len(sequences)
        first = await uow.payments.get(ENV, "pay_0001")
        assert first is not None
        failed, event = first.transition(
            PaymentStatus.FAILED, at=T0, reason="declined", actor=Actor.API
        )
        assert event.sequence == 6
        await uow.payments.update(failed)
        await uow.payments.add_event(event)
        await uow.commit()

    def downgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0011")

    async with unmigrated_engine.begin() as connection:
        await connection.run_sync(downgrade)
    async with unmigrated_engine.connect() as connection:
        kept = await connection.execute(
            text("SELECT sequence FROM payment_events WHERE payment_id = 'pay_0001' ORDER BY 1")
        )
        assert kept.scalars().all() == [1, 2, 3, 4, 5, 6]
        columns = await connection.run_sync(
            lambda sync: [c["name"] for c in sa_inspect(sync).get_columns("payments")]
        )
        assert "event_count" not in columns
