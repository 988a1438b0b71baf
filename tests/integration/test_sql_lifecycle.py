"""The payment lifecycle state machine on SQLite and on PostgreSQL through each executor (fewer
examples than in memory)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from adapters.clock import ManualClock
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import SandboxFaults
from adapters.sql import SqlUnitOfWorkFactory, create_engine_from_url
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from tests.integration.conftest import emptied, migrated
from tests.lifecycle_machine import PaymentLifecycle

SQL_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _run_on(make_url: Callable[[], str], executor: str) -> None:
    class SqlPaymentLifecycle(PaymentLifecycle):
        def make_checkout(self, clock: ManualClock, faults: SandboxFaults) -> CardCheckout:
            url = make_url()
            self.run(self.prepare(url))
            self.engine = create_engine_from_url(url)
            units = SqlUnitOfWorkFactory(self.engine, executor=executor)
            # The sandbox's state beside ours, in the same database.
            return bootstrap(
                Settings(sandbox_database_url=url), uow=units, clock=clock,
                notifier=RecordingNotifier(), sandbox_faults=faults,
            )  # fmt: skip

        async def prepare(self, url: str) -> None:
            await (emptied(url) if url.startswith("postgresql") else migrated(url))

        def teardown(self) -> None:
            self.run(self.engine.dispose())
            super().teardown()

    run_state_machine_as_test(SqlPaymentLifecycle, settings=SQL_SETTINGS)


def test_lifecycle_on_sqlite(tmp_path: Path) -> None:
    numbers = itertools.count()
    urls = (f"sqlite+aiosqlite:///{tmp_path / f'machine-{n}.sqlite3'}" for n in numbers)
    _run_on(lambda: next(urls), "sqlalchemy")


@pytest.mark.parametrize("executor", ["asyncpg", "sqlalchemy"])
def test_lifecycle_on_postgresql(postgres_url: str, executor: str) -> None:
    _run_on(lambda: postgres_url, executor)
