"""Gateway connections per environment: each environment charges through its own account,
set by an admin, shown without its secrets; a live environment never uses the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.clock import ManualClock
from adapters.ids import UlidIdGenerator
from adapters.sandbox import SandboxPaymentGateway
from core.model import EnvironmentMode, GatewayConnection, GatewayProvider, PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    ENV,
    OTHER_ENV,
    VISA,
    card_payment,
    error_body,
    error_of,
    finalized_invoice,
    keyed_client,
    keys_by_role,
    sandbox,
)

LIVE_ENV = "env_live"
ROUTE = "/api/v1/connection"
KEY_A = "sk_test_accountAAAA1234"


class Accounts:
    """Stripe accounts played by sandboxes of their own, by secret key."""

    def __init__(self, checkout: CardCheckout, clock: ManualClock) -> None:
        self.checkout, self.clock = checkout, clock
        self.by_key: dict[str, SandboxPaymentGateway] = {}

    def __call__(self, secret_key: str) -> SandboxPaymentGateway:
        account = SandboxPaymentGateway(clock=self.clock, ids=UlidIdGenerator())
        account.event_sink = self.checkout.handle_gateway_event  # as its webhooks would
        self.by_key[secret_key] = account
        return account


@pytest.fixture
def accounts(checkout: CardCheckout, clock: ManualClock) -> Accounts:
    accounts = Accounts(checkout, clock)
    checkout.gateways.stripe = accounts
    return accounts


@pytest.fixture
async def keys(checkout: CardCheckout) -> dict[str, str]:
    await checkout.create_environment(
        "t", "live", environment_id=LIVE_ENV, mode=EnvironmentMode.LIVE
    )
    return await keys_by_role(checkout, (ENV, LIVE_ENV))


@pytest.fixture
async def client(checkout: CardCheckout, keys: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with keyed_client(checkout, keys["admin"]) as client:
        yield client


async def test_an_environment_without_a_connection_shows_the_default(
    client: httpx.AsyncClient,
) -> None:
    shown = await client.get(ROUTE)
    assert shown.status_code == 200, shown.text
    assert shown.json() == {
        "object": "gateway_connection",
        "environment_id": ENV,
        "mode": "test",
        "provider": "sandbox",
        "source": "default",
        "secret_key_last4": None,
        "webhook_secrets_last4": [],
        "updated_at": None,
    }


async def test_an_admin_connects_stripe_and_sees_only_the_last_four_characters(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    body = {"provider": "stripe", "secret_key": KEY_A, "webhook_secrets": ["whsec_abcdWXYZ"]}
    put = await client.put(ROUTE, json=body)
    assert put.status_code == 200, put.text
    shown = await client.get(ROUTE)
    assert shown.json() == put.json()
    assert shown.json()["provider"] == "stripe"
    assert shown.json()["source"] == "environment"
    assert shown.json()["secret_key_last4"] == "1234"
    assert shown.json()["webhook_secrets_last4"] == ["WXYZ"]
    assert KEY_A not in shown.text
    assert "whsec_abcdWXYZ" not in shown.text


@pytest.mark.parametrize("role", ["read", "write"])
async def test_only_admin_keys_see_or_change_the_connection(
    client: httpx.AsyncClient, keys: dict[str, str], role: str
) -> None:
    headers = {"Authorization": f"Bearer {keys[role]}"}
    for answer in (
        await client.get(ROUTE, headers=headers),
        await client.put(ROUTE, json={"provider": "sandbox"}, headers=headers),
    ):
        assert answer.status_code == 403, answer.text
        assert error_body(answer)["code"] == "forbidden"


async def test_an_admin_of_another_environment_cannot_reach_this_one(
    client: httpx.AsyncClient, keys: dict[str, str], accounts: Accounts
) -> None:
    await client.put(ROUTE, json={"provider": "stripe", "secret_key": KEY_A})
    other = {"Authorization": f"Bearer {keys['other']}"}
    assert (await client.get(ROUTE, headers=other)).status_code == 403
    theirs = await client.get(ROUTE, headers={**other, "X-Environment-ID": OTHER_ENV})
    assert theirs.json()["source"] == "default"
    assert theirs.json()["secret_key_last4"] is None


@pytest.mark.parametrize(
    ("environment", "body", "field"),
    [
        (LIVE_ENV, {"provider": "sandbox"}, "provider"),
        (LIVE_ENV, {"provider": "stripe", "secret_key": "sk_test_x"}, "secret_key"),
        (ENV, {"provider": "stripe", "secret_key": "sk_live_x"}, "secret_key"),
        (ENV, {"provider": "stripe"}, "secret_key"),
        (ENV, {"provider": "stripe", "secret_key": "pk_test_x"}, "secret_key"),
        (ENV, {"provider": "sandbox", "secret_key": "sk_test_x"}, "secret_key"),
        (ENV, {"provider": "paypal"}, "provider"),
        (ENV, {"provider": "stripe", "secret_key": "sk_test_a\u0000b"}, "secret_key"),
        (ENV, {"provider": "stripe", "secret_key": "sk_test_a b"}, "secret_key"),
        (ENV, {"provider": "sandbox", "webhook_secrets": ["nope"]}, "webhook_secrets"),
        (ENV, {"provider": "sandbox", "webhook_secrets": ["whsec_a\nb"]}, "webhook_secrets"),
        # The README's placeholders, pasted as they are.
        (LIVE_ENV, {"provider": "stripe", "secret_key": "sk_live_..."}, "secret_key"),
        (ENV, {"provider": "sandbox", "webhook_secrets": ["whsec_..."]}, "webhook_secrets"),
    ],
)
async def test_a_connection_the_environment_must_not_use_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, environment: str, body: dict[str, Any], field: str
) -> None:
    headers = {"X-Environment-ID": environment}
    refused = await client.put(ROUTE, json=body, headers=headers)
    assert refused.status_code == 400, refused.text
    assert error_body(refused)["code"] == "validation_error"
    assert error_body(refused)["details"]["field"] == field
    assert (await client.get(ROUTE, headers=headers)).json()["source"] == "default"


async def test_a_live_environment_is_connected_to_a_live_stripe_key(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    headers = {"X-Environment-ID": LIVE_ENV}
    put = await client.put(
        ROUTE, json={"provider": "stripe", "secret_key": "sk_live_9876"}, headers=headers
    )
    assert put.status_code == 200, put.text
    assert put.json()["mode"] == "live"
    assert put.json()["secret_key_last4"] == "9876"


async def test_a_live_environment_left_with_the_sandbox_charges_nothing_and_records_nothing(
    checkout: CardCheckout, keys: dict[str, str]
) -> None:
    customer_error = await error_of(checkout.create_customer(LIVE_ENV, {"external_id": "x"}))
    assert customer_error.code == "gateway_not_connected"
    assert (await checkout.list_customers(LIVE_ENV)).items == []


async def test_each_environment_charges_through_its_own_account(
    checkout: CardCheckout, keys: dict[str, str], accounts: Accounts
) -> None:
    await checkout.connect_gateway(ENV, {"provider": "stripe", "secret_key": KEY_A})
    paid = {}
    for environment in (ENV, OTHER_ENV):
        customer = await checkout.create_customer(environment, {"external_id": "acme"})
        setup = await checkout.setup_card(environment, customer.id)
        account = accounts.by_key.get(KEY_A) if environment == ENV else sandbox(checkout)
        assert account is not None
        await account.complete_checkout_session(setup.id, VISA)
        invoice = await finalized_invoice(checkout, customer, env=environment)
        paid[environment] = await checkout.create_payment(environment, card_payment(invoice))
    account_a = accounts.by_key[KEY_A]
    assert paid[ENV].status is PaymentStatus.SUCCEEDED
    assert paid[OTHER_ENV].status is PaymentStatus.SUCCEEDED
    charged_a = [charge["metadata"]["payment_id"] for charge in await account_a.succeeded_charges()]
    charged_default = [
        charge["metadata"]["payment_id"] for charge in await sandbox(checkout).succeeded_charges()
    ]
    assert charged_a == [paid[ENV].id]
    assert charged_default == [paid[OTHER_ENV].id]

    refund = await checkout.refund_payment(ENV, paid[ENV].id, {})
    assert refund.status.value == "succeeded"


async def test_a_new_connection_applies_to_the_next_request_at_once(
    checkout: CardCheckout, keys: dict[str, str], accounts: Accounts
) -> None:
    await checkout.create_customer(ENV, {"external_id": "before"})
    await checkout.connect_gateway(ENV, {"provider": "stripe", "secret_key": KEY_A})
    await checkout.create_customer(ENV, {"external_id": "after"})
    assert len(await accounts.by_key[KEY_A].store.all("customer")) == 1
    assert len(await sandbox(checkout).store.all("customer")) == 1


@pytest.mark.parametrize(
    ("default_key", "allowed"), [("sk_test_ops", False), ("sk_live_ops", True)]
)
async def test_a_live_environment_takes_the_services_default_only_if_it_is_a_live_key(
    checkout: CardCheckout,
    keys: dict[str, str],
    clock: ManualClock,
    default_key: str,
    allowed: bool,
) -> None:
    checkout.gateways.default_connection = GatewayConnection(
        GatewayProvider.STRIPE, clock.now(), default_key
    )
    if allowed:
        created = await checkout.create_customer(LIVE_ENV, {"external_id": "x"})
        assert created.gateway_customer_id is not None
    else:
        refused = await error_of(checkout.create_customer(LIVE_ENV, {"external_id": "x"}))
        assert refused.code == "gateway_not_connected"
    shown = await checkout.get_connection(LIVE_ENV)
    assert (shown.provider, shown.own) == (GatewayProvider.STRIPE, False)
    assert shown.secret_key_last4 is None  # the operator's key is not a tenant's to see


async def test_stripe_clients_of_keys_no_longer_used_are_not_kept(
    checkout: CardCheckout, keys: dict[str, str], accounts: Accounts
) -> None:
    checkout.gateways.max_stripe_clients = 2
    for n in range(5):
        await checkout.connect_gateway(ENV, {"provider": "stripe", "secret_key": f"sk_test_k{n}"})
        await checkout.create_customer(ENV, {"external_id": f"c{n}"})
    kept = checkout.gateways._stripe_clients
    assert list(kept) == ["sk_test_k3", "sk_test_k4"]


async def test_a_body_naming_a_field_twice_is_refused_whole(client: httpx.AsyncClient) -> None:
    """Readers disagree on which of two values counts (a proxy may check the first)."""
    refused = await client.put(
        ROUTE,
        content=b'{"provider": "stripe", "provider": "sandbox"}',
        headers={"Content-Type": "application/json"},
    )
    assert refused.status_code == 400, refused.text
    assert error_body(refused)["code"] == "invalid_json"
    assert '"provider"' in error_body(refused)["message"]
    assert (await client.get(ROUTE)).json()["source"] == "default"
