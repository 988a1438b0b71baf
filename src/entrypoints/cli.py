"""The `card-checkout` command. Settings come from the environment (see the README)."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy.engine import make_url

from adapters.ids import UlidIdGenerator
from adapters.secrets import SecretsUnreadable
from core.errors import CheckoutError, NotFound, ServiceUnavailable
from core.model import EnvironmentMode
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap

DEFAULT_TENANT = "default"


def _safe(url: str | None) -> str:
    """The URL without its password, fit for a terminal or a log."""
    return make_url(url).render_as_string(hide_password=True) if url else "in memory"


Work = Callable[[CardCheckout], Awaitable[None]]


async def _with_checkout(settings: Settings, work: Work) -> None:
    """Run `work` on the configured storage, brought to the newest schema first, its stored
    secrets checked against the configured keys."""
    checkout = bootstrap(settings)
    try:
        await checkout.migrate()
        await checkout.open_secrets()
        await work(checkout)
    finally:
        await checkout.aclose()


async def _environment(checkout: CardCheckout, environment_id: str, tenant: str) -> str:
    """The environment, created with that id when it does not exist yet."""
    try:
        return (await checkout.get_environment(environment_id)).id
    except NotFound:
        created = await checkout.create_environment(
            tenant, environment_id, environment_id=environment_id
        )
        return created.id


def _create_key(args: argparse.Namespace) -> Work:
    async def work(checkout: CardCheckout) -> None:
        environment = await _environment(checkout, args.environment, args.tenant)
        key, raw = await checkout.create_api_key(args.tenant, [environment], args.role)
        print(f"API key {key.id} ({key.role.value}) for {environment}; shown once, keep it:")
        print(raw)

    return work


def _demo(settings: Settings) -> Work:
    """An environment, a key, a customer with a saved sandbox card, a finalized invoice,
    and curl commands that pay it through the running service."""

    async def work(checkout: CardCheckout) -> None:
        run = UlidIdGenerator().new_id("demo")
        environment = await checkout.create_environment(DEFAULT_TENANT, f"demo {run}")
        _, key = await checkout.create_api_key(DEFAULT_TENANT, [environment.id], "admin")
        customer = await checkout.create_customer(
            environment.id, {"external_id": f"acme-{run}", "name": "Acme Ltd"}
        )
        setup = await checkout.setup_card(environment.id, customer.id)
        await checkout.complete_sandbox_checkout(setup.id, "4242 4242 4242 4242")
        invoice = await checkout.create_invoice(
            environment.id,
            {"customer_id": customer.id, "currency": "usd", "amount_due": "150.00",
             "status": "FINALIZED"},
        )  # fmt: skip
        base = settings.public_base_url.rstrip("/")
        headers = f"-H 'Authorization: Bearer {key}' -H 'X-Environment-ID: {environment.id}'"
        body = (
            '{"amount": 150.00, "currency": "usd", "destination_id": "' + invoice.id + '", '
            '"destination_type": "INVOICE", "payment_method_type": "CARD", '
            '"process_payment": true, "payment_gateway": "stripe"}'
        )
        print(f"environment {environment.id}")
        print(f"api key     {key}")
        print(f"customer    {customer.id} with a saved visa ....4242 (sandbox)")
        print(f"invoice     {invoice.id}: 150.00 usd, finalized")
        print("\nPay it off-session with the saved card:")
        print(f"curl -s -X POST {base}/api/v1/payments {headers} "
              f"-H 'Content-Type: application/json' -d {shlex.quote(body)}")  # fmt: skip
        print("\nSee the invoice paid:")
        print(f"curl -s {base}/api/v1/invoices/{invoice.id} {headers}")
        print("\nThe invoice's payments:")
        print(f"curl -s '{base}/api/v1/payments?destination_id={invoice.id}' {headers}")

    return work


def _reconcile(args: argparse.Namespace) -> Work:
    async def work(checkout: CardCheckout) -> None:
        report = await checkout.reconcile(
            older_than=timedelta(seconds=args.older_than), limit=args.limit
        )
        rows = [
            ("examined", report.examined),
            ("succeeded", report.succeeded),
            ("failed", report.failed),
            ("refunds settled", report.refunds_settled),
            ("already settled", report.already_settled),  # by another process, not this one
            ("still unknown", len(report.unresolved)),
            ("errors", len(report.errors)),
            ("need a person", len(report.needs_attention)),
        ]
        width = max(len(name) for name, _ in rows)
        print("reconciliation")
        for name, value in rows:
            print(f"  {name:<{width}}  {value:>6}")
        for item in report.errors:
            print(f"  error: {item.id} in {item.environment_id}: {item.error}")
        for stuck in report.needs_attention:
            print(f"  needs a person: {stuck.payment_id} in {stuck.environment_id}, "
                  f"in flight for {stuck.in_flight_for.total_seconds():.0f} s")  # fmt: skip
        if report.stopped_by is not None:
            raise ServiceUnavailable(f"reconciliation stopped early: {report.stopped_by.message}")

    return work


def _set_webhook_secrets(args: argparse.Namespace) -> Work:
    async def work(checkout: CardCheckout) -> None:
        environment = await checkout.set_webhook_secrets(args.environment, args.secret or [])
        count = len(environment.webhook_secrets)
        print(f"{environment.id}: {count} webhook secret(s) of its own"
              + ("" if count else "; STRIPE_WEBHOOK_SECRET applies"))  # fmt: skip

    return work


def _connect(args: argparse.Namespace) -> Work:
    async def work(checkout: CardCheckout) -> None:
        key = sys.stdin.readline().strip() if args.secret_key == "-" else args.secret_key
        body = {"provider": args.provider, "webhook_secrets": args.webhook_secret or []}
        if key:
            body["secret_key"] = key
        view = await checkout.connect_gateway(args.environment, body)
        described = f"key ...{view.secret_key_last4}" if view.secret_key_last4 else "no key"
        print(f"{view.environment_id} ({view.mode.value}): {view.provider.value}, {described}, "
              f"{len(view.webhook_secrets_last4)} webhook secret(s)")  # fmt: skip

    return work


def _create_environment(args: argparse.Namespace) -> Work:
    async def work(checkout: CardCheckout) -> None:
        created = await checkout.create_environment(
            args.tenant, args.name or args.environment, environment_id=args.environment,
            mode=EnvironmentMode(args.mode),
        )  # fmt: skip
        print(f"{created.id} ({created.mode.value}) for tenant {created.tenant_id}")

    return work


async def _rotate_secrets(checkout: CardCheckout) -> None:
    report = await checkout.rotate_secrets()
    if report is None:
        print("nothing to reseal: storage is in memory")
    else:
        print(f"resealed {report.changed} of {report.secrets} stored secret(s) with the first key")


async def _check_secrets(settings: Settings) -> None:
    """Refuse to start (`SecretsUnreadable`) where stored secrets cannot be opened; a database
    that is down or not migrated yet is the service's to report (503, /readyz), not a reason
    to stay down."""
    checkout = bootstrap(settings)
    try:
        await checkout.open_secrets()
    except SecretsUnreadable:
        raise
    except Exception as error:  # noqa: BLE001 - anything else is reported once it serves
        print(f"warning: stored secrets not checked: {type(error).__name__}", file=sys.stderr)
    finally:
        await checkout.aclose()


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    asyncio.run(_check_secrets(settings))

    uvicorn.run(
        "entrypoints.http.asgi:app_from_environ",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,  # the app logs one line per request, with its request id
        proxy_headers=False,
    )


async def _migrate_only(_: CardCheckout) -> None:
    """Nothing more: `_with_checkout` has migrated already."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="card-checkout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    commands.add_parser("migrate", help="bring the database (DATABASE_URL) to the newest schema")
    keys = commands.add_parser("api-keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="key_command", required=True)
    create = key_commands.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--environment", required=True, help="env_... (created if new)")
    create.add_argument("--role", required=True, choices=["read", "write", "admin"])
    create.add_argument("--tenant", default=DEFAULT_TENANT)
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
    stored_secrets = commands.add_parser("secrets", help="the secrets stored sealed")
    secret_commands = stored_secrets.add_subparsers(dest="secrets_command", required=True)
    secret_commands.add_parser(
        "rotate", help="seal every stored secret again with the first CARD_CHECKOUT_ENCRYPTION_KEYS"
    )
    commands.add_parser("demo", help="set up a demo environment and print curl commands")
    reconcile = commands.add_parser(
        "reconcile", help="settle payments and refunds left in flight, asking the gateway"
    )
    reconcile.add_argument("--older-than", type=float, default=30.0, metavar="SECONDS")
    reconcile.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args(argv)
    settings = Settings.from_environ()
    try:
        if args.command == "serve":
            _serve(args, settings)
        elif args.command == "migrate":
            asyncio.run(_with_checkout(settings, _migrate_only))
            print(f"database at the newest schema: {_safe(settings.database_url)}")
        elif args.command == "api-keys":
            asyncio.run(_with_checkout(settings, _create_key(args)))
        elif args.command == "environments":
            work = {"webhook-secrets": _set_webhook_secrets, "connect": _connect,
                    "create": _create_environment}[args.environment_command]  # fmt: skip
            asyncio.run(_with_checkout(settings, work(args)))
        elif args.command == "secrets":
            asyncio.run(_with_checkout(settings, _rotate_secrets))
        elif args.command == "demo":
            asyncio.run(_with_checkout(settings, _demo(settings)))
        elif args.command == "reconcile":
            asyncio.run(_with_checkout(settings, _reconcile(args)))
    except CheckoutError as error:
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return 1
    except SecretsUnreadable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
