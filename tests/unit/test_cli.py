"""The CLI's arguments and settings: refused in one line that names what is wrong."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from entrypoints import cli
from entrypoints.cli_commands import public_url
from entrypoints.settings import DEFAULT_DATABASE_URL, Settings, SettingsError


def _refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What argparse says refusing `argv` (it exits 2)."""
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["reconcile", "--older-than", "-5"], "--older-than: a number of seconds, 0 or more"),
        (["reconcile", "--older-than", "nan"], "--older-than: a number of seconds, 0 or more"),
        (["reconcile", "--limit", "-1"], "--limit: 1 or more, not '-1'"),
        (["reconcile", "--limit", "0"], "--limit: 1 or more, not '0'"),
        (["reconcile", "--limit", "ten"], "--limit: a whole number, not 'ten'"),
        (["serve", "--port", "70000"], "--port: 65535 at most"),
        (["serve", "--workers", "0"], "--workers: 1 or more"),
        (["api-keys", "revoke"], "the following arguments are required: KEY_ID"),
        (["api-keys", "list"], "the following arguments are required: --environment"),
    ],
)
def test_wrong_arguments_are_refused_naming_the_argument(
    capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    assert said in _refusal(capsys, *argv)


def test_the_arguments_read_as_typed() -> None:
    args = cli.parser().parse_args(["reconcile", "--older-than", "0", "--limit", "5", "--json"])
    assert (args.older_than, args.limit, args.json) == (0.0, 5, True)
    args = cli.parser().parse_args(["reconcile"])
    assert (args.older_than, args.limit, args.json) == (30.0, 1000, False)
    listed = cli.parser().parse_args(["api-keys", "list", "--environment", "env_a", "--json"])
    assert (listed.key_command, listed.environment, listed.json) == ("list", "env_a", True)
    revoked = cli.parser().parse_args(["api-keys", "revoke", "key_1"])
    assert (revoked.key_command, revoked.key_id) == ("revoke", "key_1")
    demo = cli.parser().parse_args(["demo", "--port", "8123"])
    assert (demo.host, demo.port) == ("127.0.0.1", 8123)


def test_version_is_the_installed_packages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"card-checkout {version('card-checkout')}\n"


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"DATABASE_POOL_SIZE": "abc"}, "DATABASE_POOL_SIZE must be a whole number, not 'abc'"),
        ({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE must be 1 or more, not '0'"),
        ({"DATABASE_STATEMENT_TIMEOUT_MS": "1.5"},
         "DATABASE_STATEMENT_TIMEOUT_MS must be a whole number, not '1.5'"),
        ({"API_KEY_CACHE_SECONDS": "five"},
         "API_KEY_CACHE_SECONDS must be a number of seconds, not 'five'"),
        ({"RECONCILE_EVERY_SECONDS": "-1"}, "RECONCILE_EVERY_SECONDS must be 0 or more, not '-1'"),
        ({"WEBHOOK_TIMEOUT_SECONDS": "0"}, "WEBHOOK_TIMEOUT_SECONDS must be more than 0, not '0'"),
        ({"NOTIFY_EVERY_SECONDS": "inf"},
         "NOTIFY_EVERY_SECONDS must be a number of seconds, not 'inf'"),
        ({"WEBHOOK_ALLOW_PRIVATE_URLS": "maybe"},
         "WEBHOOK_ALLOW_PRIVATE_URLS must be 1 or 0 (true or false), not 'maybe'"),
        ({"DATABASE_EXECUTOR": "odbc"},
         "DATABASE_EXECUTOR must be one of sqlalchemy, asyncpg, not 'odbc'"),
        ({"DATABASE_EXECUTOR": "asyncpg"}, "DATABASE_EXECUTOR asyncpg runs on postgresql only"),
        ({"PUBLIC_BASE_URL": "localhost:8000"},
         "PUBLIC_BASE_URL must be an http:// or https:// URL, not 'localhost:8000'"),
        ({"SANDBOX_FAULTS": "charge:sometimes"},
         "SANDBOX_FAULTS: unknown sandbox fault 'sometimes' in 'charge:sometimes'"),
        ({"LOG_LEVEL": "LOUD"},
         "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'LOUD'"),
    ],
)  # fmt: skip
def test_each_unusable_setting_is_named_with_what_it_must_be(
    environ: dict[str, str], said: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ(environ)
    assert str(refused.value) == said


def test_a_database_url_is_refused_without_showing_its_password() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({"DATABASE_URL": "mysql://root:hunter2@db/app"})
    assert str(refused.value).startswith("DATABASE_URL must be a sqlite:// or postgresql:// URL")
    assert "hunter2" not in str(refused.value)


def test_usable_settings_are_read_and_empty_ones_are_the_defaults() -> None:
    assert Settings.from_environ({}) == Settings(database_url=DEFAULT_DATABASE_URL)
    assert Settings.from_environ({"DATABASE_URL": "", "LOG_LEVEL": ""}) == Settings.from_environ({})
    read = Settings.from_environ(
        {"DATABASE_POOL_SIZE": " 4 ", "API_KEY_CACHE_SECONDS": "0",
         "WEBHOOK_ALLOW_PRIVATE_URLS": "yes", "SANDBOX_CHARGE_EVENTS": "0",
         "PUBLIC_BASE_URL": "https://pay.example.com", "DATABASE_URL": "postgres://u@db/app",
         "DATABASE_EXECUTOR": "asyncpg", "SANDBOX_DATABASE_URL": "memory"}
    )  # fmt: skip
    assert read.database_pool_size == 4
    assert read.api_key_cache_seconds == 0
    assert read.webhook_allow_private_urls is True
    assert read.sandbox_charge_events is False
    assert read.public_base_url == "https://pay.example.com"
    assert read.database_executor == "asyncpg"


def test_a_wrong_setting_stops_the_cli_in_one_line_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "abc")
    assert cli.main(["migrate"]) == 2
    said = capsys.readouterr()
    assert said.err == "error: DATABASE_POOL_SIZE must be a whole number, not 'abc'\n"
    assert said.out == ""


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("0.0.0.0", 8123, "http://127.0.0.1:8123"),
        ("::", 8123, "http://[::1]:8123"),
        ("::1", 9000, "http://[::1]:9000"),
        ("pay.internal", 80, "http://pay.internal:80"),
    ],
)
def test_the_public_url_is_where_a_client_here_reaches_the_server(
    host: str, port: int, url: str
) -> None:
    assert public_url(host, port) == url
