"""`make bench`: how fast Card Checkout is, and how its cost grows, measured side by side.

Prints a table (each figure with its target and a pass/miss mark), writes the same figures to
bench/results/latest.json and a chart of throughput and latency against concurrency to
bench/results/latest.png. Absolute numbers vary between machines; the ratios travel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import uvloop
from sqlalchemy import insert

from adapters.ids import UlidIdGenerator
from adapters.sql import create_engine_from_url, tables
from adapters.sql.rows import invoice_values
from core.model import Invoice, InvoiceStatus
from core.money import Money
from entrypoints.bootstrap import Settings, bootstrap

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CLI = str(Path(sys.executable).with_name("card-checkout"))
ENV = "env_bench"
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CONCURRENCY = (1, 4, 16, 64)
WARM_UP = 30  # requests sent to a fresh server before its latency is recorded


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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

    def file(self, count: int) -> str:
        path = Path(tempfile.mkdtemp()) / "invoices.txt"
        path.write_text("\n".join(self.take(count)) + "\n")
        return str(path)


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
                 card: str = "4242424242424242") -> InvoicePool:  # fmt: skip
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
        saved = await client.post(page, data={"card_number": card})
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
        for n in range(invoices)
    ]
    engine = create_engine_from_url(url)
    async with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            await connection.execute(insert(tables.invoices), rows[start : start + 5000])
    await engine.dispose()
    return InvoicePool([str(r["id"]) for r in rows], key)


class Server:
    """A process serving HTTP on a free port until stopped."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=HERE.parent,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{command} did not start")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def service(url: str, **env: str) -> Server:
    """The service on `url`; its sandbox keeps its state in memory, costing the service
    nothing a remote gateway would not (cards are saved through it by `enroll`)."""
    settings = {"DATABASE_URL": url, "SANDBOX_DATABASE_URL": "memory",
                "RECONCILE_EVERY_SECONDS": "0", **env}  # fmt: skip
    return Server([CLI, "serve", "--host", "127.0.0.1"], settings)


def ceiling() -> Server:
    command = [sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--host", "127.0.0.1",
               "--no-access-log", "--log-level", "warning"]  # fmt: skip
    return Server(command, {})


def wrk(server: Server, pool: InvoicePool, connections: int, seconds: float,
        expected_rate: float) -> dict[str, float]:  # fmt: skip
    """wrk on POST /api/v1/payments: payments per second and latency percentiles."""
    invoices = pool.file(int(expected_rate * seconds * 1.5) + connections + 100)
    env = {**os.environ, "INVOICES": invoices, "API_KEY": pool.key, "ENVIRONMENT": ENV}
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(HERE / "payments.lua"), server.url],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    os.unlink(invoices)
    os.rmdir(os.path.dirname(invoices))
    match = re.search(r"WRK_RESULT (\{.*\})", result.stdout)
    if match is None:
        raise RuntimeError(f"wrk said: {result.stdout} {result.stderr}")
    raw = json.loads(match.group(1))
    ok = raw["requests"] - raw["non_2xx"]
    return {
        "rps": ok / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"],
        "requests": raw["requests"],
    }


# The databases this run made, dropped when it ends (the growth one holds about 1 GB).
CREATED: list[str] = []


async def pg_database(name: str) -> str:
    """A fresh database."""
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    CREATED.append(name)
    return POSTGRES.rsplit("/", 1)[0] + f"/{name}"


async def drop_databases() -> None:
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


async def pg_commits(name: str) -> int:
    admin = await asyncpg.connect(POSTGRES)
    value = await admin.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name
    )
    await admin.close()
    return int(value)


async def commits_per_payment(url: str, name: str, card: str, count: int) -> float:
    """Commits in pg_stat_database per payment, the service's own background work off."""
    key = await prepare(url)
    server = service(url, NOTIFY_EVERY_SECONDS="0")
    pool = await enroll(server, key, url, count, card)
    await asyncio.sleep(11)  # the enrolment's commits reach pg_stat_database first
    before = await pg_commits(name)
    async with httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {pool.key}", "X-Environment-ID": ENV},
    ) as client:
        answered: list[int] = []
        for invoice_id in pool.take(count):
            response = await client.post("/api/v1/payments", json={
                "amount": "10.00", "currency": "usd", "destination_id": invoice_id,
                "destination_type": "INVOICE", "payment_method_type": "CARD",
                "process_payment": True, "payment_gateway": "stripe"})  # fmt: skip
            answered.append(response.status_code)
    if set(answered) != {201 if card == "4242424242424242" else 402}:
        raise RuntimeError(f"unexpected answers while counting commits: {set(answered)}")
    server.stop()  # backends flush their statistics as they exit
    await asyncio.sleep(11)  # PostgreSQL flushes a backend's statistics within 10 s
    return (await pg_commits(name) - before) / count


