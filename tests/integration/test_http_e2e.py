"""The real service over real HTTP: `card-checkout serve` in a subprocess on SQLite and PostgreSQL,
and on SQLite pointed at localstripe (a Stripe-compatible server) through the real Stripe adapter.

One server per target for the whole module, keys made by `card-checkout api-keys create`.
Customers get saved cards the way users do: a setup page, submitted like a person would; at
localstripe, which has no hosted pages, the card is attached and made the default through its API,
as Stripe's page would. Every test makes its own customers and invoices, so tests never see each
other's data.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import attrs
import httpx
import pytest

from tests.helpers import PRODUCT_PAGE_BODY
from tests.integration.conftest import attach_card, emptied, migrated
from tests.integration.http_server import Server, create_api_key

ENV = "env_e2e"
OTHER_ENV = "env_e2e_other"
VISA = "4242424242424242"
# localstripe declines 0002, 9995 and 0069 when they are attached, so no customer can hold them;
# this one is attached and then declined (card_declined) when charged.
LOCALSTRIPE_DECLINED = "4000000000000341"
NO_CHECKOUT = "localstripe has no Checkout Sessions"
# A declining card's stand-in at localstripe, where one fails the charge with the same code, and
# what localstripe's failure says: (card, message, decline_code). Its declines name no
# decline_code, and it answers 3184 with a PaymentIntent in requires_action where Stripe answers
# an authentication_required error (the adapter words that case itself).
LOCALSTRIPE_DECLINES = {
    "4000000000000002": (LOCALSTRIPE_DECLINED, "Your card was declined.", None),
    "4000002760003184": (
        "4000002760003184",
        "The card requires authentication; use a payment link.",
        "authentication_required",
    ),
}
NO_SUCH_CARD = (
    "localstripe declines this card when it is attached, and none of its cards is declined "
    "with this code when charged"
)
TEST_CARD_NUMBERS = (
    VISA,
    "4000000000000002",
    "4000000000009995",
    "4000002760003184",
    "4000000000000069",
    LOCALSTRIPE_DECLINED,
)
PAYMENT_FIELDS = {
    "id", "object", "payment_status", "amount", "currency", "destination_type",
    "destination_id", "customer_id", "payment_method_type", "payment_method_id",
    "payment_gateway", "gateway_tracking_id", "amount_refunded", "error", "metadata",
    "created_at", "updated_at", "succeeded_at", "failed_at", "refunded_at",
}  # fmt: skip
NO_DEFAULT_MESSAGE = (
    "Customer must have a default payment method to make card payments. Please make a payment "
    "using payment link with save_card_and_make_default=true first."
)

RACERS = 24  # simultaneous payments for one invoice
Json = dict[str, Any]


@attrs.frozen
class Service:
    """The running server and the keys the CLI printed for it."""

    server: Server
    keys: dict[str, str]  # read, write, admin (for ENV) and other (write, for OTHER_ENV)
    localstripe_url: str | None = None  # where its gateway is, when not the sandbox

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def on_localstripe(self) -> bool:
        return self.localstripe_url is not None

    def headers(self, key: str = "write", environment: str = ENV) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}", "X-Environment-ID": environment}


# Fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "localstripe"])
def target(request: pytest.FixtureRequest) -> str:
    """Where the module's server keeps its data and charges: the sandbox gateway on SQLite or
    PostgreSQL, or SQLite with the real Stripe adapter pointed at localstripe."""
    return str(request.param)


@pytest.fixture(scope="module")
def database_url(
    target: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A migrated, empty database for the whole module (this module's one server uses it)."""
    if target != "postgresql":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('e2e') / 'card-checkout.sqlite3'}"
        asyncio.run(migrated(url))
        return url
    url = str(request.getfixturevalue("postgres_url"))
    asyncio.run(emptied(url))
    return url


@pytest.fixture(scope="module")
def service(
    target: str,
    database_url: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    keys = {role: create_api_key(database_url, ENV, role) for role in ("read", "write", "admin")}
    keys["other"] = create_api_key(database_url, OTHER_ENV, "write")
    localstripe_url, extra_env = None, None
    if target == "localstripe":
        localstripe_url = str(request.getfixturevalue("localstripe_url"))
        extra_env = {"STRIPE_SECRET_KEY": "sk_test_local", "STRIPE_API_BASE": localstripe_url}
    server = Server(database_url, tmp_path_factory.mktemp("server") / "stderr.log", extra_env)
    server.start()
    try:
        yield Service(server=server, keys=keys, localstripe_url=localstripe_url)
    finally:
        server.stop()


@pytest.fixture
def hosted_pages(service: Service) -> None:
    """Taken by tests that need the gateway's hosted pages: those skip on localstripe."""
    if service.on_localstripe:
        pytest.skip(NO_CHECKOUT)


needs_hosted_pages = pytest.mark.usefixtures("hosted_pages")


async def _has_request_id(response: httpx.Response) -> None:
    """Every response, from every route and every error, carries its request id."""
    assert response.headers.get("x-request-id"), (
        f"{response.request.method} {response.request.url} answered {response.status_code} "
        "without X-Request-ID"
    )


class Client(httpx.AsyncClient):
    """A client of the running service, which knows the service (so where cards are saved)."""

    def __init__(self, service: Service, headers: dict[str, str] | None = None) -> None:
        super().__init__(
            base_url=service.base_url,
            headers=headers or {},
            timeout=30,
            limits=httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS),
            event_hooks={"response": [_has_request_id]},
        )
        self.service = service


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Client]:
    """A client with the write key for ENV."""
    if not service.server.running:
        pytest.fail(f"the server is not running:\n{service.server.log()}")
    async with Client(service, service.headers()) as client:
        yield client


