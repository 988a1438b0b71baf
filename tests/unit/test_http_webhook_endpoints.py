"""The webhook endpoint routes in process (httpx over ASGI): admin keys only, secret shown once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from entrypoints.bootstrap import CardCheckout
from tests.helpers import (
    DECLINED,
    ENV,
    OTHER_ENV,
    card_payment,
    customer_with_card,
    error_body,
    error_of,
    finalized_invoice,
    keyed_client,
    keys_by_role,
)

ROUTE = "/api/v1/webhook_endpoints"
HOOK = {"url": "https://subscriber.example/hooks", "events": ["payment.failed"]}


@pytest.fixture
async def keys(checkout: CardCheckout) -> dict[str, str]:
    return await keys_by_role(checkout)


@pytest.fixture
async def client(checkout: CardCheckout, keys: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with keyed_client(checkout, keys["admin"]) as client:
        yield client


async def test_an_admin_creates_an_endpoint_and_sees_its_secret_only_then(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(ROUTE, json=HOOK)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("we_")
    assert body["secret"].startswith("whsec_")
    assert (body["object"], body["url"], body["events"], body["status"]) == (
        "webhook_endpoint", HOOK["url"], ["payment.failed"], "enabled",
    )  # fmt: skip
    listed = (await client.get(ROUTE)).json()
    assert [e["id"] for e in listed["items"]] == [body["id"]]
    one = (await client.get(f"{ROUTE}/{body['id']}")).json()
    assert "secret" not in listed["items"][0]
    assert "secret" not in one
    assert body["secret"] not in (await client.get(ROUTE)).text
    everything = await client.post(ROUTE, json={"url": "https://everything.example/in"})
    assert everything.json()["events"] == ["*"]


@pytest.mark.parametrize("role", ["read", "write"])
async def test_only_admin_keys_manage_endpoints(
    client: httpx.AsyncClient, keys: dict[str, str], role: str
) -> None:
    headers = {"Authorization": f"Bearer {keys[role]}"}
    for response in (
        await client.post(ROUTE, json=HOOK, headers=headers),
        await client.get(ROUTE, headers=headers),
        await client.delete(f"{ROUTE}/we_1", headers=headers),
    ):
        assert response.status_code == 403
        assert error_body(response)["code"] == "forbidden"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://x.example/hooks"}, "url"),
        ({"events": ["payment.failed"]}, "url"),
        ({"url": "https://x.example", "events": ["payment.exploded"]}, "events"),
        ({"url": "https://x.example", "enabled": True}, "enabled"),
    ],
)
async def test_a_bad_endpoint_is_400_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post(ROUTE, json=body)
    assert response.status_code == 400
    assert error_body(response)["code"] == "validation_error"
    assert error_body(response)["details"]["field"] == field


async def test_delete_stops_an_endpoint_and_another_environment_cannot(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    endpoint_id = (await client.post(ROUTE, json=HOOK)).json()["id"]
    other = {"Authorization": f"Bearer {keys['other']}", "X-Environment-ID": OTHER_ENV}
    refused = await client.delete(f"{ROUTE}/{endpoint_id}", headers=other)
    assert refused.status_code == 404
    assert error_body(refused)["code"] == "not_found"
    assert (await client.get(f"{ROUTE}/{endpoint_id}")).status_code == 200
    deleted = await client.delete(f"{ROUTE}/{endpoint_id}")
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "deleted"
    assert (await client.get(f"{ROUTE}/{endpoint_id}")).status_code == 404
    assert (await client.delete(f"{ROUTE}/{endpoint_id}")).status_code == 404
    assert (await client.get(ROUTE)).json()["items"] == []


async def test_an_endpoints_deliveries_show_their_attempts(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    endpoint_id = (await client.post(ROUTE, json=HOOK)).json()["id"]
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    declined = await error_of(checkout.create_payment(ENV, card_payment(invoice)))
    response = await client.get(f"{ROUTE}/{endpoint_id}/deliveries", params={"limit": "5"})
    assert response.status_code == 200
    [delivery] = response.json()["items"]
    assert delivery["event_type"] == "payment.failed"
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == (
        "pending", 0, None,
    )  # fmt: skip
    assert delivery["event_id"].startswith("evt_")
    assert declined.code == "card_declined"
    bad_limit = await client.get(f"{ROUTE}/{endpoint_id}/deliveries", params={"limit": "0"})
    assert error_body(bad_limit)["details"]["field"] == "limit"
