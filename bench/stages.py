"""The bench's stages, in the order a full run takes them; each adds its rows and figures.

Only four figures are held to a target (see bench/README.md): commits per payment, growth,
the overhead at a fixed 50 payments a second, and the library's rate against the ceiling.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from bench.data import (
    InvoicePool,
    analyze,
    bulk_payments,
    enroll,
    pg_commits,
    pg_database,
    prepare,
)
from bench.load import (
    DECLINED_CARD,
    ENV,
    GOOD_CARD,
    Server,
    bare_server,
    fixed_rate,
    payment_body,
    percentile,
    service,
    wrk,
)
from bench.report import (
    MAX_COMMITS_PER_PAYMENT,
    MAX_GROWTH,
    MAX_OVERHEAD_P99_MS,
    MIN_LIBRARY_TO_CEILING,
    Results,
)
from entrypoints.bootstrap import bootstrap

CONCURRENCY = (1, 4, 16, 64)
WARM_UP = 30  # requests sent to a fresh server before its latency is recorded
GATEWAY_MS = 250  # the sandbox's latency on each charge in stages 4 and 5
OVERHEAD_RATE = 50.0  # payments a second in stage 5
OVERHEAD_WARM_UP = 3.0  # seconds sent at that rate, not recorded, before the recorded ones


@dataclass
class Run:
    results: Results
    seconds: float = 8.0  # each wrk run
    growth_sizes: tuple[int, ...] = (1000, 1_000_000)
    library_count: int = 20_000
    overhead_seconds: float = 15.0
    name: str = "card_checkout_bench"
    ceiling_rps: float | None = None
    _pg_url: str | None = None

    async def pg_url(self) -> str:
        """The PostgreSQL database stages 2 to 4 share, made on first use."""
        if self._pg_url is None:
            self._pg_url = await pg_database(self.name)
        return self._pg_url

    @property
    def figures(self) -> dict[str, Any]:
        return self.results.figures


def run_wrk(server: Server, pool: InvoicePool, connections: int, seconds: float,
            expected_rate: float) -> dict[str, float]:  # fmt: skip
    needed = int(expected_rate * seconds * 1.5) + connections + 100
    return wrk(server, pool.take(needed), pool.key, connections, seconds)


async def ceiling(run: Run) -> None:
    """1. A bare Starlette endpoint parsing the same body: the most this machine's Python,
    uvicorn and wrk answer a second, the yardstick of stages 2 and 7."""
    bare = bare_server()
    fake = InvoicePool([f"inv_{n}" for n in range(2_000_000)], "none")
    curve = {c: run_wrk(bare, fake, c, run.seconds, 20_000) for c in CONCURRENCY}
    bare.stop()
    run.figures.setdefault("curves", {})["ceiling"] = curve
    run.ceiling_rps = max(c["rps"] for c in curve.values())
    run.figures["ceiling_rps"] = run.ceiling_rps
    run.results.show("1 ceiling: bare Starlette, same JSON", f"{run.ceiling_rps:,.0f} req/s")


async def payments(run: Run) -> None:
    """2. POST /api/v1/payments under wrk at rising concurrency, on SQLite and PostgreSQL."""
    sqlite_dir = tempfile.mkdtemp()
    try:
        urls = (("sqlite", f"sqlite+aiosqlite:///{sqlite_dir}/bench.sqlite3"),
                ("postgresql", await run.pg_url()))  # fmt: skip
        for label, url in urls:
            key = await prepare(url)  # migrated before the server's background work starts
            server = service(url)
            pool = await enroll(server, key, url, 120_000)
            if label == "postgresql":
                run_wrk(server, pool, 16, 2, 2000)  # the first payments, not recorded
                await analyze(url)
            curve = {c: run_wrk(server, pool, c, run.seconds, 2000) for c in CONCURRENCY}
            server.stop()
            run.figures.setdefault("curves", {})[label] = curve
            best = max(curve.values(), key=lambda c: c["rps"])
            figure: dict[str, Any] = dict(best)
            measured = f"{best['rps']:,.0f}/s"
            if run.ceiling_rps:
                figure["ratio_to_ceiling"] = best["rps"] / run.ceiling_rps
                measured += f" = {figure['ratio_to_ceiling']:.2f} of ceiling"
            run.figures[f"payments_{label}"] = figure
            run.results.show(f"2 POST /payments on {label}: best rate, p50, p99",
                             f"{measured}, p50 {best['p50_ms']:.1f} ms, "
                             f"p99 {best['p99_ms']:.1f} ms")  # fmt: skip
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)


async def commits(run: Run) -> None:
    """3. Commits (transactions that wrote) per payment, succeeded and declined."""
    url = await run.pg_url()
    counted = {"succeeded": await commits_per_payment(url, GOOD_CARD, 300),
               "failed": await commits_per_payment(url, DECLINED_CARD, 300)}  # fmt: skip
    run.figures["commits_per_payment"] = counted
    for outcome, value in counted.items():
        run.results.check(f"commits_per_{outcome}_payment",
                          f"3 commits per {outcome} payment (PostgreSQL)", f"{value:.2f}",
                          value, "<=", MAX_COMMITS_PER_PAYMENT)  # fmt: skip


async def commits_per_payment(url: str, card: str, count: int) -> float:
    """Writing transactions per payment, the service's own background work off."""
    key = await prepare(url)
    server = service(url, NOTIFY_EVERY_SECONDS="0")
    pool = await enroll(server, key, url, count, card)
    before = await pg_commits()
    headers = {"Authorization": f"Bearer {pool.key}", "X-Environment-ID": ENV}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
        answered = {
            (await client.post("/api/v1/payments", json=payment_body(i))).status_code
            for i in pool.take(count)
        }
    if answered != {201 if card == GOOD_CARD else 402}:
        raise RuntimeError(f"unexpected answers while counting commits: {answered}")
    server.stop()  # backends flush their statistics as they exit
    await asyncio.sleep(11)  # PostgreSQL flushes a backend's statistics within 10 s
    return (await pg_commits() - before) / count