@pytest.fixture
async def anonymous(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client without any key or environment."""
    async with Client(service) as client:
        yield client


@pytest.fixture
async def other_env(service: Service) -> AsyncIterator[Client]:
    """A client with a write key for OTHER_ENV."""
    async with Client(service, service.headers("other", OTHER_ENV)) as client:
        yield client


# Helpers -------------------------------------------------------------------------------------


def _ok(response: httpx.Response, status: int) -> Json:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict)
    return body


def _error(response: httpx.Response, status: int, code: str) -> Json:
    """The one error shape, with that status and code; returns `details`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "type", "message", "details", "request_id"}, body
    assert body["error"]["request_id"] == response.headers["x-request-id"], body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"].strip()
    assert isinstance(body["error"]["details"], dict)
    return dict(body["error"]["details"])


def _utc(value: object) -> datetime:
    """An ISO 8601 time in UTC, spelled with Z."""
    assert isinstance(value, str)
    assert value.endswith("Z"), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None
    return parsed


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


async def _submit_hosted_page(client: httpx.AsyncClient, url: str, card: str) -> httpx.Response:
    """A person typing `card` on a sandbox hosted page and pressing the button."""
    page = await client.get(url)
    assert page.status_code == 200, page.text
    assert 'name="card_number"' in page.text
    [token] = re.findall(r'name="form_token" value="([^"]+)"', page.text)
    return await client.post(url, data={"card_number": card, "form_token": token})


async def new_customer(client: Client, card: str | None = VISA) -> Json:
    """A customer; with `card`, saved as its default through the setup page (at localstripe,
    through its API)."""
    customer = _ok(await client.post("/api/v1/customers", json={"external_id": _unique("c")}), 201)
    if card is not None and client.service.localstripe_url is not None:
        gateway_customer_id = customer["gateway_customer_id"]
        assert gateway_customer_id.startswith("cus_"), customer
        await attach_card(client.service.localstripe_url, gateway_customer_id, card)
    elif card is not None:
        setup = _ok(
            await client.post(f"/api/v1/customers/{customer['id']}/payment_methods/setup"), 201
        )
        saved = await _submit_hosted_page(client, setup["url"], card)
        assert saved.status_code == 200, saved.text
        assert "Card saved." in saved.text
    return customer


async def new_invoice(
    client: httpx.AsyncClient,
    customer: Json,
    amount: str = "150.00",
    currency: str = "usd",
    status: str = "FINALIZED",
) -> Json:
    body = {
        "customer_id": customer["id"],
        "currency": currency,
        "amount_due": amount,
        "status": status,
    }
    return _ok(await client.post("/api/v1/invoices", json=body), 201)


def card_payment(invoice: Json, **overrides: object) -> Json:
    body: Json = {
        "amount": invoice["amount_remaining"],
        "currency": invoice["currency"],
        "destination_id": invoice["id"],
        "destination_type": "INVOICE",
        "payment_method_type": "CARD",
        "process_payment": True,
        "payment_gateway": "stripe",
    }
    body.update(overrides)
    return body


async def paid_invoice(client: Client, amount: str = "150.00") -> tuple[Json, Json]:
    """A customer's invoice paid by its saved visa: (invoice, payment)."""
    invoice = await new_invoice(client, await new_customer(client), amount)
    payment = _ok(await client.post("/api/v1/payments", json=card_payment(invoice)), 201)
    assert payment["payment_status"] == "succeeded"
    return invoice, payment


async def payments_of(client: httpx.AsyncClient, invoice: Json) -> list[Json]:
    listed = _ok(
        await client.get("/api/v1/payments", params={"destination_id": invoice["id"]}), 200
    )
    return list(listed["items"])


async def get(client: httpx.AsyncClient, path: str) -> Json:
    return _ok(await client.get(path), 200)


# The product page's flow ---------------------------------------------------------------------


async def test_the_product_page_request_charges_the_saved_card_and_pays_the_invoice(
    api: Client,
) -> None:
    customer = await new_customer(api, VISA)
    [card] = (await get(api, f"/api/v1/customers/{customer['id']}/payment_methods"))["items"]
    invoice = await new_invoice(api, customer, "150.00")

    response = await api.post(
        "/api/v1/payments",
        content=PRODUCT_PAGE_BODY % invoice["id"].encode(),
        headers={"Content-Type": "application/json"},
    )

    payment = _ok(response, 201)
    assert set(payment) == PAYMENT_FIELDS
    assert payment["id"].startswith("pay_")
    assert payment["gateway_tracking_id"].startswith("pi_")
    created, succeeded = _utc(payment["created_at"]), _utc(payment["succeeded_at"])
    assert created <= succeeded <= _utc(payment["updated_at"])
    assert payment == {
        **payment,
        "object": "payment",
        "payment_status": "succeeded",
        "amount": "150.00",
        "currency": "usd",
        "destination_type": "INVOICE",
        "destination_id": invoice["id"],
        "customer_id": customer["id"],
        "payment_method_type": "CARD",
        "payment_method_id": card["id"],
        "payment_gateway": "stripe",
        "amount_refunded": "0.00",
        "error": None,
        "metadata": {
            "stripe_payment_intent_id": payment["gateway_tracking_id"],
            "card_last4": "4242",
            "card_brand": "visa",
        },
        "failed_at": None,
        "refunded_at": None,
    }
    assert await get(api, f"/api/v1/payments/{payment['id']}") == payment

    paid = await get(api, f"/api/v1/invoices/{invoice['id']}")
    assert _utc(paid["paid_at"]) >= created
    assert paid == {
        **invoice,
        "payment_status": "succeeded",
        "amount_paid": "150.00",
        "amount_remaining": "0.00",
        "amount_refunded": "0.00",
        "updated_at": paid["updated_at"],
        "paid_at": paid["paid_at"],
    }
    events = (await get(api, f"/api/v1/payments/{payment['id']}/events"))["items"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "initiated"),
        ("initiated", "processing"),
        ("processing", "succeeded"),
    ]