async def open_loop(server: Server, pool: InvoicePool, rate: float, seconds: float,
                    warm_up: float = 2.0) -> list[float]:  # fmt: skip
    """Latencies (ms) of payments sent at a steady `rate`, whatever the answers' pace.

    The first `warm_up` seconds are sent but not recorded: they open the connections the
    measured ones reuse, as a client's pool would be open in steady traffic (measured from
    a cold start, the client's p99 was 5 to 21 ms above the one the server logged).

    aiohttp, not httpx: under this load httpx's connection pool (httpcore 1.0.9) was seen to
    hold requests for seconds before giving them a connection (traced: 4.8 s on average from
    the call to the TCP connect), so the figure measured the client, not the service."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {pool.key}", "X-Environment-ID": ENV}
    connector = aiohttp.TCPConnector(limit=0)  # a connection for each payment in flight
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        base_url=server.url, headers=headers, connector=connector, timeout=timeout
    ) as session:

        async def one(invoice_id: str, recorded: bool) -> None:
            started = time.perf_counter()
            async with session.post("/api/v1/payments", json={
                "amount": "10.00", "currency": "usd", "destination_id": invoice_id,
                "destination_type": "INVOICE", "payment_method_type": "CARD",
                "process_payment": True, "payment_gateway": "stripe"}) as response:  # fmt: skip
                await response.read()
            if recorded and response.status == 201:
                latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        unrecorded = int(rate * warm_up)
        start = time.perf_counter()
        for n, invoice_id in enumerate(pool.take(int(rate * (warm_up + seconds)))):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(invoice_id, n >= unrecorded)))
        await asyncio.gather(*tasks)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def growth(name: str, sizes: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """Create and list latency with each number of payments stored, one database and server
    per size, all up at once and asked in turn, so that a machine's drift touches each alike."""
    servers: dict[int, tuple[Server, InvoicePool]] = {}
    for size in sizes:
        url = await pg_database(f"{name}_{size}")
        key = await prepare(url)
        server = service(url, NOTIFY_EVERY_SECONDS="0")
        servers[size] = server, await enroll(server, key, url, 300 + WARM_UP)
        await bulk_payments(url, size)  # for the customer just enrolled
    samples: dict[int, dict[str, list[float]]] = {
        size: {"create": [], "list": []} for size in sizes
    }
    clients = {size: httpx.AsyncClient(base_url=server.url, headers={
        "Authorization": f"Bearer {pool.key}", "X-Environment-ID": ENV})
        for size, (server, pool) in servers.items()}  # fmt: skip
    for n in range(300 + WARM_UP):
        for size, (_, pool) in servers.items():
            [invoice_id] = pool.take(1)
            started = time.perf_counter()
            await clients[size].post("/api/v1/payments", json={
                "amount": "10.00", "currency": "usd", "destination_id": invoice_id,
                "destination_type": "INVOICE", "payment_method_type": "CARD",
                "process_payment": True, "payment_gateway": "stripe"})  # fmt: skip
            created = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            await clients[size].get("/api/v1/payments", params={"limit": 20})
            if n >= WARM_UP:  # a fresh server prepares its statements first
                samples[size]["create"].append(created)
                samples[size]["list"].append((time.perf_counter() - started) * 1000)
    for size, (server, _) in servers.items():
        await clients[size].aclose()
        server.stop()
    return {size: {"create_p50_ms": statistics.median(taken["create"]),
                   "list_p50_ms": statistics.median(taken["list"])}
            for size, taken in samples.items()}  # fmt: skip


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


