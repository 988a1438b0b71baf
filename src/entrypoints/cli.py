"""The `card-checkout` command. Settings come from the environment (see the README)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.engine import make_url

from adapters.ids import UlidIdGenerator
from core.errors import CheckoutError
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap


async def _demo(settings: Settings) -> None:
    """The library end to end on the sandbox: save a card, pay an invoice, see a decline."""
    checkout = bootstrap(settings)
    await checkout.migrate()
    try:
        await _demo_on(checkout)
    finally:
        await checkout.aclose()


async def _demo_on(checkout: CardCheckout) -> None:
    environment = "env_demo"
    say = print
    run = UlidIdGenerator().new_id("demo")  # each run makes its own customers

    customer = await checkout.create_customer(
        environment,
        {"external_id": f"acme-1-{run}", "name": "Acme Ltd", "email": "billing@acme.test"},
    )
    say(f"customer   {customer.id} (gateway {customer.gateway_customer_id})")
    setup = await checkout.setup_card(environment, customer.id)
    say(f"card setup {setup.url}")
    await checkout.complete_sandbox_checkout(setup.id, "4242 4242 4242 4242")
    for card in await checkout.list_payment_methods(environment, customer.id):
        default = " (default)" if card.is_default else ""
        say(f"saved card {card.brand} ....{card.last4}{default}")

    invoice = await checkout.create_invoice(
        environment,
        {"customer_id": customer.id, "currency": "usd", "amount_due": Decimal("150.00"),
         "status": "FINALIZED"},
    )  # fmt: skip
    payment = await checkout.create_payment(
        environment,
        {
            "amount": Decimal("150.00"),
            "currency": "usd",
            "destination_id": invoice.id,
            "destination_type": "INVOICE",
            "payment_method_type": "CARD",
            "process_payment": True,
            "payment_gateway": "stripe",
        },
    )
    invoice = await checkout.get_invoice(environment, invoice.id)
    say(
        f"payment    {payment.id} {payment.status.value} {payment.amount} "
        f"{payment.currency.code} on {payment.card_brand} ....{payment.card_last4}"
    )
    say(f"invoice    {invoice.id} {invoice.payment_status.value}, remaining "
        f"{invoice.amount_remaining}")  # fmt: skip

    # A second customer whose saved card is declined at charge time.
    declined = await checkout.create_customer(environment, {"external_id": f"acme-2-{run}"})
    setup = await checkout.setup_card(environment, declined.id)
    await checkout.complete_sandbox_checkout(setup.id, "4000 0000 0000 0002")
    invoice = await checkout.create_invoice(
        environment,
        {"customer_id": declined.id, "currency": "usd", "amount_due": "20.00",
         "status": "FINALIZED"},
    )  # fmt: skip
    try:
        await checkout.create_payment(
            environment,
            {"amount": "20.00", "currency": "usd", "destination_id": invoice.id,
             "destination_type": "INVOICE", "payment_method_type": "CARD",
             "process_payment": True, "payment_gateway": "stripe"},
        )  # fmt: skip
    except CheckoutError as error:
        say(f"declined   {error.code}: {error.message} next_action={error.details['next_action']}")
    notified = ", ".join(n.type.value for n in checkout.notifier.delivered)  # type: ignore[attr-defined]
    say(f"notified   {notified}")


async def _migrate(settings: Settings) -> None:
    checkout = bootstrap(settings)
    try:
        await checkout.migrate()
    finally:
        await checkout.aclose()
    print(f"database at the newest schema: {_safe(settings.database_url)}")


def _safe(url: str | None) -> str:
    """The URL without its password, fit for a terminal or a log."""
    return make_url(url).render_as_string(hide_password=True) if url else "in memory"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="card-checkout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database (DATABASE_URL) to the newest schema")
    commands.add_parser("demo", help="run the library end to end on the sandbox gateway")
    args = parser.parse_args(argv)
    settings = Settings.from_environ()
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "demo":
        asyncio.run(_demo(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