@pytest.mark.parametrize(
    ("card", "code", "message", "stripe_error_code", "decline_code", "next_action"),
    [
        ("4000000000000002", "card_declined", "Your card was declined.",
         "card_declined", "generic_decline", "contact_bank"),
        ("4000000000009995", "insufficient_funds", "Your card has insufficient funds.",
         "card_declined", "insufficient_funds", "use_different_payment_method"),
        ("4000002760003184", "authentication_required",
         "Your card was declined. This transaction requires authentication.",
         "authentication_required", "authentication_required", "create_payment_link"),
        ("4000000000000069", "expired_card", "Your card has expired.",
         "expired_card", "expired_card", "update_payment_method"),
    ],
)  # fmt: skip
async def test_each_declining_test_card_fails_the_payment_with_402_and_what_to_do(
    api: Client,
    card: str,
    code: str,
    message: str,
    stripe_error_code: str,
    decline_code: str,
    next_action: str,
) -> None:
    decline: str | None = decline_code
    if api.service.on_localstripe:
        if card not in LOCALSTRIPE_DECLINES:
            pytest.skip(NO_SUCH_CARD)
        card, message, decline = LOCALSTRIPE_DECLINES[card]
    customer = await new_customer(api, card)
    invoice = await new_invoice(api, customer)

    response = await api.post("/api/v1/payments", json=card_payment(invoice))

    details = _error(response, 402, code)
    assert response.json()["error"]["message"] == message
    payment_id = details["payment_id"]
    assert payment_id.startswith("pay_")
    expected = {
        "payment_id": payment_id,
        "customer_id": customer["id"],
        "invoice_id": invoice["id"],
        "stripe_error_code": stripe_error_code,
        "decline_code": decline,
        "next_action": next_action,
    }
    if decline is None:  # a localstripe decline names none
        del expected["decline_code"]
    assert details == expected
    payment = await get(api, f"/api/v1/payments/{payment_id}")
    assert payment["payment_status"] == "failed"
    assert payment["error"] == {"code": code, "message": message}
    assert payment["metadata"]["card_last4"] == card[-4:]
    _utc(payment["failed_at"])
    assert payment["succeeded_at"] is None
    failed_invoice = await get(api, f"/api/v1/invoices/{invoice['id']}")
    assert failed_invoice["payment_status"] == "failed"
    assert failed_invoice["amount_remaining"] == "150.00"
    assert failed_invoice["paid_at"] is None


async def test_a_customer_without_a_default_card_gets_402_no_default_payment_method(
    api: Client,
) -> None:
    customer = await new_customer(api, card=None)
    invoice = await new_invoice(api, customer)

    response = await api.post("/api/v1/payments", json=card_payment(invoice))

    details = _error(response, 402, "no_default_payment_method")
    assert response.json()["error"]["message"] == NO_DEFAULT_MESSAGE
    assert details == {
        "payment_id": details["payment_id"],
        "customer_id": customer["id"],
        "invoice_id": invoice["id"],
        "next_action": "create_payment_link",
    }
    payment = await get(api, f"/api/v1/payments/{details['payment_id']}")
    assert payment["payment_status"] == "failed"
    assert payment["error"] == {"code": "no_default_payment_method", "message": NO_DEFAULT_MESSAGE}


async def test_a_payment_left_initiated_is_charged_by_process(api: Client) -> None:
    customer = await new_customer(api)
    invoice = await new_invoice(api, customer, "42.50")

    initiated = _ok(
        await api.post("/api/v1/payments", json=card_payment(invoice, process_payment=False)), 201
    )
    assert initiated["payment_status"] == "initiated"
    assert initiated["gateway_tracking_id"] is None
    assert (await get(api, f"/api/v1/invoices/{invoice['id']}"))["amount_remaining"] == "42.50"

    processed = _ok(await api.post(f"/api/v1/payments/{initiated['id']}/process"), 201)
    assert processed["id"] == initiated["id"]
    assert processed["payment_status"] == "succeeded"
    assert processed["amount"] == "42.50"
    assert processed["metadata"]["card_last4"] == "4242"
    assert processed["gateway_tracking_id"].startswith("pi_")
    paid = await get(api, f"/api/v1/invoices/{invoice['id']}")
    assert (paid["payment_status"], paid["amount_remaining"]) == ("succeeded", "0.00")

    again = await api.post(f"/api/v1/payments/{initiated['id']}/process")
    assert _error(again, 409, "invalid_state_transition")["actual"] == "succeeded"


# Requests the contract refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["destination_type", "destination_id", "payment_method_type", "payment_gateway", "amount",
     "currency", "process_payment"],
)  # fmt: skip
async def test_a_payment_missing_a_required_field_is_400_naming_it(api: Client, field: str) -> None:
    invoice = await new_invoice(api, await new_customer(api, card=None))
    body = card_payment(invoice)
    del body[field]

    response = await api.post("/api/v1/payments", json=body)

    assert _error(response, 400, "validation_error")["field"] == field
    assert await payments_of(api, invoice) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"favourite_colour": "blue"}, "favourite_colour"),
        ({"amount": "150.001"}, "amount"),
        ({"amount": "-150.00"}, "amount"),
        ({"amount": 150}, None),  # a JSON integer is an exact amount too: accepted
        ({"currency": "xyz"}, "currency"),
        ({"destination_type": "SUBSCRIPTION"}, "destination_type"),
        ({"payment_gateway": "paypal"}, "payment_gateway"),
        ({"process_payment": "yes"}, "process_payment"),
        (
            {"metadata": {"stripe_payment_intent_id": "pi_fake"}},
            "metadata.stripe_payment_intent_id",
        ),
        ({"save_card_and_make_default": True}, "save_card_and_make_default"),
    ],
)
async def test_a_payment_with_a_wrong_field_is_400_naming_it_and_records_nothing(
    api: Client, overrides: Json, field: str | None
) -> None:
    invoice = await new_invoice(api, await new_customer(api))

    response = await api.post("/api/v1/payments", json=card_payment(invoice, **overrides))

    if field is None:
        assert _ok(response, 201)["amount"] == "150.00"
        return
    assert _error(response, 400, "validation_error")["field"] == field
    assert await payments_of(api, invoice) == []