async def library_rate(count: int) -> float:
    """Payments per second of the in-process library alone (in memory, sandbox, one core)."""
    checkout = bootstrap()
    customer = await checkout.create_customer(ENV, {"external_id": "bench"})
    setup = await checkout.setup_card(ENV, customer.id)
    await checkout.complete_sandbox_checkout(setup.id, "4242424242424242")
    invoices = [
        await checkout.create_invoice(ENV, {"customer_id": customer.id, "currency": "usd",
                                            "amount_due": "10.00", "status": "FINALIZED"})
        for _ in range(count)
    ]  # fmt: skip
    body = {
        "amount": Decimal("10.00"), "currency": "usd", "destination_type": "INVOICE",
        "payment_method_type": "CARD", "process_payment": True, "payment_gateway": "stripe",
    }  # fmt: skip
    started = time.perf_counter()
    for invoice in invoices:
        await checkout.create_payment(ENV, {**body, "destination_id": invoice.id})
    return count / (time.perf_counter() - started)


def record(rows: list[tuple[str, str, str, str]], row: tuple[str, str, str, str]) -> None:
    """Keep a figure for the table, and show it now: the whole run takes minutes."""
    rows.append(row)
    print(f"{row[0]}: {row[1]} {row[3]}", file=sys.stderr, flush=True)


def mark(ok: bool) -> str:
    return "pass" if ok else "MISS"


async def main(seconds: float, growth_sizes: tuple[int, ...], library_count: int) -> None:
    try:
        await measure(seconds, growth_sizes, library_count)
    finally:
        await drop_databases()


async def measure(seconds: float, growth_sizes: tuple[int, ...], library_count: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    figures: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "seconds": seconds}
    rows: list[tuple[str, str, str, str]] = []
    name = "card_checkout_bench"

    # 1-2. The ceiling, then the service on SQLite and PostgreSQL, at rising concurrency.
    curves: dict[str, dict[int, dict[str, float]]] = {"ceiling": {}, "sqlite": {}, "postgresql": {}}
    bare = ceiling()
    bare_pool = InvoicePool([f"inv_{n}" for n in range(2_000_000)], "none")
    for connections in CONCURRENCY:
        curves["ceiling"][connections] = wrk(bare, bare_pool, connections, seconds, 20_000)
    bare.stop()
    sqlite_dir = tempfile.mkdtemp()
    sqlite_url = f"sqlite+aiosqlite:///{sqlite_dir}/bench.sqlite3"
    pg_url = await pg_database(name)
    for label, url in (("sqlite", sqlite_url), ("postgresql", pg_url)):
        key = await prepare(url)  # migrated before the server's background work starts
        server = service(url)
        pool = await enroll(server, key, url, 120_000)
        if label == "postgresql":
            wrk(server, pool, 16, 2, 2000)  # the first payments, not recorded
            await analyze(url)
        for connections in CONCURRENCY:
            curves[label][connections] = wrk(server, pool, connections, seconds, 2000)
        server.stop()
    shutil.rmtree(sqlite_dir)
    figures["curves"] = curves
    top = max(CONCURRENCY)
    ceiling_rps = max(c["rps"] for c in curves["ceiling"].values())
    record(rows, ("1 ceiling: bare Starlette, same JSON", f"{ceiling_rps:,.0f} req/s", "-", ""))
    for label, target in (("sqlite", None), ("postgresql", 0.30)):
        best = max(curves[label].values(), key=lambda c: c["rps"])
        ratio = best["rps"] / ceiling_rps
        record(rows, (
            f"2 POST /payments on {label}: best rate, ratio to ceiling",
            f"{best['rps']:,.0f}/s, {ratio:.2f}, p50 {best['p50_ms']:.1f} ms, "
            f"p99 {best['p99_ms']:.1f} ms",
            f">= {target:.2f}" if target else "-",
            mark(ratio >= target) if target else "",
        ))  # fmt: skip
        figures[f"payments_{label}"] = {**best, "ratio_to_ceiling": ratio}

    # 3. Commits per payment on PostgreSQL, from pg_stat_database.
    succeeded = await commits_per_payment(pg_url, name, "4242424242424242", 300)
    failed = await commits_per_payment(pg_url, name, "4000000000000002", 300)
    figures["commits_per_payment"] = {"succeeded": succeeded, "failed": failed}
    record(rows, ("3 commits per succeeded payment (PostgreSQL)", f"{succeeded:.2f}", "<= 2",
                 mark(succeeded <= 2.0)))  # fmt: skip
    record(rows, ("3 commits per failed payment (PostgreSQL)", f"{failed:.2f}", "-", ""))

    # 4. A slow gateway: 250 ms per charge, 128 clients, a small pool of 4 connections.
    slow_key = await prepare(pg_url)
    slow = service(pg_url, SANDBOX_LATENCY_MS="250", SANDBOX_LATENCY_ON="charge",
                   DATABASE_POOL_SIZE="4")  # fmt: skip
    slow_pool = await enroll(slow, slow_key, pg_url, 20_000)
    slow_result = wrk(slow, slow_pool, 128, seconds, 520)
    ideal = 128 / 0.25
    figures["slow_gateway"] = {**slow_result, "ideal_rps": ideal}
    record(rows, ("4 slow gateway (250 ms, 128 clients, pool of 4): rate / ideal 512/s",
                 f"{slow_result['rps']:,.0f}/s = {slow_result['rps'] / ideal:.2f}", ">= 0.90",
                 mark(slow_result["rps"] / ideal >= 0.90)))  # fmt: skip

    # 5. Overhead at half the maximum rate: latency minus the gateway's 250 ms.
    await asyncio.sleep(5)  # the requests wrk left queued are served before this starts
    half = slow_result["rps"] / 2
    latencies = await open_loop(slow, slow_pool, half, seconds)
    slow.stop()
    overhead = [value - 250 for value in latencies]
    p50, p99 = percentile(overhead, 50), percentile(overhead, 99)
    figures["overhead_ms"] = {"rate": half, "p50": p50, "p99": p99, "samples": len(overhead)}
    record(rows, (f"5 overhead at {half:,.0f}/s (latency - 250 ms)",
                 f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", "p99 <= 10 ms",
                 mark(p99 <= 10)))  # fmt: skip

    # 6. Growth: create and list with 1,000 then 1,000,000 payments stored.
    grown = await growth(name + "_growth", growth_sizes)
    small, large = grown[growth_sizes[0]], grown[growth_sizes[-1]]
    for what in ("create", "list"):
        ratio = large[f"{what}_p50_ms"] / small[f"{what}_p50_ms"]
        record(rows, (f"6 {what} p50, {growth_sizes[-1]:,} vs {growth_sizes[0]:,} payments",
                     f"{large[f'{what}_p50_ms']:.2f} vs {small[f'{what}_p50_ms']:.2f} ms = "
                     f"{ratio:.2f}", "<= 1.15", mark(ratio <= 1.15)))  # fmt: skip
    figures["growth"] = grown

    # 7. The library alone: the median of three runs (single runs moved by 5 % here).
    rates = [await library_rate(library_count) for _ in range(3)]
    rate = statistics.median(rates)
    figures["library_rps"] = rate
    figures["library_runs_rps"] = rates
    record(rows, ("7 in-process library (memory, sandbox, one core)", f"{rate:,.0f}/s",
                 ">= 10,000/s", mark(rate >= 10_000)))  # fmt: skip

    report(rows, figures, top)


