"""The product page's flow over HTTP with the service pointed at a Stripe-compatible server.

STRIPE_SECRET_KEY and STRIPE_API_BASE point the real server at localstripe. Cards reach
localstripe through its API here (localstripe has no hosted pages); the service never sees them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import PRODUCT_PAGE_BODY
from tests.integration.conftest import attach_card
from tests.integration.http_server import Server, create_api_key

ENV = "env_stripe_e2e"


@pytest.fixture(scope="module")
def served(
    localstripe_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    directory = tmp_path_factory.mktemp("stripe-e2e")
    url = f"sqlite+aiosqlite:///{directory / 'db.sqlite3'}"
    key = create_api_key(url, ENV, "write")
    server = Server(
        url,
        directory / "server.log",
        {"STRIPE_SECRET_KEY": "sk_test_local", "STRIPE_API_BASE": localstripe_url},
    )
    server.start()
    yield server, key
    server.stop()


@pytest.mark.parametrize(
    ("number", "status", "outcome"),
    [
        ("4242424242424242", 201, "succeeded"),
        ("4000000000000341", 402, "card_declined"),
        ("4000002760003184", 402, "authentication_required"),
    ],
)
async def test_the_product_page_flow_over_http_on_stripe(
    served: tuple[Server, str], localstripe_url: str, number: str, status: int, outcome: str
) -> None:
    server, key = served
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
        customer = (
            await client.post("/api/v1/customers", json={"external_id": f"stripe-{number[-4:]}"})
        ).json()
        assert customer["gateway_customer_id"].startswith("cus_")
        await attach_card(localstripe_url, customer["gateway_customer_id"], number)
        cards = (await client.get(f"/api/v1/customers/{customer['id']}/payment_methods")).json()
        assert [(c["last4"], c["is_default"]) for c in cards["items"]] == [(number[-4:], True)]
        invoice = (
            await client.post(
                "/api/v1/invoices",
                json={"customer_id": customer["id"], "currency": "usd", "amount_due": "150.00",
                      "status": "FINALIZED"},
            )
        ).json()  # fmt: skip
        response = await client.post(
            "/api/v1/payments",
            content=PRODUCT_PAGE_BODY % invoice["id"].encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == status, response.text
        if status == 201:
            payment = response.json()
            assert payment["payment_status"] == outcome
            assert payment["metadata"]["stripe_payment_intent_id"].startswith("pi_")
            assert payment["metadata"]["card_last4"] == "4242"
            paid = (await client.get(f"/api/v1/invoices/{invoice['id']}")).json()
            assert paid["amount_remaining"] == "0.00"
        else:
            error = response.json()["error"]
            assert error["code"] == outcome
            failed = await client.get(f"/api/v1/payments/{error['details']['payment_id']}")
            assert failed.json()["payment_status"] == "failed"