@pytest.mark.parametrize(
    ("place", "field"),
    [("metadata", "metadata.k"), ("payment_method_id", "payment_method_id")],
)
@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800"], ids=["nul", "surrogate"])
async def test_text_no_row_can_hold_is_400_and_records_nothing(
    api: Client, anonymous: httpx.AsyncClient, place: str, field: str, bad: str
) -> None:
    invoice = await new_invoice(api, await new_customer(api))
    value = {"k": "v"} if place == "metadata" else "pm_x"
    body = json.dumps(card_payment(invoice, **{place: value}))
    body = body.replace('"v"' if place == "metadata" else '"pm_x"', f'"x{bad}"', 1)

    response = await api.post(
        "/api/v1/payments", content=body.encode(), headers={"Content-Type": "application/json"}
    )

    assert _error(response, 400, "validation_error")["field"] == field
    assert await payments_of(api, invoice) == []
    assert (await api.get("/api/v1/payments")).status_code == 200
    for path in (
        "/api/v1/payments/pay_%00",
        "/api/v1/payments?starting_after=pay_%00",
        "/api/v1/customers?external_id=%00",
    ):
        assert (await api.get(path)).status_code in (400, 404), path
    for page in ("/sandbox/checkout/cs_%00", "/sandbox/checkout/cs_%ED%A0%80"):
        if not api.service.on_localstripe:
            assert (await anonymous.get(page)).status_code in (400, 404), page
    webhook = await anonymous.post(
        "/api/v1/webhooks/stripe/env%00", content=b"{}", headers={"Stripe-Signature": "t=1,v1=x"}
    )
    assert webhook.status_code in (400, 404), webhook.text


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[]", "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b'{"amount": NaN}', "application/json", 400, "invalid_json"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b"amount=150.00", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_refused(
    api: Client, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = await api.post(
        "/api/v1/payments", content=content, headers={"Content-Type": content_type}
    )
    _error(response, status, code)


async def test_a_body_over_64_kib_is_413_with_or_without_a_content_length(
    api: Client,
) -> None:
    invoice = await new_invoice(api, await new_customer(api))
    body = card_payment(invoice, metadata={"note": "x" * 500})
    padded = httpx.Request("POST", "/", json=body).content.replace(b"{", b"{" + b" " * 66_000, 1)
    assert len(padded) > 64 * 1024

    declared = await api.post(
        "/api/v1/payments", content=padded, headers={"Content-Type": "application/json"}
    )
    _error(declared, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 8192):
            yield padded[start : start + 8192]

    streamed = await api.post(
        "/api/v1/payments", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    _error(streamed, 413, "payload_too_large")
    assert await payments_of(api, invoice) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"card_number": "4242424242424242"}, "card_number"),
        ({"metadata": {"note": "4242 4242 4242 4242"}}, "metadata.note"),
        ({"payment_method_id": "4000-0000-0000-0002"}, "payment_method_id"),
        ({"cvc": "123"}, "cvc"),
    ],
)
async def test_card_data_in_a_payment_is_400_and_never_echoed(
    api: Client, service: Service, overrides: Json, field: str
) -> None:
    invoice = await new_invoice(api, await new_customer(api))

    response = await api.post("/api/v1/payments", json=card_payment(invoice, **overrides))

    details = _error(response, 400, "validation_error")
    assert details["field"] == field
    assert [entry["field"] for entry in details["fields"]] == [field]
    # The request id is random hex: it may hold any four digits by chance.
    answered = response.text.replace(response.json()["error"]["request_id"], "")
    for value in overrides.values():
        for secret in re.findall(r"\d{3,}", str(value)):
            assert secret not in answered
    assert "4242" not in answered
    assert "0002" not in answered
    assert await payments_of(api, invoice) == []


async def test_an_amount_or_currency_that_contradicts_the_invoice_is_422(
    api: Client,
) -> None:
    invoice = await new_invoice(api, await new_customer(api), "150.00")

    amount = await api.post("/api/v1/payments", json=card_payment(invoice, amount="149.99"))
    assert _error(amount, 422, "amount_mismatch") == {
        "invoice_id": invoice["id"],
        "field": "amount",
        "expected": "150.00",
        "actual": "149.99",
    }
    currency = await api.post("/api/v1/payments", json=card_payment(invoice, currency="EUR"))
    assert _error(currency, 422, "currency_mismatch") == {
        "invoice_id": invoice["id"],
        "field": "currency",
        "expected": "usd",
        "actual": "eur",
    }
    assert await payments_of(api, invoice) == []


async def test_an_invoice_that_is_not_payable_is_409_with_its_reason(
    api: Client,
) -> None:
    customer = await new_customer(api)

    draft = await new_invoice(api, customer, status="DRAFT")
    response = await api.post("/api/v1/payments", json=card_payment(draft))
    assert _error(response, 409, "invoice_not_finalized")["invoice_id"] == draft["id"]

    voided = await new_invoice(api, customer)
    assert (
        _ok(await api.post(f"/api/v1/invoices/{voided['id']}/void"), 200)["invoice_status"]
        == "VOIDED"
    )
    response = await api.post("/api/v1/payments", json=card_payment(voided))
    assert _error(response, 409, "invoice_voided")["invoice_id"] == voided["id"]

    paid, payment = await paid_invoice(api)
    response = await api.post("/api/v1/payments", json=card_payment(paid))
    assert _error(response, 409, "invoice_already_paid")["invoice_id"] == paid["id"]
    assert [p["id"] for p in await payments_of(api, paid)] == [payment["id"]]

    busy = await new_invoice(api, customer)
    first = _ok(
        await api.post("/api/v1/payments", json=card_payment(busy, process_payment=False)), 201
    )
    response = await api.post("/api/v1/payments", json=card_payment(busy))
    details = _error(response, 409, "payment_in_progress")
    assert (details["invoice_id"], details["payment_id"]) == (busy["id"], first["id"])
    void_busy = await api.post(f"/api/v1/invoices/{busy['id']}/void")
    assert _error(void_busy, 409, "payment_in_progress")["payment_id"] == first["id"]
    for invoice in (draft, voided, busy):
        assert len(await payments_of(api, invoice)) == (1 if invoice is busy else 0)