async def slow_gateway(run: Run) -> None:
    """4. A 250 ms gateway, 128 clients, a pool of 4 connections: the rate against the ideal
    of 128 / 0.25 s, then the overhead (latency - 250 ms) at half the rate reached."""
    url = await run.pg_url()
    key = await prepare(url)
    server = service(url, SANDBOX_LATENCY_MS=str(GATEWAY_MS), SANDBOX_LATENCY_ON="charge",
                     DATABASE_POOL_SIZE="4")  # fmt: skip
    pool = await enroll(server, key, url, 20_000)
    result = run_wrk(server, pool, 128, run.seconds, 520)
    ideal = 128 / (GATEWAY_MS / 1000)
    run.figures["slow_gateway"] = {**result, "ideal_rps": ideal}
    run.results.show(f"4 slow gateway ({GATEWAY_MS} ms, 128 clients, pool of 4) / ideal 512/s",
                     f"{result['rps']:,.0f}/s = {result['rps'] / ideal:.2f}")  # fmt: skip
    await asyncio.sleep(5)  # the requests wrk left queued are served before this starts
    half = result["rps"] / 2
    sent = await fixed_rate(server, key, pool.take(int(half * (run.seconds + 2)) + 1), half,
                            run.seconds, warm_up=2)  # fmt: skip
    server.stop()
    summary = overhead_summary(sent)
    run.figures["slow_gateway_half_rate_overhead_ms"] = summary
    run.results.show(f"4 overhead at half that rate, {half:,.0f}/s, pool of 4",
                     f"p50 {summary['p50']:.1f} ms, p99 {summary['p99']:.1f} ms")  # fmt: skip


def overhead_summary(sent: dict[str, Any]) -> dict[str, Any]:
    """Latency minus the gateway's wait, from each payment's due time; answers not 201 counted
    apart (their latency is kept: a quick refusal must not look like a fast payment)."""
    overhead = [value - GATEWAY_MS for value in sent.pop("latencies_ms")]
    not_201 = sum(n for status, n in sent["statuses"].items() if status != "201")
    return {
        **sent,
        "p50": percentile(overhead, 50),
        "p90": percentile(overhead, 90),
        "p99": percentile(overhead, 99),
        "max": max(overhead),
        "samples": len(overhead),
        "not_201": not_201,
    }


async def overhead(run: Run) -> None:
    """5. The overhead a payment adds to a 250 ms gateway at a realistic, fixed 50 a second:
    open loop, each payment sent at its due time and measured from it; the service's default
    pool, a fresh database analyzed after a warm-up."""
    url = await pg_database(run.name + "_overhead")
    key = await prepare(url)
    server = service(url, SANDBOX_LATENCY_MS=str(GATEWAY_MS), SANDBOX_LATENCY_ON="charge")
    rate = OVERHEAD_RATE
    pool = await enroll(
        server, key, url, int(rate * (4 + OVERHEAD_WARM_UP + run.overhead_seconds)) + 100
    )
    await fixed_rate(server, key, pool.take(int(rate * 4)), rate, 4, warm_up=0)  # first payments
    await analyze(url)
    await asyncio.sleep(1)
    count = int(rate * (OVERHEAD_WARM_UP + run.overhead_seconds))
    sent = await fixed_rate(server, key, pool.take(count), rate, run.overhead_seconds,
                            warm_up=OVERHEAD_WARM_UP)  # fmt: skip
    server.stop()
    summary = overhead_summary(sent)
    run.figures["overhead_ms"] = summary
    measured = (f"p50 {summary['p50']:.1f} ms, p99 {summary['p99']:.1f} ms, "
                f"{summary['samples']} sent at {summary['sent_rate']:.1f}/s")  # fmt: skip
    if summary["not_201"]:
        measured += f", {summary['not_201']} not 201"
    run.results.check("overhead_p99_ms", f"5 overhead p99 at a fixed {rate:g}/s "
                      f"(latency - {GATEWAY_MS} ms)", measured,
                      summary["p99"], "<=", MAX_OVERHEAD_P99_MS,
                      valid=not summary["not_201"])  # fmt: skip


