"""The operator's drills at a size CI affords: several `serve` processes on one fresh
PostgreSQL database (the sandbox's state in it too), concurrent clients paying invoices with
Idempotency-Keys and retries, and meanwhile connections killed, the database refusing
connections, or an instance SIGKILLed mid-charge and restarted.

After each drill `card-checkout reconcile --older-than 0` runs, every key is asked again, and
the outcome is counted from the database and the sandbox's records: one charge per paid
invoice, no charge without a paid invoice, nothing `processing`, every key answering its
payment's real state, no 500 anywhere. The counts are printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.integration.conftest import POSTGRES_URL, migrated
from tests.integration.drill_tally import REPORTED, tallied
from tests.integration.drills import (
    Instance,
    Load,
    admin,
    fleet,
    prepared,
    reconciled,
    refuse_connections,
    terminate_connections,
)

# A drill that has not ended by then has hung: it fails instead of holding up the suite.
DRILL_SECONDS = 150

Fault = Callable[[list[Instance], Load], Awaitable[str]]


@pytest.fixture
def drill_database(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A fresh, migrated database of its own (its URL and name), dropped afterwards."""
    name = f"card_checkout_drill_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    asyncio.run(admin(POSTGRES_URL, f"CREATE DATABASE {name}"))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(migrated(url))
        yield url, name
    finally:
        asyncio.run(admin(POSTGRES_URL, f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        asyncio.run(admin(POSTGRES_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _drill(
    name: str,
    database: tuple[str, str],
    log_dir: Path,
    fault: Fault,
    *,
    instances: int,
    environment: dict[str, str],
    invoices: int,
    pace: float,
    first: dict[str, str] | None = None,
) -> None:
    url, _ = database
    setup = await prepared(url, invoices)
    async with (
        asyncio.timeout(DRILL_SECONDS),
        fleet(url, log_dir, instances, environment, first) as servers,
    ):
        load = Load(servers, setup)
        clients = asyncio.create_task(load.run(pace))
        try:
            what_happened = await fault(servers, load)
            await clients
            reconcile_output = await reconciled(url)
            await load.replay_all()
        finally:
            clients.cancel()
            await load.aclose()
    tally = await tallied(url, load.attempts, [s.log() for s in servers], reconcile_output)
    tally.counts["fault"] = what_happened
    summary = tally.summary(name)
    REPORTED.append(summary)
    assert not tally.broken, summary


async def test_connections_killed_under_load_lose_nothing(
    drill_database: tuple[str, str], tmp_path: Path
) -> None:
    _, database = drill_database

    async def kill_connections(servers: list[Instance], load: Load) -> str:
        killed = []
        for _ in range(6):
            await asyncio.sleep(0.75)
            killed.append(await terminate_connections(POSTGRES_URL, database))
        return f"connections terminated in 6 rounds, 0.75 s apart: {killed}"

    await _drill(
        "connections killed", drill_database, tmp_path, kill_connections,
        instances=3, environment={"SANDBOX_LATENCY_MS": "150"}, invoices=30, pace=0.15,
    )  # fmt: skip


async def test_a_database_refusing_connections_mid_load_loses_nothing(
    drill_database: tuple[str, str], tmp_path: Path
) -> None:
    _, database = drill_database

    async def outage(servers: list[Instance], load: Load) -> str:
        await asyncio.sleep(1.5)
        closed = await refuse_connections(POSTGRES_URL, database, seconds=3.0)
        return f"database refused connections for 3 s ({closed} connections closed)"

    await _drill(
        "database outage", drill_database, tmp_path, outage,
        instances=2, environment={"SANDBOX_LATENCY_MS": "100"}, invoices=30, pace=0.15,
    )  # fmt: skip


async def test_an_instance_killed_mid_charge_and_restarted_loses_nothing(
    drill_database: tuple[str, str], tmp_path: Path
) -> None:
    """Instance 0 SIGKILLs itself right after a charge (the sandbox's `crash_after`), while
    other charges wait in the sandbox's latency; it is started again, without the fault."""

    async def kill_one(servers: list[Instance], load: Load) -> str:
        doomed = servers[0]
        status = await doomed.exited(within=8)
        how = "SIGKILLed itself right after a charge"
        if status is None:  # no charge struck: killed from outside, mid-request
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(load.crowded[0].wait(), timeout=5)
            how = f"was SIGKILLed from outside with {load.in_flight[0]} requests in flight"
            doomed.kill()
        else:
            assert status == -signal.SIGKILL, f"instance 0 ended with {status}"
        await asyncio.sleep(1.0)
        doomed.environment.pop("SANDBOX_FAULTS")
        await doomed.start()
        return f"instance 0 {how}, restarted after 1 s"

    await _drill(
        "instance killed", drill_database, tmp_path, kill_one,
        instances=2, environment={"SANDBOX_LATENCY_MS": "300"}, invoices=24, pace=0.2,
        first={"SANDBOX_FAULTS": "charge:crash_after"},  # its first charge
    )  # fmt: skip
