"""What each `card-checkout` command does, once `entrypoints.cli` has read its arguments and
settings. Imported only then: it brings in storage, the gateways and the server."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import attrs
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url

from adapters.ids import UlidIdGenerator
from adapters.secrets import SecretsError
from adapters.sql.errors import DATABASE_ERRORS
from adapters.sql.migrate import SchemaAhead
from core.errors import CheckoutError, NotFound, ServiceUnavailable
from core.model import ApiKey, EnvironmentMode
from core.rules import MAX_PAGE_SIZE
from core.usecases.reconciliation import ReconcileReport
from entrypoints.bootstrap import CardCheckout, Settings
from entrypoints.cli import DEFAULT_TENANT

# A database missing, unreachable or refusing us, or at a schema this code does not know.
DATABASE_FAILURES: tuple[type[Exception], ...] = (*DATABASE_ERRORS, CommandError, SchemaAhead)
Work = Callable[[CardCheckout], Awaitable[None]]
Build = Callable[[Settings], CardCheckout]


def run(args: argparse.Namespace, settings: Settings, build: Build) -> int:
    """Run the chosen command; its exit code. A failure is one line on stderr."""
    try:
        if args.command == "serve":
            _serve(args, settings, build)
            return 0
        if args.command == "migrate":
            asyncio.run(_with_checkout(build(settings), _migrate_only))
            print(f"database at the newest schema: {_safe(settings.database_url)}")
            return 0
        settings = _with_public_url(args, settings)
        asyncio.run(_with_checkout(build(settings), _work(args, settings)))
    except CheckoutError as error:
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return 1
    except SecretsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except DATABASE_FAILURES as error:
        print(f"error: {_database_failure(error, settings)}", file=sys.stderr)
        return 1
    return 0


def _work(args: argparse.Namespace, settings: Settings) -> Work:
    if args.command == "api-keys":
        keys = {"create": _create_key, "list": _list_keys, "revoke": _revoke_key}
        return keys[args.key_command](args)
    if args.command == "environments":
        environments = {"webhook-secrets": _set_webhook_secrets, "connect": _connect,
                        "create": _create_environment}  # fmt: skip
        return environments[args.environment_command](args)
    if args.command == "secrets":
        return _rotate_secrets
    if args.command == "demo":
        return _demo(settings.public_base_url)
    assert args.command == "reconcile", args.command
    return _reconcile(args)


def _safe(url: str | None) -> str:
    """The URL without its password, fit for a terminal or a log."""
    return make_url(url).render_as_string(hide_password=True) if url else "in memory"


def _database_failure(error: BaseException, settings: Settings) -> str:
    """One line for a database that cannot be used (missing, unreachable, refusing us), in
    place of the driver's traceback."""
    cause = getattr(error, "orig", None) or error  # SQLAlchemy's wrapper: the driver's error
    said = " ".join(str(cause).split()) or type(cause).__name__
    said = re.sub(r"^<class '[\w.]+'>: ", "", said)  # how SQLAlchemy spells an adapted error
    return f"the database {_safe(settings.database_url)} cannot be used: {said}"


def public_url(host: str, port: int) -> str:
    """The service's address as a client on this machine reaches it: a server bound to every
    address (0.0.0.0, ::) is reached on the loopback one."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _with_public_url(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings with the public URL of `--host` and `--port` (serve, demo) unless
    PUBLIC_BASE_URL says otherwise."""
    if os.environ.get("PUBLIC_BASE_URL", "").strip() or not hasattr(args, "port"):
        return settings
    return attrs.evolve(settings, public_base_url=public_url(args.host, args.port))


async def _with_checkout(checkout: CardCheckout, work: Work) -> None:
    """Run `work` on the configured storage, brought to the newest schema first, its stored
    secrets checked against the configured keys."""
    try:
        await checkout.migrate()
        await checkout.open_secrets()
        await work(checkout)
    finally:
        await checkout.aclose()


async def _migrate_only(_: CardCheckout) -> None:
    """Nothing more: `_with_checkout` has migrated already."""


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
    """The key alone on stdout (`KEY=$(card-checkout api-keys create ...)`), the rest on stderr."""

    async def work(checkout: CardCheckout) -> None:
        environment = await _environment(checkout, args.environment, args.tenant)
        key, raw = await checkout.create_api_key(args.tenant, [environment], args.role)
        print(f"API key {key.id} ({key.role.value}) for {environment}; shown once, keep it:",
              file=sys.stderr)  # fmt: skip
        print(raw)

    return work


def _when(key: ApiKey, revoked: bool = False) -> str | None:
    at = key.revoked_at if revoked else key.created_at
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def _key_json(key: ApiKey) -> dict[str, Any]:
    """What the operator sees of a key: never the key nor its hash."""
    return {"id": key.id, "role": key.role.value, "environments": sorted(key.environment_ids),
            "created_at": _when(key), "revoked_at": _when(key, revoked=True)}  # fmt: skip


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ",".join(value)
    return "-" if value is None else str(value)