async def growth(run: Run) -> None:
    """6. Create and list p50 with the most payments stored against the fewest."""
    sizes = run.growth_sizes
    grown = await growth_latencies(run.name + "_growth", sizes)
    run.figures["growth"] = grown
    small, large = grown[sizes[0]], grown[sizes[-1]]
    for what in ("create", "list"):
        ratio = large[f"{what}_p50_ms"] / small[f"{what}_p50_ms"]
        run.figures.setdefault("growth_ratio", {})[what] = ratio
        run.results.check(f"growth_{what}",
                          f"6 {what} p50, {sizes[-1]:,} vs {sizes[0]:,} payments",
                          f"{large[f'{what}_p50_ms']:.2f} vs {small[f'{what}_p50_ms']:.2f} ms = "
                          f"{ratio:.2f}", ratio, "<=", MAX_GROWTH)  # fmt: skip


async def growth_latencies(name: str, sizes: tuple[int, ...]) -> dict[Any, Any]:
    """Create and list latency with each number of payments stored, one database and server
    per size, all up at once and asked in turn, so that a machine's drift touches each alike."""
    servers: dict[int, tuple[Server, InvoicePool]] = {}
    for size in sizes:
        url = await pg_database(f"{name}_{size}")
        key = await prepare(url)
        server = service(url, NOTIFY_EVERY_SECONDS="0")
        servers[size] = server, await enroll(server, key, url, 300 + WARM_UP)
        await bulk_payments(url, size)  # for the customer just enrolled
    samples: dict[int, dict[str, list[float]]] = {s: {"create": [], "list": []} for s in sizes}
    clients = {size: httpx.AsyncClient(base_url=server.url, headers={
        "Authorization": f"Bearer {pool.key}", "X-Environment-ID": ENV})
        for size, (server, pool) in servers.items()}  # fmt: skip
    try:
        for n in range(300 + WARM_UP):
            for size, (_, pool) in servers.items():
                [invoice_id] = pool.take(1)
                started = time.perf_counter()
                await clients[size].post("/api/v1/payments", json=payment_body(invoice_id))
                created = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                await clients[size].get("/api/v1/payments", params={"limit": 20})
                if n >= WARM_UP:  # a fresh server prepares its statements first
                    samples[size]["create"].append(created)
                    samples[size]["list"].append((time.perf_counter() - started) * 1000)
    finally:
        for size, (server, _) in servers.items():
            await clients[size].aclose()
            server.stop()
    return {size: {"create_p50_ms": statistics.median(taken["create"]),
                   "list_p50_ms": statistics.median(taken["list"])}
            for size, taken in samples.items()}  # fmt: skip


async def library(run: Run) -> None:
    """7. The in-process library alone (memory, sandbox, one core): the median of three runs
    (single runs moved by 5 %), against the same run's ceiling."""
    rates = [await library_rate(run.library_count) for _ in range(3)]
    rate = statistics.median(rates)
    run.figures["library_rps"] = rate
    run.figures["library_runs_rps"] = rates
    figure = "7 in-process library (memory, sandbox, one core) / ceiling"
    if run.ceiling_rps is None:
        run.results.show(figure, f"{rate:,.0f}/s (no ceiling measured in this run)")
        return
    ratio = rate / run.ceiling_rps
    run.figures["library_to_ceiling"] = ratio
    run.results.check("library_to_ceiling", figure,
                      f"{rate:,.0f}/s / {run.ceiling_rps:,.0f} = {ratio:.2f}",
                      ratio, ">=", MIN_LIBRARY_TO_CEILING)  # fmt: skip


async def library_rate(count: int) -> float:
    """Payments per second of the in-process library alone (in memory, sandbox, one core)."""
    checkout = bootstrap()
    customer = await checkout.create_customer(ENV, {"external_id": "bench"})
    setup = await checkout.setup_card(ENV, customer.id)
    await checkout.complete_sandbox_checkout(setup.id, GOOD_CARD)
    invoices = [
        await checkout.create_invoice(ENV, {"customer_id": customer.id, "currency": "usd",
                                            "amount_due": "10.00", "status": "FINALIZED"})
        for _ in range(count)
    ]  # fmt: skip
    body = {**payment_body(""), "amount": Decimal("10.00")}
    started = time.perf_counter()
    for invoice in invoices:
        await checkout.create_payment(ENV, {**body, "destination_id": invoice.id})
    return count / (time.perf_counter() - started)


# Name -> stage, in the order a full run takes them (also accepted: their numbers, 1 to 7).
STAGES = {
    "ceiling": ceiling,
    "payments": payments,
    "commits": commits,
    "slow": slow_gateway,
    "overhead": overhead,
    "growth": growth,
    "library": library,
}
