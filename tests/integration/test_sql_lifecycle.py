"""The payment lifecycle state machine on SQLite and PostgreSQL (fewer examples than in memory)."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from adapters.clock import ManualClock
from adapters.notifiers import RecordingNotifier
from adapters.sandbox import SandboxFaults
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from tests.integration.conftest import emptied, migrated
from tests.lifecycle_machine import PaymentLifecycle

SQL_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _run_on(make_url: object) -> None:
    class SqlPaymentLifecycle(PaymentLifecycle):
        def make_checkout(self, clock: ManualClock, faults: SandboxFaults) -> CardCheckout:
            url = make_url()  # type: ignore[operator]
            self.run(self.prepare(url))
            return bootstrap(
                Settings(database_url=url), clock=clock, notifier=RecordingNotifier(),
                sandbox_faults=faults,
            )  # fmt: skip

        async def prepare(self, url: str) -> None:
            await (emptied(url) if url.startswith("postgresql") else migrated(url))

    run_state_machine_as_test(SqlPaymentLifecycle, settings=SQL_SETTINGS)


def test_lifecycle_on_sqlite(tmp_path: Path) -> None:
    numbers = itertools.count()
    _run_on(lambda: f"sqlite+aiosqlite:///{tmp_path / f'machine-{next(numbers)}.sqlite3'}")


def test_lifecycle_on_postgresql(postgres_url: str) -> None:
    _run_on(lambda: postgres_url)