def report(rows: list[tuple[str, str, str, str]], figures: dict[str, Any], top: int) -> None:
    width = max(len(r[0]) for r in rows)
    lines = [f"{'figure':<{width}}  {'measured':<50} {'target':<14} mark"]
    lines += [f"{a:<{width}}  {b:<50} {c:<14} {d}" for a, b, c, d in rows]
    table = "\n".join(lines)
    print(table)
    figures["table"] = table
    (RESULTS / "latest.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    chart(figures["curves"])
    print(f"\nwritten: {RESULTS / 'latest.json'}, {RESULTS / 'latest.png'}")


def chart(curves: dict[str, dict[int, dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate, latency) = plt.subplots(1, 2, figsize=(11, 4))
    for label, curve in curves.items():
        levels = sorted(curve)
        rate.plot(levels, [curve[c]["rps"] for c in levels], marker="o", label=label)
        latency.plot(levels, [curve[c]["p99_ms"] for c in levels], marker="o", label=label)
    for axis, title in ((rate, "throughput (requests/s)"), (latency, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent connections")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    rate.set_yscale("log")  # the ceiling is two orders above the service
    latency.set_yscale("log")
    figure.suptitle("POST /api/v1/payments against a bare Starlette ceiling")
    figure.tight_layout()
    figure.savefig(RESULTS / "latest.png", dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per load run")
    parser.add_argument("--growth", default="1000,1000000", help="stored payments to compare")
    parser.add_argument("--library", type=int, default=20_000, help="payments, in process")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.growth.split(","))
    # The service runs on uvloop (uvicorn's choice when installed); so does the bench's client.
    uvloop.run(main(args.seconds, sizes, args.library))