async def test_ids_that_do_not_exist_are_404_with_the_resource_named(
    api: Client,
) -> None:
    missing = await api.post(
        "/api/v1/payments",
        json=card_payment({"id": "inv_missing", "amount_remaining": "1.00", "currency": "usd"}),
    )
    assert _error(missing, 404, "invoice_not_found") == {"invoice_id": "inv_missing"}
    _error(await api.get("/api/v1/invoices/inv_missing"), 404, "invoice_not_found")
    _error(await api.get("/api/v1/payments/pay_missing"), 404, "payment_not_found")
    _error(await api.post("/api/v1/payments/pay_missing/process"), 404, "payment_not_found")
    _error(await api.post("/api/v1/payments/pay_missing/refunds"), 404, "payment_not_found")
    _error(await api.get("/api/v1/payments/pay_missing/events"), 404, "payment_not_found")
    _error(await api.get("/api/v1/customers/cust_missing"), 404, "customer_not_found")
    _error(
        await api.post("/api/v1/customers/cust_missing/payment_methods/setup"),
        404,
        "customer_not_found",
    )
    no_customer = await api.post(
        "/api/v1/invoices",
        json={"customer_id": "cust_missing", "currency": "usd", "amount_due": "1.00"},
    )
    _error(no_customer, 404, "customer_not_found")


async def test_unknown_routes_and_wrong_methods_answer_in_the_error_shape(
    api: Client, anonymous: httpx.AsyncClient
) -> None:
    _error(await api.get("/api/v1/nothing-here"), 404, "not_found")
    _error(await anonymous.get("/nothing-here"), 404, "not_found")
    _error(await api.delete("/api/v1/payments"), 405, "method_not_allowed")
    _error(await api.put("/api/v1/payments/pay_missing"), 405, "method_not_allowed")
    _error(await anonymous.post("/healthz"), 405, "method_not_allowed")


async def test_a_405_names_every_method_the_path_serves_in_allow(api: Client) -> None:
    for path, served in (
        ("/api/v1/payments", {"GET", "HEAD", "POST"}),
        ("/api/v1/payments/pay_missing/refunds", {"GET", "HEAD", "POST"}),
    ):
        wrong = await api.delete(path)
        _error(wrong, 405, "method_not_allowed")
        assert set(wrong.headers["allow"].replace(" ", "").split(",")) == served


# Keys and environments -----------------------------------------------------------------------


async def test_requests_without_a_usable_key_are_401_or_403(
    service: Service, anonymous: httpx.AsyncClient
) -> None:
    path = "/api/v1/payments"
    _error(await anonymous.get(path, headers={"X-Environment-ID": ENV}), 401, "unauthorized")
    unknown = {"Authorization": "Bearer ck_not_a_key", "X-Environment-ID": ENV}
    _error(await anonymous.get(path, headers=unknown), 401, "unauthorized")
    _error(await anonymous.get(path, headers={"x-api-key": "ck_nope"}), 401, "unauthorized")
    another = service.headers("write", OTHER_ENV)
    _error(await anonymous.get(path, headers=another), 403, "forbidden")
    _error(await anonymous.post(path, json={}, headers=another), 403, "forbidden")
    _error(await anonymous.get(path, headers=service.headers("other", ENV)), 403, "forbidden")
    no_environment = {"Authorization": f"Bearer {service.keys['write']}"}
    missing = _error(await anonymous.get(path, headers=no_environment), 400, "missing_environment")
    assert missing == {"field": "X-Environment-ID"}


async def test_a_read_key_reads_but_may_not_write_and_x_api_key_is_accepted(
    service: Service, api: Client, anonymous: httpx.AsyncClient
) -> None:
    invoice, payment = await paid_invoice(api)
    read = {"x-api-key": service.keys["read"], "X-Environment-ID": ENV}

    assert (await anonymous.get(f"/api/v1/payments/{payment['id']}", headers=read)).json() == (
        await get(api, f"/api/v1/payments/{payment['id']}")
    )
    _ok(await anonymous.get("/api/v1/invoices", headers=service.headers("read")), 200)

    refused = await anonymous.post(
        "/api/v1/payments", json=card_payment(invoice), headers=service.headers("read")
    )
    assert _error(refused, 403, "forbidden") == {"expected": "write", "actual": "read"}
    refund = await anonymous.post(f"/api/v1/payments/{payment['id']}/refunds", headers=read)
    _error(refund, 403, "forbidden")
    assert (await get(api, f"/api/v1/payments/{payment['id']}"))["amount_refunded"] == "0.00"

    admin = await anonymous.post(
        "/api/v1/customers",
        json={"external_id": _unique("admin")},
        headers={"x-api-key": service.keys["admin"], "X-Environment-ID": ENV},
    )
    _ok(admin, 201)


async def test_another_environments_data_is_invisible(api: Client, other_env: Client) -> None:
    invoice, payment = await paid_invoice(api)
    customer_id = payment["customer_id"]

    _error(await other_env.get(f"/api/v1/payments/{payment['id']}"), 404, "payment_not_found")
    _error(await other_env.get(f"/api/v1/invoices/{invoice['id']}"), 404, "invoice_not_found")
    _error(await other_env.get(f"/api/v1/customers/{customer_id}"), 404, "customer_not_found")
    refund = await other_env.post(f"/api/v1/payments/{payment['id']}/refunds")
    _error(refund, 404, "payment_not_found")
    pay = await other_env.post("/api/v1/payments", json=card_payment(invoice))
    _error(pay, 404, "invoice_not_found")
    listed = await get(other_env, f"/api/v1/payments?customer_id={customer_id}")
    assert listed == {"items": [], "has_more": False}
    assert (await get(api, f"/api/v1/payments/{payment['id']}"))["amount_refunded"] == "0.00"


# Idempotency ---------------------------------------------------------------------------------


async def test_a_repeat_with_the_same_key_replays_the_answer_and_another_body_is_422(
    api: Client,
) -> None:
    invoice = await new_invoice(api, await new_customer(api))
    key = {"Idempotency-Key": _unique("pay")}

    first = await api.post("/api/v1/payments", json=card_payment(invoice), headers=key)
    again = await api.post("/api/v1/payments", json=card_payment(invoice), headers=key)

    assert _ok(first, 201)["payment_status"] == "succeeded"
    assert "idempotent-replayed" not in first.headers
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    other = await api.post(
        "/api/v1/payments", json=card_payment(invoice, metadata={"order": "2"}), headers=key
    )
    _error(other, 422, "idempotency_key_reused")
    assert [p["id"] for p in await payments_of(api, invoice)] == [first.json()["id"]]


async def test_a_replayed_failure_is_the_same_402(api: Client) -> None:
    declined = LOCALSTRIPE_DECLINED if api.service.on_localstripe else "4000000000000002"
    invoice = await new_invoice(api, await new_customer(api, declined))
    key = {"Idempotency-Key": _unique("declined")}

    first = await api.post("/api/v1/payments", json=card_payment(invoice), headers=key)
    again = await api.post("/api/v1/payments", json=card_payment(invoice), headers=key)

    _error(first, 402, "card_declined")
    # The same answer, but for the id of the request it answers.
    assert again.json()["error"]["request_id"] == again.headers["x-request-id"]
    assert again.json()["error"]["request_id"] != first.json()["error"]["request_id"]
    replayed = {k: v for k, v in again.json()["error"].items() if k != "request_id"}
    stored = {k: v for k, v in first.json()["error"].items() if k != "request_id"}
    assert (again.status_code, replayed) == (402, stored)
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await payments_of(api, invoice)) == 1


async def test_idempotency_keys_are_scoped_to_the_environment(
    api: Client, other_env: Client
) -> None:
    key = {"Idempotency-Key": _unique("shared")}
    here = await new_invoice(api, await new_customer(api), "10.00")
    there = await new_invoice(other_env, await new_customer(other_env), "20.00")

    first = await api.post("/api/v1/payments", json=card_payment(here), headers=key)
    elsewhere = await other_env.post("/api/v1/payments", json=card_payment(there), headers=key)

    assert _ok(first, 201)["amount"] == "10.00"
    paid_there = _ok(elsewhere, 201)
    assert "idempotent-replayed" not in elsewhere.headers
    assert (paid_there["amount"], paid_there["destination_id"]) == ("20.00", there["id"])
    assert paid_there["id"] != first.json()["id"]


async def test_a_malformed_idempotency_key_is_400(api: Client) -> None:
    invoice = await new_invoice(api, await new_customer(api))
    response = await api.post(
        "/api/v1/payments", json=card_payment(invoice), headers={"Idempotency-Key": "k" * 256}
    )
    assert _error(response, 400, "validation_error")["field"] == "Idempotency-Key"
    assert await payments_of(api, invoice) == []


async def test_simultaneous_payments_for_one_invoice_charge_it_exactly_once(
    service: Service,
) -> None:
    async with Client(service, service.headers()) as api:
        invoice = await new_invoice(api, await new_customer(api))
        body = card_payment(invoice)

        async def attempt(i: int) -> httpx.Response:
            # Half with keys of their own, half without: the invoice decides, not the keys.
            headers = {"Idempotency-Key": _unique(f"race-{i}")} if i % 2 else {}
            return await api.post("/api/v1/payments", json=body, headers=headers)

        responses = await asyncio.gather(*(attempt(i) for i in range(RACERS)))

        outcomes = Counter(
            "succeeded" if r.status_code == 201 else f"{r.status_code} {r.json()['error']['code']}"
            for r in responses
        )
        assert outcomes["succeeded"] == 1, outcomes
        assert set(outcomes) <= {
            "succeeded", "409 payment_in_progress", "409 invoice_already_paid"
        }, outcomes  # fmt: skip
        [winner] = [r.json() for r in responses if r.status_code == 201]
        assert winner["payment_status"] == "succeeded"
        assert [p["id"] for p in await payments_of(api, invoice)] == [winner["id"]]
        paid = await get(api, f"/api/v1/invoices/{invoice['id']}")
        assert (paid["amount_paid"], paid["amount_remaining"]) == ("150.00", "0.00")


# Refunds -------------------------------------------------------------------------------------


async def test_a_partial_then_the_remaining_refund_refunds_the_payment_and_never_more(
    api: Client,
) -> None:
    invoice, payment = await paid_invoice(api, "150.00")
    refunds = f"/api/v1/payments/{payment['id']}/refunds"

    partial = _ok(await api.post(refunds, json={"amount": "50.00", "reason": "damaged"}), 201)
    assert partial["id"].startswith("re_")
    assert partial == {
        **partial,
        "object": "refund",
        "payment_id": payment["id"],
        "amount": "50.00",
        "currency": "usd",
        "status": "succeeded",
        "reason": "damaged",
        "error": None,
    }
    assert partial["gateway_refund_id"]
    _utc(partial["created_at"])
    after_partial = await get(api, f"/api/v1/payments/{payment['id']}")
    assert (after_partial["payment_status"], after_partial["amount_refunded"]) == (
        "partially_refunded",
        "50.00",
    )
    assert (await get(api, f"/api/v1/invoices/{invoice['id']}"))["amount_refunded"] == "50.00"

    too_much = await api.post(refunds, json={"amount": "100.01"})
    assert _error(too_much, 422, "refund_exceeds_payment") == {
        "payment_id": payment["id"],
        "field": "amount",
        "expected": "at most 100.00",
        "actual": "100.01",
    }

    rest = _ok(await api.post(refunds), 201)
    assert (rest["amount"], rest["status"], rest["reason"]) == ("100.00", "succeeded", None)
    refunded = await get(api, f"/api/v1/payments/{payment['id']}")
    assert (refunded["payment_status"], refunded["amount_refunded"]) == ("refunded", "150.00")
    _utc(refunded["refunded_at"])
    invoice_after = await get(api, f"/api/v1/invoices/{invoice['id']}")
    assert (invoice_after["payment_status"], invoice_after["amount_refunded"]) == (
        "refunded",
        "150.00",
    )
    listed = await get(api, refunds)
    assert [r["id"] for r in listed["items"]] == [partial["id"], rest["id"]]
    _error(await api.post(refunds, json={"amount": "0.01"}), 409, "invalid_state_transition")


# Payment links -------------------------------------------------------------------------------


@needs_hosted_pages
async def test_a_payment_link_saves_the_card_so_later_card_payments_go_off_session(
    service: Service, api: Client
) -> None:
    customer = await new_customer(api, card=None)
    invoice = await new_invoice(api, customer, "80.00")
    body = card_payment(
        invoice, payment_method_type="PAYMENT_LINK", save_card_and_make_default=True
    )

    link = _ok(await api.post("/api/v1/payments", json=body), 201)

    assert link["payment_status"] == "processing"
    assert link["payment_url"].startswith(f"{service.base_url}/sandbox/checkout/")
    page = await api.get(link["payment_url"])
    assert "80.00 USD" in page.text
    completed = await _submit_hosted_page(api, link["payment_url"], VISA)
    assert completed.status_code == 200, completed.text
    assert "Payment complete." in completed.text

    paid_by_link = await get(api, f"/api/v1/payments/{link['id']}")
    assert paid_by_link["payment_status"] == "succeeded"
    assert paid_by_link["metadata"]["card_last4"] == "4242"
    paid = await get(api, f"/api/v1/invoices/{invoice['id']}")
    assert (paid["payment_status"], paid["amount_remaining"]) == ("succeeded", "0.00")
    [card] = (await get(api, f"/api/v1/customers/{customer['id']}/payment_methods"))["items"]
    assert (card["last4"], card["brand"], card["is_default"]) == ("4242", "visa", True)
    assert set(card) == {"id", "brand", "last4", "exp_month", "exp_year", "is_default"}
    again = await api.post(link["payment_url"], data={"card_number": VISA})
    assert again.status_code == 402
    assert "Payment complete." not in again.text
    assert (await get(api, f"/api/v1/invoices/{invoice['id']}"))["amount_paid"] == "80.00"

    next_invoice = await new_invoice(api, customer, "35.00")
    off_session = _ok(await api.post("/api/v1/payments", json=card_payment(next_invoice)), 201)
    assert off_session["payment_status"] == "succeeded"
    assert off_session["payment_method_id"] == card["id"]
    assert off_session["metadata"]["card_last4"] == "4242"


@needs_hosted_pages
async def test_a_payment_paid_through_a_link_names_its_payment_intent_in_metadata(
    api: Client,
) -> None:
    invoice = await new_invoice(api, await new_customer(api, card=None), "12.00")
    body = card_payment(invoice, payment_method_type="PAYMENT_LINK")
    link = _ok(await api.post("/api/v1/payments", json=body), 201)
    completed = await _submit_hosted_page(api, link["payment_url"], VISA)
    assert completed.status_code == 200, completed.text

    paid = await get(api, f"/api/v1/payments/{link['id']}")

    assert paid["payment_status"] == "succeeded"
    assert paid["gateway_tracking_id"].startswith("pi_")
    assert paid["metadata"] == {
        "stripe_payment_intent_id": paid["gateway_tracking_id"],
        "card_last4": "4242",
        "card_brand": "visa",
    }


@needs_hosted_pages
async def test_a_hosted_page_refuses_a_card_that_is_not_a_test_card(
    api: Client,
) -> None:
    customer = await new_customer(api, card=None)
    setup = _ok(await api.post(f"/api/v1/customers/{customer['id']}/payment_methods/setup"), 201)

    refused = await _submit_hosted_page(api, setup["url"], "5555555555554444")

    assert refused.status_code == 402
    cards = await get(api, f"/api/v1/customers/{customer['id']}/payment_methods")
    assert cards["items"] == []
    assert (await api.get(f"{setup['url']}x")).status_code == 404


# Currencies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "json_amount", "shown", "zero", "refund", "remaining", "too_precise"),
    [
        ("jpy", b"1500", "1500", "0", "500", "1000", "1500.5"),
        ("KWD", b"1.250", "1.250", "0.000", "0.250", "1.000", "1.2501"),
    ],
)
async def test_zero_and_three_decimal_currencies_keep_their_exact_amounts(
    api: Client,
    currency: str,
    json_amount: bytes,
    shown: str,
    zero: str,
    refund: str,
    remaining: str,
    too_precise: str,
) -> None:
    customer = await new_customer(api)
    invoice = await new_invoice(api, customer, shown, currency)
    assert (invoice["currency"], invoice["amount_due"]) == (currency.lower(), shown)
    imprecise = await api.post("/api/v1/payments", json=card_payment(invoice, amount=too_precise))
    assert _error(imprecise, 400, "validation_error")["field"] == "amount"

    raw = (
        b'{"amount": %s, "currency": "%s", "destination_id": "%s", "destination_type": "INVOICE",'
        b' "payment_method_type": "CARD", "process_payment": true, "payment_gateway": "stripe"}'
    ) % (json_amount, currency.encode(), invoice["id"].encode())
    payment = _ok(
        await api.post(
            "/api/v1/payments", content=raw, headers={"Content-Type": "application/json"}
        ),
        201,
    )

    assert (payment["payment_status"], payment["amount"]) == ("succeeded", shown)
    assert payment["currency"] == currency.lower()
    paid = await get(api, f"/api/v1/invoices/{invoice['id']}")
    assert (paid["amount_paid"], paid["amount_remaining"]) == (shown, zero)
    refunded = _ok(
        await api.post(f"/api/v1/payments/{payment['id']}/refunds", json={"amount": refund}), 201
    )
    assert (refunded["amount"], refunded["currency"]) == (refund, currency.lower())
    after = await get(api, f"/api/v1/payments/{payment['id']}")
    assert after["amount_refunded"] == refund
    assert after["payment_status"] == "partially_refunded"
    rest = _ok(await api.post(f"/api/v1/payments/{payment['id']}/refunds"), 201)
    assert rest["amount"] == remaining


# Listing -------------------------------------------------------------------------------------


async def test_payments_list_filters_and_pages_newest_first(api: Client) -> None:
    customer = await new_customer(api)
    made = []
    for amount in ("1.00", "2.00", "3.00"):
        invoice = await new_invoice(api, customer, amount)
        made.append(_ok(await api.post("/api/v1/payments", json=card_payment(invoice)), 201))
    pending = await new_invoice(api, customer, "4.00")
    made.append(
        _ok(await api.post("/api/v1/payments", json=card_payment(pending, process_payment=False)),
            201)
    )  # fmt: skip
    a, b, c, d = (p["id"] for p in made)

    async def ids(**params: object) -> tuple[list[str], bool]:
        page = await get(api, "/api/v1/payments?" + str(httpx.QueryParams(params)))
        assert set(page) == {"items", "has_more"}
        return [p["id"] for p in page["items"]], page["has_more"]

    mine = {"customer_id": customer["id"]}
    assert await ids(**mine) == ([d, c, b, a], False)
    assert await ids(**mine, limit=2) == ([d, c], True)
    assert await ids(**mine, limit=2, starting_after=c) == ([b, a], False)
    assert await ids(**mine, limit=3, starting_after=d) == ([c, b, a], False)
    assert await ids(**mine, payment_status="succeeded") == ([c, b, a], False)
    assert await ids(**mine, payment_status="INITIATED") == ([d], False)
    assert await ids(destination_id=made[1]["destination_id"]) == ([b], False)
    created_b = made[1]["created_at"]
    assert await ids(**mine, created_gte=created_b) == ([d, c, b], False)
    assert await ids(**mine, created_lt=created_b) == ([a], False)
    full = await get(api, f"/api/v1/payments?customer_id={customer['id']}&limit=1")
    assert full["items"] == [await get(api, f"/api/v1/payments/{d}")]

    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"payment_status": "lost"}, "payment_status"),
        ({"created_gte": "yesterday"}, "created_gte"),
    ):
        response = await api.get("/api/v1/payments", params=params)
        assert _error(response, 400, "validation_error")["field"] == field


async def test_invoices_list_pages_newest_first(api: Client) -> None:
    customer = await new_customer(api, card=None)
    made = [(await new_invoice(api, customer, f"{n}.00"))["id"] for n in (1, 2, 3)]
    path = f"/api/v1/invoices?customer_id={customer['id']}&limit=2"
    oldest, middle, newest = made
    first = await get(api, path)
    assert ([i["id"] for i in first["items"]], first["has_more"]) == ([newest, middle], True)
    second = await get(api, f"{path}&starting_after={middle}")
    assert ([i["id"] for i in second["items"]], second["has_more"]) == ([oldest], False)


# Operations ----------------------------------------------------------------------------------


async def test_health_readiness_metrics_and_openapi_answer_without_a_key(
    anonymous: httpx.AsyncClient, api: Client
) -> None:
    assert _ok(await anonymous.get("/healthz"), 200) == {"status": "ok"}
    assert _ok(await anonymous.get("/readyz"), 200) == {"status": "ready"}
    await api.get("/api/v1/invoices")
    metrics = await anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert re.search(
        r'^card_checkout_http_requests_total\{method="GET",route="/api/v1/invoices",'
        r'status="200"\} [1-9]',
        metrics.text,
        flags=re.MULTILINE,
    ), metrics.text
    document = _ok(await anonymous.get("/openapi.json"), 200)
    assert document["openapi"] == "3.1.0"
    assert {"/api/v1/payments", "/api/v1/payments/{payment_id}/refunds"} <= set(document["paths"])


async def test_every_answer_carries_a_request_id_and_a_given_one_is_echoed(
    service: Service, anonymous: httpx.AsyncClient, api: Client
) -> None:
    given = f"e2e-{uuid.uuid4().hex}"
    echoed = await api.get("/api/v1/payments?limit=1", headers={"X-Request-ID": given})
    assert echoed.headers["x-request-id"] == given
    unsafe = await api.get("/api/v1/payments?limit=1", headers={"X-Request-ID": "a b\tc"})
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", unsafe.headers["x-request-id"])
    answers = [
        await anonymous.get("/healthz"),
        await anonymous.get("/api/v1/payments"),
        await api.get("/nowhere"),
        await api.patch("/api/v1/payments"),
        await api.post("/api/v1/payments", content=b"{", headers={"content-type": "text/csv"}),
        await api.get("/sandbox/checkout/cs_missing"),
    ]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert len(set(ids)) == len(ids)
    await asyncio.sleep(0.1)  # the log line is written as the answer leaves
    assert f"method=GET request_id={given} route=/api/v1/payments status=200" in (
        service.server.log()
    )  # the fields of a text line, in the order of their names


async def test_the_server_log_never_shows_a_key_or_a_card_number_nor_a_500(
    service: Service, api: Client, anonymous: httpx.AsyncClient
) -> None:
    """Its own requests with every key and card data, and (as it runs last) all the module's."""
    for key in service.keys.values():
        await anonymous.get("/api/v1/payments", headers={"Authorization": f"Bearer {key}"})
        await anonymous.get("/api/v1/payments", headers={"x-api-key": key})
    invoice = await new_invoice(api, await new_customer(api))
    card_data = await api.post(
        "/api/v1/payments", json=card_payment(invoice, metadata={"pan": "4000002760003184"})
    )
    _error(card_data, 400, "validation_error")
    await asyncio.sleep(0.1)

    log = service.server.log()
    assert "route=/api/v1/payments status=400" in log
    for key in service.keys.values():
        assert key not in log
        assert key[-12:] not in log
    for number in TEST_CARD_NUMBERS:
        assert number not in log
    assert "status=500" not in log
    assert "unhandled error" not in log
