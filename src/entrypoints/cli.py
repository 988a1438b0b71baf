"""The `card-checkout` command. Settings come from the environment (see the README).

Only the standard library is imported here, so that `--help` and `--version` answer at once:
a command brings in what it needs (storage, the gateways, the server) once it is chosen, from
`entrypoints.cli_commands`.

Exit codes: 0 done; 1 the command ran and failed (the database cannot be used, the service
refused); 2 it could not start (an argument or a setting is wrong, as argparse answers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from entrypoints.bootstrap import CardCheckout, Settings

DEFAULT_TENANT = "default"
EXIT_SETTINGS = 2


def bootstrap(settings: Settings) -> CardCheckout:
    """The composition root, imported when a command needs it (tests put their own here)."""
    from entrypoints.bootstrap import bootstrap as build

    return build(settings)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("card-checkout")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class _Version(argparse.Action):
    """`--version`, read from the installed package's metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"card-checkout {version()}")
        parser.exit()


def whole(least: int, most: int | None = None) -> Any:
    """An argparse type: a whole number from `least` (to `most`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{least} or more, not {text!r}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{most} at most, not {text!r}")
        return value

    parse.__name__ = "whole number"
    return parse


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"a number of seconds, 0 or more, not {text!r}")
    return value


def _address(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--host", default="127.0.0.1", help=f"{what} (default: %(default)s)")
    command.add_argument("--port", type=whole(0, 65535), default=8000, help="(default: 8000)")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="card-checkout", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the HTTP service (uvicorn)",
        description="Serve the API. Its public URL (hosted pages, links) is http://HOST:PORT "
        "(127.0.0.1 for 0.0.0.0) unless PUBLIC_BASE_URL is set.",
    )  # fmt: skip
    _address(serve, "the address to listen on")
    serve.add_argument("--workers", type=whole(1), default=1)
    commands.add_parser("migrate", help="bring the database (DATABASE_URL) to the newest schema")
    _api_keys(commands)
    _environments(commands)
    stored_secrets = commands.add_parser("secrets", help="the secrets stored sealed")
    secret_commands = stored_secrets.add_subparsers(dest="secrets_command", required=True)
    secret_commands.add_parser(
        "rotate", help="seal every stored secret again with the first CARD_CHECKOUT_ENCRYPTION_KEYS"
    )
    demo = commands.add_parser(
        "demo", help="set up a demo environment and print curl commands for it",
        description="The curl commands go to http://HOST:PORT, where `serve` with the same "
        "--host and --port listens, unless PUBLIC_BASE_URL is set.",
    )  # fmt: skip
    _address(demo, "where `serve` will listen")
    reconcile = commands.add_parser(
        "reconcile", help="settle payments and refunds left in flight, asking the gateway"
    )
    reconcile.add_argument("--older-than", type=seconds, default=30.0, metavar="SECONDS",
                           help="only what has waited this long (default: 30)")  # fmt: skip
    reconcile.add_argument("--limit", type=whole(1), default=1000,
                           help="at most this many payments, and as many refunds")  # fmt: skip
    reconcile.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _api_keys(commands: Any) -> None:
    keys = commands.add_parser("api-keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="key_command", required=True)
    create = key_commands.add_parser(
        "create", help="create a key: the key alone on stdout (shown once), the rest on stderr"
    )
    create.add_argument("--environment", required=True, help="env_... (created if new)")
    create.add_argument("--role", required=True, choices=["read", "write", "admin"])
    create.add_argument("--tenant", default=DEFAULT_TENANT)
    listing = key_commands.add_parser(
        "list", help="the keys that may use an environment (never the keys themselves)"
    )
    listing.add_argument("--environment", required=True)
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    revoke = key_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", metavar="KEY_ID", help="key_...")


def _environments(commands: Any) -> None:
    environments = commands.add_parser("environments", help="manage environments")
    environment_commands = environments.add_subparsers(dest="environment_command", required=True)
    secrets = environment_commands.add_parser(
        "webhook-secrets", help="set the secrets that sign Stripe's webhooks for an environment"
    )
    secrets.add_argument("--environment", required=True)
    secrets.add_argument("--secret", action="append", help="whsec_...; repeat while rotating")
    connect = environment_commands.add_parser(
        "connect", help="connect an environment to the sandbox or a Stripe account"
    )
    connect.add_argument("--environment", required=True)
    connect.add_argument("--provider", required=True, choices=["stripe", "sandbox"])
    connect.add_argument("--secret-key", help="sk_... or rk_...; - reads it from stdin")
    connect.add_argument("--webhook-secret", action="append", help="whsec_...; repeatable")
    create_environment = environment_commands.add_parser("create", help="create an environment")
    create_environment.add_argument("--environment", required=True, help="env_...")
    create_environment.add_argument("--name")
    create_environment.add_argument("--mode", choices=["test", "live"], default="test")
    create_environment.add_argument("--tenant", default=DEFAULT_TENANT)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from entrypoints.settings import Settings, SettingsError

    try:
        settings = Settings.from_environ()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETTINGS
    from entrypoints import cli_commands

    return cli_commands.run(args, settings, bootstrap)


if __name__ == "__main__":
    sys.exit(main())