def _list_keys(args: argparse.Namespace) -> Work:
    async def work(checkout: CardCheckout) -> None:
        keys: list[ApiKey] = []
        after: str | None = None
        while True:
            page = await checkout.list_api_keys(
                args.environment, limit=MAX_PAGE_SIZE, starting_after=after
            )
            keys.extend(page.items)
            if not page.has_more:
                break
            after = page.items[-1].id
        listed = [_key_json(key) for key in keys]
        if args.json:
            print(json.dumps(listed, indent=2))
            return
        columns = ("id", "role", "environments", "created_at", "revoked_at")
        rows = [[_cell(key[column]) for column in columns] for key in listed]
        widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
        for row in [list(columns), *rows]:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            print("  ".join(cells).rstrip())

    return work


def _revoke_key(args: argparse.Namespace) -> Work:
    async def work(checkout: CardCheckout) -> None:
        key = await checkout.revoke_api_key(args.key_id)
        print(f"{key.id} revoked at {_when(key, revoked=True)}")

    return work


def _demo(public_base_url: str) -> Work:
    async def work(checkout: CardCheckout) -> None:
        await _demo_in(checkout, public_base_url.rstrip("/"))

    return work


async def _demo_in(checkout: CardCheckout, base: str) -> None:
    """An environment, a key, a customer with a saved sandbox card, a finalized invoice,
    and curl commands that pay it through the running service at `base`."""
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


def _report_json(report: ReconcileReport) -> dict[str, Any]:
    return {
        "examined": report.examined,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "refunds_settled": report.refunds_settled,
        "already_settled": report.already_settled,
        "settled": [attrs.asdict(item) for item in report.settled],
        "unresolved": list(report.unresolved),
        "errors": [attrs.asdict(item) for item in report.errors],
        "needs_attention": [
            {
                "payment_id": stuck.payment_id,
                "environment_id": stuck.environment_id,
                "in_flight_seconds": round(stuck.in_flight_for.total_seconds()),
            }
            for stuck in report.needs_attention
        ],
        "stopped_by": report.stopped_by.message if report.stopped_by is not None else None,
    }


def _print_report(report: ReconcileReport) -> None:
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
    for item in report.settled:
        print(f"  settled: {item.kind} {item.id} in {item.environment_id}: {item.status}")
    for error in report.errors:
        print(f"  error: {error.id} in {error.environment_id}: {error.error}")
    for stuck in report.needs_attention:
        print(f"  needs a person: {stuck.payment_id} in {stuck.environment_id}, "
              f"in flight for {stuck.in_flight_for.total_seconds():.0f} s")  # fmt: skip


def _reconcile(args: argparse.Namespace) -> Work:
    async def work(checkout: CardCheckout) -> None:
        report = await checkout.reconcile(
            older_than=timedelta(seconds=args.older_than), limit=args.limit
        )
        if args.json:
            print(json.dumps(_report_json(report), indent=2))
        else:
            _print_report(report)
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
    report = await checkout.open_secrets(reseal_all=True)
    if report is None:
        print("nothing to reseal: storage is in memory")
    else:
        print(f"resealed {report.changed} of {report.secrets} stored secret(s) with the first key")


async def _check_secrets(checkout: CardCheckout) -> None:
    """Refuse to start (`SecretsError`) where stored secrets cannot be opened; a database
    that is down or not migrated yet is the service's to report (503, /readyz), not a reason
    to stay down."""
    try:
        await checkout.open_secrets()
    except SecretsError:
        raise
    except Exception as error:  # noqa: BLE001 - anything else is reported once it serves
        print(f"warning: stored secrets not checked: {type(error).__name__}", file=sys.stderr)
    finally:
        await checkout.aclose()


def _serve(args: argparse.Namespace, settings: Settings, build: Build) -> None:
    import uvicorn

    from entrypoints.logs import configure_logging

    # The app is built by uvicorn (in each worker) from the environment: the public URL
    # derived from --host and --port goes there, unless PUBLIC_BASE_URL is set.
    settings = _with_public_url(args, settings)
    os.environ["PUBLIC_BASE_URL"] = settings.public_base_url
    # uvicorn's own lines too (log_config=None: it installs no handler of its own); each
    # worker's app configures the same again.
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(_check_secrets(build(settings)))
    print(f"card-checkout at {settings.public_base_url}", file=sys.stderr)
    uvicorn.run(
        "entrypoints.http.asgi:app_from_environ",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,  # the app logs one line per request, with its request id
        http="entrypoints.http.protocol:HeaderCappedProtocol",
        log_config=None,
        # Behind proxies that say who the client is, trust them and only them.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )
