"""`card-checkout` as an operator runs it: quick help, keys listed and revoked, the key alone
on stdout, settings and database errors in one line, a public URL from its own port."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from adapters.notifiers import RecordingNotifier
from adapters.sql.migrate import head_revision
from core.errors import Unauthorized
from core.model import ApiKey, Role
from entrypoints.bootstrap import Settings, bootstrap
from tests.helpers import error_of
from tests.integration.conftest import POSTGRES_URL
from tests.integration.http_server import CLI, cli_environ, free_port, wait_until_answers

# What only a command that touches storage, a gateway or the server needs.
HEAVY = ("stripe", "sqlalchemy", "alembic", "asyncpg", "uvicorn", "starlette", "httpx")


def _run(*args: str, env: dict[str, str], cwd: Path | None = None,
         shell: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    command = ["bash", "-c", shell] if shell else [str(CLI), *args]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _imported(*args: str) -> set[str]:
    """The top-level modules `card-checkout ARGS` imports (python -X importtime lists them)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(CLI), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split("|")[-1] for line in result.stderr.splitlines() if "|" in line]
    return {line.strip().split(".")[0] for line in lines}


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["api-keys", "--help"]])
def test_help_and_version_import_no_storage_gateway_or_server(args: list[str]) -> None:
    imported = _imported(*args)
    assert "entrypoints" in imported  # the measure sees our own modules
    assert sorted(imported & set(HEAVY)) == []


def test_version_is_printed() -> None:
    result = _run("--version", env=cli_environ("sqlite://"))
    assert result.stdout == f"card-checkout {version('card-checkout')}\n"


async def test_a_key_is_created_alone_on_stdout_listed_without_secrets_and_revoked(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.sqlite3'}"
    env = cli_environ(url)
    # As the README shows it: the key captured whole, nothing else.
    created = _run(env=env, shell=f"KEY=$({CLI} api-keys create --environment env_keys "
                   '--role admin) && printf "%s" "$KEY"')  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout
    assert key.startswith("ck_")
    assert "\n" not in key
    assert created.stderr.startswith("API key key_")
    read = _run("api-keys", "create", "--environment", "env_keys", "--role", "read", env=env)
    assert read.stdout.count("\n") == 1
    _run("api-keys", "create", "--environment", "env_elsewhere", "--role", "read", env=env)

    listed = _run("api-keys", "list", "--environment", "env_keys", "--json", env=env)

    assert listed.returncode == 0, listed.stderr
    keys = json.loads(listed.stdout)
    assert [(k["role"], k["environments"], k["revoked_at"]) for k in keys] == [
        ("read", ["env_keys"], None),
        ("admin", ["env_keys"], None),
    ]
    assert set(keys[0]) == {"id", "role", "environments", "created_at", "revoked_at"}
    table = _run("api-keys", "list", "--environment", "env_keys", env=env).stdout
    assert table.splitlines()[0].split() == [
        "id", "role", "environments", "created_at", "revoked_at"
    ]  # fmt: skip
    for shown in (listed.stdout, table):
        assert key not in shown
        assert ApiKey.hash(key) not in shown
    admin_id = keys[1]["id"]

    revoked = _run("api-keys", "revoke", admin_id, env=env)

    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"{admin_id} revoked at ")
    after = json.loads(_run("api-keys", "list", "--environment", "env_keys", "--json",
                            env=env).stdout)  # fmt: skip
    assert after[1]["id"] == admin_id
    assert after[1]["revoked_at"] is not None
    checkout = bootstrap(Settings(database_url=url), notifier=RecordingNotifier())
    try:
        refused = await error_of(checkout.authorize(key, "env_keys", Role.READ))
        assert isinstance(refused, Unauthorized)
    finally:
        await checkout.aclose()
    unknown = _run("api-keys", "revoke", "key_nothing", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr == "error: not_found: No API key key_nothing.\n"


def _one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()  # not a traceback
    assert line.startswith("error: ")
    return line


def test_a_wrong_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    env = cli_environ(f"sqlite:///{tmp_path / 'x.sqlite3'}", DATABASE_POOL_SIZE="abc")
    line = _one_line_error(_run("migrate", env=env), 2)
    assert line == "error: DATABASE_POOL_SIZE must be a whole number, not 'abc'"


def test_negative_reconcile_arguments_are_refused_without_a_traceback(tmp_path: Path) -> None:
    env = cli_environ(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    for args in (["--older-than", "-5"], ["--limit", "-1"]):
        refused = _run("reconcile", *args, env=env)
        assert refused.returncode == 2
        assert f"argument {args[0]}:" in refused.stderr.splitlines()[-1]
        assert "Traceback" not in refused.stderr
    assert not (tmp_path / "x.sqlite3").exists()  # refused before anything was opened


def test_an_unreachable_database_is_one_line_without_its_password() -> None:
    env = cli_environ("postgresql://card:s3cret@127.0.0.1:1/checkout")
    line = _one_line_error(_run("migrate", env=env), 1)
    assert line.startswith("error: the database postgresql://card:***@127.0.0.1:1/checkout ")
    assert "s3cret" not in line


def test_a_missing_database_is_one_line(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    missing = make_url(POSTGRES_URL).set(database="card_checkout_nowhere")
    env = cli_environ(missing.render_as_string(hide_password=False))
    line = _one_line_error(_run("api-keys", "list", "--environment", "env_a", env=env), 1)
    assert line.endswith('cannot be used: database "card_checkout_nowhere" does not exist')


def test_a_database_migrated_by_a_newer_version_is_one_line_saying_so(tmp_path: Path) -> None:
    database = tmp_path / "newer.sqlite3"
    env = cli_environ(f"sqlite:///{database}")
    assert _run("migrate", env=env).returncode == 0
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    line = _one_line_error(_run("migrate", env=env), 1)
    assert line.endswith(
        "cannot be used: it was migrated by a newer version of Card Checkout (revision 9999; "
        f"this version's newest is {head_revision()}): run that version or a newer one"
    )


def test_serve_and_demo_take_their_url_from_the_port(tmp_path: Path) -> None:
    """`make run PORT=P`'s path without PUBLIC_BASE_URL: the demo's curl commands and the
    hosted pages are on P, also when serving on every address."""
    port = free_port()
    env = cli_environ(f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    base = f"http://127.0.0.1:{port}"
    demo = _run("demo", "--port", str(port), env=env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    commands = [line for line in demo.stdout.splitlines() if line.startswith("curl ")]
    assert len(commands) == 3
    assert all(f" {base}/api/v1/" in c or f"'{base}/api/v1/" in c for c in commands)
    # "environment env_...", "api key     ck_...", "customer    cus_... with a saved visa"
    first = [line.split() for line in demo.stdout.splitlines()[:3]]
    environment, key, customer = first[0][1], first[1][2], first[2][1]
    server = subprocess.Popen(
        [str(CLI), "serve", "--host", "0.0.0.0", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_answers(f"{base}/healthz")
        paid = _run(env=env, shell=commands[0])
        assert json.loads(paid.stdout)["payment_status"] == "succeeded", paid.stdout
        headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": environment}
        setup = httpx.post(f"{base}/api/v1/customers/{customer}/payment_methods/setup",
                           headers=headers, json={}, timeout=10)  # fmt: skip
        assert setup.status_code == 201, setup.text
        assert setup.json()["url"].startswith(f"{base}/")
    finally:
        server.terminate()
        server.wait(timeout=10)
