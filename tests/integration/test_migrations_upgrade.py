"""Upgrading a database that holds data: secrets stored plain before sealing, endpoints with
deliveries pointing at them; a failed SQLite migration changes nothing; sealed secrets keep
the schema from going back to where they would be misread."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.secrets import SecretBox
from adapters.sql import SqlUnitOfWorkFactory
from adapters.sql.migrate import alembic_config, migrate
from adapters.sql.sealing import reseal
from tests.integration.test_sql_storage import unmigrated_engine  # noqa: F401 - a fixture

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENV = "env_old"
OLD_WEBHOOK_SECRET = "whsec_storedPlainBeforeSealing"
OLD_ENDPOINT_SECRET = "whsec_endpointStoredPlain"
BOTH = pytest.mark.parametrize("unmigrated_engine", ["sqlite", "postgresql"], indirect=True)


async def _at_0009_with_data(engine: AsyncEngine) -> None:
    """A database as the version before sealing left it: an environment with a webhook
    secret, an endpoint and a delivery to it, all secrets plain."""
    await migrate(engine, "0009")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO environments (id, tenant_id, name, created_at, webhook_secrets,"
                " version) VALUES (:id, 't', 'old', :at, :secrets, 1)"
            ),
            {"id": ENV, "at": T0, "secrets": f'["{OLD_WEBHOOK_SECRET}"]'},
        )
        await connection.execute(
            text(
                "INSERT INTO webhook_endpoints (environment_id, id, url, events, secret,"
                " created_at, version) VALUES (:env, 'we_1', 'https://hooks.example/in', '[]',"
                " :secret, :at, 1)"
            ),
            {"env": ENV, "secret": OLD_ENDPOINT_SECRET, "at": T0},
        )
        await connection.execute(
            text(
                "INSERT INTO webhook_deliveries (environment_id, id, endpoint_id,"
                " notification_id, notification_type, occurred_at, data, attempts,"
                " next_attempt_at, created_at, version) VALUES (:env, 'wd_1', 'we_1', 'evt_1',"
                " 'payment.succeeded', :at, '{}', 0, :at, :at, 1)"
            ),
            {"env": ENV, "at": T0},
        )


async def _version(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        return str(await connection.scalar(text("SELECT version_num FROM alembic_version")))


@BOTH
async def test_a_database_with_deliveries_and_plain_secrets_upgrades_and_is_sealed(
    unmigrated_engine: AsyncEngine,  # noqa: F811 - the fixture imported above
) -> None:
    await _at_0009_with_data(unmigrated_engine)
    await migrate(unmigrated_engine)
    box = SecretBox([SecretBox.new_key()])

    report = await reseal(unmigrated_engine, box, only_plain=True)

    assert (report.secrets, report.changed) == (2, 2)
    async with unmigrated_engine.connect() as connection:
        stored = (await connection.execute(text("SELECT secret FROM webhook_endpoints"))).scalar()
        kept = (await connection.execute(text("SELECT count(*) FROM webhook_deliveries"))).scalar()
    assert stored is not None
    assert stored.startswith("gA")
    assert kept == 1
    units = SqlUnitOfWorkFactory(unmigrated_engine, secrets=box)
    async with units(read_only=True) as uow:
        environment = await uow.environments.get(ENV)
        endpoint = await uow.webhook_endpoints.get(ENV, "we_1")
    assert environment is not None
    assert environment.webhook_secrets == (OLD_WEBHOOK_SECRET,)
    assert endpoint is not None
    assert endpoint.secret == OLD_ENDPOINT_SECRET
    again = await reseal(unmigrated_engine, box, only_plain=True)
    assert (again.secrets, again.changed) == (2, 0)


@BOTH
async def test_an_update_that_leaves_a_secret_as_it_was_needs_no_key(
    unmigrated_engine: AsyncEngine,  # noqa: F811 - the fixture imported above
) -> None:
    """A delivery's failure updates its endpoint; its sealed secret is written back as read,
    so a process without the first key (or none) still records it."""
    await _at_0009_with_data(unmigrated_engine)
    await migrate(unmigrated_engine)
    await reseal(unmigrated_engine, SecretBox([key := SecretBox.new_key()]), only_plain=True)
    async with unmigrated_engine.connect() as connection:
        before = (await connection.execute(text("SELECT secret FROM webhook_endpoints"))).scalar()
    opens_only = SqlUnitOfWorkFactory(unmigrated_engine, secrets=SecretBox([key]))
    async with opens_only() as uow:
        endpoint = await uow.webhook_endpoints.get(ENV, "we_1")
        assert endpoint is not None
        await uow.webhook_endpoints.update(endpoint.failed(T0, disable=False))
        await uow.commit()
    async with unmigrated_engine.connect() as connection:
        after = (await connection.execute(text("SELECT secret FROM webhook_endpoints"))).scalar()
    assert after == before


@BOTH
async def test_the_schema_does_not_go_back_below_sealing_while_sealed_secrets_are_stored(
    unmigrated_engine: AsyncEngine,  # noqa: F811 - the fixture imported above
) -> None:
    await _at_0009_with_data(unmigrated_engine)
    await migrate(unmigrated_engine)
    await reseal(unmigrated_engine, SecretBox([SecretBox.new_key()]), only_plain=True)

    def downgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0010")

    with pytest.raises(RuntimeError, match="sealed secrets"):
        async with unmigrated_engine.begin() as connection:
            await connection.run_sync(downgrade)
    assert await _version(unmigrated_engine) != "0010"


@pytest.mark.parametrize("unmigrated_engine", ["sqlite"], indirect=True)
async def test_a_failed_sqlite_migration_changes_nothing_and_can_be_run_again(
    unmigrated_engine: AsyncEngine,  # noqa: F811 - the fixture imported above
) -> None:
    """SQLite's driver commits DDL as it goes unless told otherwise: a migration failing
    after another one rebuilt a table must still leave the database as it was."""
    await _at_0009_with_data(unmigrated_engine)
    async with unmigrated_engine.begin() as connection:  # in the way of 0011's new column
        await connection.execute(text("ALTER TABLE environments ADD COLUMN mode TEXT"))

    with pytest.raises(Exception, match="mode"):
        await migrate(unmigrated_engine)

    async with unmigrated_engine.connect() as connection:
        left_over = await connection.execute(
            text("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'")
        )
        assert left_over.scalars().all() == []
        keyed_by = await connection.execute(text("PRAGMA table_info(gateway_events)"))
        assert "environment_id" not in {row[1] for row in keyed_by}  # 0010 undone too
    assert await _version(unmigrated_engine) == "0009"
    async with unmigrated_engine.begin() as connection:
        await connection.execute(text("ALTER TABLE environments DROP COLUMN mode"))
    await migrate(unmigrated_engine)
    async with unmigrated_engine.connect() as connection:
        kept = await connection.scalar(text("SELECT count(*) FROM webhook_deliveries"))
    assert kept == 1
    assert await _version(unmigrated_engine) != "0009"
