"""Issue 18, finding 2: an environment links only gateway customers of its own.

Before, env_a could create a customer naming env_b's gateway customer and then list, charge and
replace env_b's saved cards. Two checks refuse it: the gateway customer's metadata names the
environment the service created it for, and storage lets one environment hold a gateway
customer at most.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.gateway import CustomerRequest
from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, OTHER_ENV, VISA, api_client, customer_with_card, error_of, sandbox


async def _gateway_customer(checkout: CardCheckout, **metadata: str) -> str:
    """A customer made at the gateway directly, as one migrated from elsewhere would be."""
    return await sandbox(checkout).create_customer(
        CustomerRequest(idempotency_key=f"direct-{sorted(metadata.items())}", metadata=metadata)
    )


async def test_another_environments_gateway_customer_is_not_adopted(
    checkout: CardCheckout,
) -> None:
    victim = await customer_with_card(checkout, VISA, env=OTHER_ENV)

    error = await error_of(
        checkout.create_customer(
            ENV, {"external_id": "thief", "gateway_customer_id": victim.gateway_customer_id}
        )
    )

    assert error.code == "gateway_customer_not_owned"
    assert error.details["gateway_customer_id"] == victim.gateway_customer_id
    assert list((await checkout.list_customers(ENV)).items) == []
    [card] = await checkout.list_payment_methods(OTHER_ENV, victim.id)
    assert card.is_default


async def test_a_gateway_customer_whose_metadata_names_another_environment_is_refused(
    checkout: CardCheckout,
) -> None:
    # No customer of OTHER_ENV holds it here: the gateway's word alone refuses it.
    foreign = await _gateway_customer(checkout, environment_id=OTHER_ENV)

    error = await error_of(
        checkout.create_customer(ENV, {"external_id": "x", "gateway_customer_id": foreign})
    )

    assert error.code == "gateway_customer_not_owned"


async def _own_accounts(checkout: CardCheckout) -> None:
    """ENV and OTHER_ENV each connected to a Stripe account of its own (here, one shared
    sandbox plays both, so a customer made elsewhere is reachable from each)."""
    checkout.gateways.stripe = lambda _key: sandbox(checkout)
    for environment in (ENV, OTHER_ENV):
        await checkout.create_environment("t", environment, environment_id=environment)
        await checkout.connect_gateway(
            environment, {"provider": "stripe", "secret_key": f"sk_test_{environment}"}
        )


async def test_a_gateway_customer_made_elsewhere_is_not_linked_through_a_shared_account(
    checkout: CardCheckout,
) -> None:
    # The default connection serves every environment: any tenant could have made it.
    migrated = await _gateway_customer(checkout)

    error = await error_of(
        checkout.create_customer(ENV, {"external_id": "m", "gateway_customer_id": migrated})
    )

    assert error.code == "gateway_customer_not_owned"
    assert list((await checkout.list_customers(ENV)).items) == []


async def test_a_gateway_customer_linked_by_another_environment_is_refused_without_metadata(
    checkout: CardCheckout,
) -> None:
    await _own_accounts(checkout)
    # Metadata says nothing: storage knows OTHER_ENV linked it first.
    migrated = await _gateway_customer(checkout)
    await checkout.create_customer(OTHER_ENV, {"external_id": "m", "gateway_customer_id": migrated})

    error = await error_of(
        checkout.create_customer(ENV, {"external_id": "m", "gateway_customer_id": migrated})
    )

    assert error.code == "gateway_customer_not_owned"
    assert list((await checkout.list_customers(ENV)).items) == []


async def test_an_own_or_unclaimed_gateway_customer_is_linked(checkout: CardCheckout) -> None:
    await _own_accounts(checkout)
    own = await _gateway_customer(checkout, environment_id=ENV)
    unclaimed = await _gateway_customer(checkout)

    first = await checkout.create_customer(ENV, {"external_id": "a", "gateway_customer_id": own})
    second = await checkout.create_customer(
        ENV, {"external_id": "b", "gateway_customer_id": unclaimed}
    )

    assert (first.gateway_customer_id, second.gateway_customer_id) == (own, unclaimed)


async def test_a_gateway_customer_already_linked_here_is_customer_already_exists(
    checkout: CardCheckout,
) -> None:
    first = await checkout.create_customer(ENV, {"external_id": "a"})

    error = await error_of(
        checkout.create_customer(
            ENV, {"external_id": "b", "gateway_customer_id": first.gateway_customer_id}
        )
    )

    assert error.code == "customer_already_exists"
    assert error.details["customer_id"] == first.id


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    await checkout.create_environment("t", "other", environment_id=OTHER_ENV)
    async with api_client(checkout, "write") as client:
        yield client


async def test_over_http_the_adoption_is_422_gateway_customer_not_owned(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    victim = await customer_with_card(checkout, VISA, env=OTHER_ENV)

    response = await client.post(
        "/api/v1/customers",
        json={"external_id": "thief", "gateway_customer_id": victim.gateway_customer_id},
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "gateway_customer_not_owned"
    assert (await client.get("/api/v1/customers")).json()["items"] == []
