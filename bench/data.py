"""The databases the bench makes (and drops), and the customers, cards and invoices in them."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

import asyncpg
import httpx
from sqlalchemy import insert

from adapters.ids import UlidIdGenerator
from adapters.sql import create_engine_from_url, tables
from adapters.sql.rows import invoice_values
from bench.load import ENV, GOOD_CARD, Server
from core.model import Invoice, InvoiceStatus
from core.money import Money
from entrypoints.bootstrap import Settings, bootstrap

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# The databases this run made, dropped when it ends (the growth ones hold about 1 GB).
CREATED: list[str] = []


class InvoicePool:
    """Finalized invoices of one customer with a saved card: each payment takes a fresh one."""

    def __init__(self, ids: list[str], key: str) -> None:
        self.ids = ids
        self.key = key
        self.used = 0

    def take(self, count: int) -> list[str]:
        taken = self.ids[self.used : self.used + count]
        if len(taken) < count:
            raise RuntimeError("the bench ran out of invoices: prepare more")
        self.used += count
        return taken


async def pg_database(name: str) -> str:
    """A fresh database (one left by an earlier run that was killed is dropped first)."""
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    CREATED.append(name)
    return POSTGRES.rsplit("/", 1)[0] + f"/{name}"


async def drop_databases() -> None:
    if not CREATED:
        return
    admin = await asyncpg.connect(POSTGRES)
    while CREATED:
        await admin.execute(f"DROP DATABASE IF EXISTS {CREATED.pop()} WITH (FORCE)")
    await admin.close()


async def analyze(url: str) -> None:
    """Statistics, as autovacuum gathers them within a minute of a table's first rows.

    Without any, PostgreSQL 15 planned the update of a payment by its primary key as a scan
    of the environment's rows through another index: 1,620-3,780 buffers and 1.9-2.9 ms per
    payment, growing with every payment (pg_stat_statements, EXPLAIN). The bench floods a
    brand-new database within seconds, before autovacuum's first pass; a service's database
    has been analyzed long before."""
    connection = await asyncpg.connect(url)
    await connection.execute("ANALYZE")
    await connection.close()


async def pg_commits() -> int:
    """Transactions that wrote, so far: each takes a transaction id, a read never does.

    Cluster-wide, so the bench counts it with nothing else writing; `xact_commit` would also
    count every lone read as a commit, though it makes nothing durable.
    """
    admin = await asyncpg.connect(POSTGRES)
    value = await admin.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
    await admin.close()
    return int(value)


async def prepare(url: str) -> str:
    """A migrated database with the bench's environment; returns a new write key for it."""
    checkout = bootstrap(Settings(database_url=url), dispatch_inline=False)
    await checkout.migrate()
    try:
        await checkout.get_environment(ENV)
    except Exception:  # noqa: BLE001 - a fresh database
        await checkout.create_environment("bench", "bench", environment_id=ENV)
    _, key = await checkout.create_api_key("bench", [ENV], "write")
    await checkout.aclose()
    return key


async def enroll(server: Server, key: str, url: str, invoices: int,
                 card: str = GOOD_CARD) -> InvoicePool:  # fmt: skip
    """A customer whose card is saved through the server's sandbox page, as a user would,
    and `invoices` finalized invoices for it, bulk-inserted."""
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
        created = await client.post(
            "/api/v1/customers", json={"external_id": f"bench-{os.urandom(6).hex()}"}
        )
        customer_id = created.raise_for_status().json()["id"]
        setup = await client.post(f"/api/v1/customers/{customer_id}/payment_methods/setup")
        page = httpx.URL(setup.raise_for_status().json()["url"]).path  # at this server's port
        form = (await client.get(page)).raise_for_status().text
        token = re.search(r'name="form_token" value="([^"]*)"', form)
        assert token is not None, "the hosted page carries its session's token"
        saved = await client.post(page, data={"card_number": card, "form_token": token[1]})
        saved.raise_for_status()
    now = datetime.now(UTC)
    ids = UlidIdGenerator()  # as the service makes them: no long runs of digits
    rows = [
        invoice_values(
            Invoice(
                id=ids.new_id("inv"),
                environment_id=ENV,
                customer_id=customer_id,
                amount_due=Money.of("10.00", "usd"),
                status=InvoiceStatus.FINALIZED,
                created_at=now,
                updated_at=now,
                finalized_at=now,
            )
        )
        for _ in range(invoices)
    ]
    engine = create_engine_from_url(url)
    async with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            await connection.execute(insert(tables.invoices), rows[start : start + 5000])
    await engine.dispose()
    return InvoicePool([str(r["id"]) for r in rows], key)


async def bulk_payments(url: str, count: int) -> None:
    """`count` paid invoices with their succeeded payments, copied in fast (COPY)."""
    if count <= 0:
        return
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    customer = await connection.fetchval(
        "SELECT id FROM customers WHERE environment_id = $1 LIMIT 1", ENV
    )
    now = datetime.now(UTC)
    stamp = time.time_ns()
    for start in range(0, count, 100_000):
        batch = range(start, min(count, start + 100_000))
        await connection.copy_records_to_table(
            "invoices",
            records=[(ENV, f"inv_g{stamp}{n:09d}", customer, "usd", 1000, 1000, 0, "FINALIZED",
                      "succeeded", None, now, now, now, None, now, 3) for n in batch],
            columns=["environment_id", "id", "customer_id", "currency", "amount_due",
                     "amount_paid", "amount_refunded", "status", "payment_status", "external_id",
                     "created_at", "updated_at", "finalized_at", "voided_at", "paid_at",
                     "version"],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "payments",
            records=[(ENV, f"pay_g{stamp}{n:09d}", f"inv_g{stamp}{n:09d}", customer, "usd", 1000,
                      0, 0, "CARD", "succeeded", "stripe", "pm_x", f"pi_g{stamp}{n:09d}", None,
                      False, None, None, "{}", "visa", "4242", None, now, now, now, None, None, 3)
                     for n in batch],
            columns=["environment_id", "id", "invoice_id", "customer_id", "currency", "amount",
                     "amount_refunded", "refund_reserved", "method_type", "status", "gateway",
                     "payment_method_id", "gateway_tracking_id", "payment_url",
                     "save_card_and_make_default", "success_url", "cancel_url", "metadata",
                     "card_brand", "card_last4", "failure", "created_at", "updated_at",
                     "succeeded_at", "failed_at", "refunded_at", "version"],
        )  # fmt: skip
    # Settle the load as a long-running database would be: hint bits set, statistics fresh,
    # and the checkpoint its WAL calls for done now rather than during the measurement.
    await connection.execute("VACUUM ANALYZE invoices")
    await connection.execute("VACUUM ANALYZE payments")
    await connection.execute("CHECKPOINT")
    await connection.close()
