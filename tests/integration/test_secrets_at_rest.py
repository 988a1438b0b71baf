"""Secrets at rest: sealed in the database, opened only with the configured keys, resealed
when a key rotates; the embedded database and its key file are readable by their owner only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.addresses import StaticAddressResolver
from adapters.secrets import SecretBox, SecretsUnreadable
from adapters.sql.engine import sqlite_file
from core.errors import ServiceUnavailable
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from tests.helpers import ENV, PUBLIC_ADDRESS, error_of

STRIPE_KEY = "sk_test_PLAINKEYsixteen0123456789"
WEBHOOK_SECRET = "whsec_PLAINWEBHOOKsecret0123456789"
KEY_1, KEY_2 = SecretBox.new_key(), SecretBox.new_key()


def _checkout(url: str, *keys: str) -> CardCheckout:
    return bootstrap(
        Settings(database_url=url, encryption_keys=keys),
        address_resolver=StaticAddressResolver(default=[PUBLIC_ADDRESS]),
    )


async def _store_secrets(url: str) -> list[str]:
    """Store a Stripe key, a webhook secret and an endpoint's secret, sealed with KEY_1;
    return them."""
    checkout = _checkout(url, KEY_1)
    try:
        await checkout.create_environment("t", "secrets", environment_id=ENV)
        await checkout.connect_gateway(
            ENV,
            {"provider": "stripe", "secret_key": STRIPE_KEY, "webhook_secrets": [WEBHOOK_SECRET]},
        )
        endpoint = await checkout.create_webhook_endpoint(ENV, {"url": "https://hooks.example/in"})
    finally:
        await checkout.aclose()
    return [STRIPE_KEY, WEBHOOK_SECRET, endpoint.secret]


@pytest.fixture
async def stored(database_url: str) -> tuple[str, list[str]]:
    return database_url, await _store_secrets(database_url)


async def _stored_bytes(url: str) -> bytes:
    """What the database holds: the SQLite file and its WAL as they are on disk, or every
    row of PostgreSQL's tables as text."""
    path = sqlite_file(url)
    if path is not None:
        return b"".join(
            p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()
        )  # fmt: skip
    checkout = _checkout(url)
    assert checkout.engine is not None
    try:
        async with checkout.engine.connect() as connection:
            tables = (
                await connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalars()
            dumped = [
                row[0]
                for table in list(tables)
                for row in await connection.execute(text(f'SELECT t::text FROM "{table}" t'))
            ]
    finally:
        await checkout.aclose()
    return "\n".join(dumped).encode()


async def test_no_secret_is_stored_in_plain_text(stored: tuple[str, list[str]]) -> None:
    url, secrets = stored
    held = await _stored_bytes(url)
    assert b"sk_test_PLAIN" not in held
    for secret in secrets:
        assert secret.encode() not in held
        assert secret[6:].encode() not in held  # not even without its prefix
    checkout = _checkout(url, KEY_1)
    try:
        view = await checkout.get_connection(ENV)
        environment = await checkout.get_environment(ENV)
        [endpoint] = await checkout.list_webhook_endpoints(ENV)
    finally:
        await checkout.aclose()
    assert view.secret_key_last4 == STRIPE_KEY[-4:]
    assert environment.connection is not None
    assert environment.connection.secret_key == STRIPE_KEY
    assert environment.webhook_secrets == (WEBHOOK_SECRET,)
    assert endpoint.secret == secrets[2]


async def test_a_key_rotates_and_the_old_one_can_then_be_dropped(
    stored: tuple[str, list[str]],
) -> None:
    url, secrets = stored
    rotating = _checkout(url, KEY_2, KEY_1)
    try:
        report = await rotating.open_secrets(reseal_all=True)
    finally:
        await rotating.aclose()
    assert report is not None
    assert (report.secrets, report.changed) == (3, 3)

    newest_only = _checkout(url, KEY_2)
    try:
        assert await newest_only.open_secrets() is not None
        environment = await newest_only.get_environment(ENV)
        [endpoint] = await newest_only.list_webhook_endpoints(ENV)
    finally:
        await newest_only.aclose()
    assert environment.connection is not None
    assert environment.connection.secret_key == STRIPE_KEY
    assert endpoint.secret == secrets[2]

    old_only = _checkout(url, KEY_1)
    try:
        with pytest.raises(SecretsUnreadable):
            await old_only.open_secrets()
        # At run time a key that opens nothing is our failure (503), never a 500.
        refused = await error_of(old_only.get_environment(ENV))
    finally:
        await old_only.aclose()
    assert isinstance(refused, ServiceUnavailable)


async def test_secrets_stored_before_sealing_are_sealed_when_the_service_starts(
    stored: tuple[str, list[str]],
) -> None:
    url, _ = stored
    checkout = _checkout(url, KEY_1)
    assert checkout.engine is not None
    try:
        async with checkout.engine.begin() as connection:
            await connection.execute(
                text("UPDATE environments SET webhook_secrets = :plain WHERE id = :id"),
                {"plain": f'["{WEBHOOK_SECRET}"]', "id": ENV},
            )
        assert WEBHOOK_SECRET.encode() in await _stored_bytes(url)
        report = await checkout.open_secrets()
        assert report is not None
        assert (report.secrets, report.changed) == (3, 1)
        assert (await checkout.get_environment(ENV)).webhook_secrets == (WEBHOOK_SECRET,)
    finally:
        await checkout.aclose()
    if sqlite_file(url) is None:  # the SQLite file keeps freed pages until vacuumed
        assert WEBHOOK_SECRET.encode() not in await _stored_bytes(url)


async def test_postgresql_without_a_key_stores_no_secret(clean_postgres_url: str) -> None:
    checkout = _checkout(clean_postgres_url)
    try:
        await checkout.create_environment("t", "no key", environment_id=ENV)
        refused = await error_of(
            checkout.connect_gateway(ENV, {"provider": "stripe", "secret_key": STRIPE_KEY})
        )
        assert isinstance(refused, ServiceUnavailable)
        assert "CARD_CHECKOUT_ENCRYPTION_KEYS" in refused.message
        assert (await checkout.get_environment(ENV)).connection is None
    finally:
        await checkout.aclose()


def _card_checkout(*args: str, cwd: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "import sys; from entrypoints.cli import main; "
               "sys.exit(main(sys.argv[1:]))", *args]  # fmt: skip
    unset = ("DATABASE_URL", "CARD_CHECKOUT_ENCRYPTION_KEYS")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    return subprocess.run(
        command, cwd=cwd, env={**env, **environ}, capture_output=True, text=True, timeout=30,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_embedded_database_and_its_key_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    connected = _card_checkout(
        "environments", "connect", "--environment", ENV, "--provider", "sandbox",
        "--webhook-secret", WEBHOOK_SECRET, cwd=tmp_path,
    )  # fmt: skip
    assert connected.returncode == 1  # no such environment yet
    created = _card_checkout("environments", "create", "--environment", ENV, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    connected = _card_checkout(
        "environments", "connect", "--environment", ENV, "--provider", "sandbox",
        "--webhook-secret", WEBHOOK_SECRET, cwd=tmp_path,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    database = tmp_path / "card-checkout.sqlite3"
    files = [database, tmp_path / "card-checkout.sqlite3.key"]
    files += [p for p in (Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists()]
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: "0o600" for p in files}
    assert WEBHOOK_SECRET.encode() not in b"".join(p.read_bytes() for p in files)


async def test_the_service_refuses_to_start_when_no_key_opens_its_secrets(
    sqlite_url: str, tmp_path: Path
) -> None:
    await _store_secrets(sqlite_url)
    refused = _card_checkout(
        "serve", "--port", "0", cwd=tmp_path, DATABASE_URL=sqlite_url,
        CARD_CHECKOUT_ENCRYPTION_KEYS=KEY_2,
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: ")
    assert "CARD_CHECKOUT_ENCRYPTION_KEYS" in line


async def test_a_database_copied_without_its_key_file_is_refused_saying_so(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'card-checkout.sqlite3'}"
    made = _card_checkout("environments", "create", "--environment", ENV, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    connected = _card_checkout(
        "environments", "connect", "--environment", ENV, "--provider", "sandbox",
        "--webhook-secret", WEBHOOK_SECRET, cwd=tmp_path,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    (tmp_path / "card-checkout.sqlite3.key").unlink()

    refused = _card_checkout("migrate", cwd=tmp_path, DATABASE_URL=url)

    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert "card-checkout.sqlite3.key" in line
    assert "copied without its key file" in line
    assert "environments env_test" in line  # where the first unreadable secret is
