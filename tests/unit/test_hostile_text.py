"""Text no row can hold is refused at the edge (400 naming the field) before anything is written:
lone surrogates, NUL and control characters, non-ASCII digits, card numbers as idempotency keys."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from core.model import Invoice
from entrypoints.bootstrap import CardCheckout
from tests.helpers import VISA, api_client, card_payment, customer_with_card, finalized_invoice

SURROGATE = "\ud800"
NUL = "\x00"
Json = dict[str, Any]
LISTS = ("/api/v1/payments", "/api/v1/customers", "/api/v1/invoices", "/api/v1/webhook_endpoints")


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(checkout) as client:
        yield client


@pytest.fixture
async def invoice(checkout: CardCheckout, client: httpx.AsyncClient) -> Invoice:
    return await finalized_invoice(checkout, await customer_with_card(checkout, VISA))


async def _counts(client: httpx.AsyncClient) -> dict[str, int]:
    counts = {}
    for path in LISTS:
        response = await client.get(path, params={"limit": "100"})
        assert response.status_code == 200, response.text
        counts[path] = len(response.json()["items"])
    return counts


def _raw(body: Json) -> bytes:
    """JSON with a lone surrogate written as the escape `\\ud800`, as an attacker sends it."""
    return json.dumps(body, ensure_ascii=True, default=str).encode()


async def _refused(response: httpx.Response, field: str | set[str]) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["field"] in ({field} if isinstance(field, str) else field)


# (path, body with `bad` in one place, the field named). `invoice` is the payable one.
Build = Callable[[Invoice, str], tuple[str, Json]]
PLACES: list[tuple[str, Build, str]] = [
    ("destination_id", lambda i, b: ("/payments", card_payment(i, destination_id=i.id + b)),
     "destination_id"),
    ("payment_method_id", lambda i, b: ("/payments", card_payment(i, payment_method_id="pm" + b)),
     "payment_method_id"),
    ("metadata value", lambda i, b: ("/payments", card_payment(i, metadata={"k": b})),
     "metadata.k"),
    ("metadata key", lambda i, b: ("/payments", card_payment(i, metadata={"k" + b: "v"})),
     "metadata"),
    ("currency", lambda i, b: ("/payments", card_payment(i, currency="us" + b)), "currency"),
    ("external_id", lambda i, b: ("/customers", {"external_id": "c" + b}), "external_id"),
    ("name", lambda i, b: ("/customers", {"external_id": "c1", "name": "Ann" + b}), "name"),
    ("email", lambda i, b: ("/customers", {"external_id": "c2", "email": f"a{b}@b.co"}), "email"),
    ("gateway_customer_id",
     lambda i, b: ("/customers", {"external_id": "c3", "gateway_customer_id": "cus" + b}),
     "gateway_customer_id"),
    ("invoice customer_id",
     lambda i, b: ("/invoices", {"customer_id": i.customer_id + b, "currency": "usd",
                                 "amount_due": "1.00"}), "customer_id"),
    ("invoice external_id",
     lambda i, b: ("/invoices", {"customer_id": i.customer_id, "currency": "usd",
                                 "amount_due": "1.00", "external_id": "x" + b}), "external_id"),
    ("webhook url",
     lambda i, b: ("/webhook_endpoints", {"url": f"https://example.com/{b}"}), "url"),
    ("webhook events", lambda i, b: ("/webhook_endpoints",
                                     {"url": "https://example.com/h", "events": ["*" + b]}),
     "events"),
    ("unknown field name", lambda i, b: ("/payments", {**card_payment(i), "x" + b: "v"}), "body"),
]  # fmt: skip


@pytest.mark.parametrize("bad", [SURROGATE, NUL, "\x01"], ids=["surrogate", "nul", "control"])
@pytest.mark.parametrize("place", PLACES, ids=[place[0] for place in PLACES])
async def test_text_no_row_can_hold_is_400_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, invoice: Invoice, place: tuple[str, Build, str], bad: str
) -> None:
    _, build, field = place
    path, body = build(invoice, bad)
    before = await _counts(client)
    response = await client.post(
        "/api/v1" + path, content=_raw(body), headers={"Content-Type": "application/json"}
    )
    await _refused(response, field)
    assert await _counts(client) == before


async def test_a_refund_reason_with_a_surrogate_is_400_and_the_payment_stays_unrefunded(
    checkout: CardCheckout, client: httpx.AsyncClient, invoice: Invoice
) -> None:
    paid = await client.post("/api/v1/payments", content=_raw(card_payment(invoice)),
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert paid.status_code == 201, paid.text
    payment_id = paid.json()["id"]
    response = await client.post(
        f"/api/v1/payments/{payment_id}/refunds",
        content=_raw({"reason": "oops" + SURROGATE}),
        headers={"Content-Type": "application/json"},
    )
    await _refused(response, "reason")
    payment = (await client.get(f"/api/v1/payments/{payment_id}")).json()
    assert payment["amount_refunded"] == "0.00"


async def test_a_multi_line_refund_reason_and_metadata_value_are_still_accepted(
    client: httpx.AsyncClient, invoice: Invoice
) -> None:
    body = card_payment(invoice, metadata={"note": "line one\nline two\ttabbed"})
    paid = await client.post("/api/v1/payments", content=_raw(body),
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert paid.status_code == 201, paid.text
    assert paid.json()["metadata"]["note"] == "line one\nline two\ttabbed"
    refund = await client.post(
        f"/api/v1/payments/{paid.json()['id']}/refunds", json={"reason": "asked\nby phone"}
    )
    assert refund.status_code == 201, refund.text


# superscript two, Arabic-Indic and fullwidth twelve: str.isdigit() says yes, int() reads some
@pytest.mark.parametrize("limit", ["\u00b2", "\u0661\u0662", "\uff11\uff12", "1\u00b2"])
@pytest.mark.parametrize("path", LISTS[:3])  # the lists that page
async def test_a_limit_in_other_than_ascii_digits_is_400_naming_it(
    client: httpx.AsyncClient, path: str, limit: str
) -> None:
    await _refused(await client.get(path, params={"limit": limit}), "limit")


@pytest.mark.parametrize("bad", ["%00", "%01", "%ED%A0%80"])
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/payments?starting_after=pay{bad}", "starting_after"),
        ("/api/v1/payments?customer_id=cus{bad}", "customer_id"),
        ("/api/v1/payments?destination_id=inv{bad}", "destination_id"),
        ("/api/v1/payments?payment_status=succeeded{bad}", "payment_status"),
        ("/api/v1/payments?created_gte=2026-01-01T00:00:00Z{bad}", "created_gte"),
        ("/api/v1/customers?external_id=c{bad}", "external_id"),
        ("/api/v1/invoices?customer_id=cus{bad}", "customer_id"),
    ],
)
async def test_nul_or_control_characters_in_a_query_are_400_naming_the_parameter(
    client: httpx.AsyncClient, path: str, name: str, bad: str
) -> None:
    response = await client.get(path.format(bad=bad))
    if bad == "%ED%A0%80":  # not UTF-8: read as U+FFFD, a plain character, so just not found
        assert response.status_code in (200, 400), response.text
    else:
        await _refused(response, name)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/payments/pay{bad}",
        "/api/v1/payments/pay{bad}/refunds",
        "/api/v1/customers/cus{bad}",
        "/api/v1/customers/cus{bad}/payment_methods",
        "/api/v1/invoices/inv{bad}",
    ],
)
@pytest.mark.parametrize("bad", ["%00", "%01", "%ED%A0%80"])
async def test_nul_or_control_characters_in_an_id_are_400_or_404_never_500(
    client: httpx.AsyncClient, path: str, bad: str
) -> None:
    response = await client.get(path.format(bad=bad))
    assert response.status_code in (400, 404), response.text
    assert response.json()["error"]["code"] in ("validation_error", "not_found") or response.json()[
        "error"
    ]["code"].endswith("_not_found")


async def test_a_nul_in_a_webhook_s_environment_is_refused_not_a_500(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/webhooks/stripe/env%00x", content=b"{}", headers={"Stripe-Signature": "t=1,v1=x"}
    )
    assert response.status_code in (400, 404), response.text


@pytest.mark.parametrize(
    "key",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242,4242,4242,4242",
        "order-4242-4242-4242-4242",
    ],
)
async def test_a_card_number_as_idempotency_key_is_400_unechoed_and_nothing_is_written(
    client: httpx.AsyncClient, invoice: Invoice, key: str
) -> None:
    before = await _counts(client)
    response = await client.post(
        "/api/v1/payments", content=_raw(card_payment(invoice)),
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
    )  # fmt: skip
    await _refused(response, "Idempotency-Key")
    assert "card" in response.json()["error"]["message"].lower()
    assert key not in response.text
    assert "".join(filter(str.isdigit, key)) not in response.text
    assert await _counts(client) == before


async def test_an_idempotency_key_with_a_control_character_is_400(
    client: httpx.AsyncClient, invoice: Invoice
) -> None:
    response = await client.post(
        "/api/v1/payments", content=_raw(card_payment(invoice)),
        headers={"Content-Type": "application/json", "Idempotency-Key": "key\x01"},
    )  # fmt: skip
    await _refused(response, "Idempotency-Key")


async def test_an_ordinary_idempotency_key_and_amount_still_work(
    client: httpx.AsyncClient, invoice: Invoice
) -> None:
    response = await client.post(
        "/api/v1/payments", content=_raw(card_payment(invoice, amount=Decimal("150.00"))),
        headers={"Content-Type": "application/json", "Idempotency-Key": "order-1234-retry-2"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
