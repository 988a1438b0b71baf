"""The HTTP app in process (httpx over ASGI): shapes, statuses, headers and the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from adapters.sandbox import Fault, SandboxFaults
from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from entrypoints.http.errors import STATUS_FOR_CODE, codes_without_status
from tests.helpers import (
    DECLINED,
    ENV,
    PRODUCT_PAGE_BODY,
    VISA,
    HeldGateway,
    card_payment,
    customer_with_card,
    finalized_invoice,
)


@pytest.fixture
async def keys(checkout: CardCheckout) -> dict[str, str]:
    await checkout.create_environment("t", "test", environment_id=ENV)
    await checkout.create_environment("t", "other", environment_id="env_other")
    return {
        role: (await checkout.create_api_key("t", [ENV], role))[1]
        for role in ("read", "write", "admin")
    }


@pytest.fixture
async def client(checkout: CardCheckout, keys: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(checkout, notify_every=None)
    headers = {"Authorization": f"Bearer {keys['write']}", "X-Environment-ID": ENV}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "type", "message", "details", "request_id"}
    return dict(body["error"])


def test_every_error_code_has_an_http_status() -> None:
    assert codes_without_status() == set()
    assert STATUS_FOR_CODE["no_default_payment_method"] == 402
    assert STATUS_FOR_CODE["gateway_error"] == 502


async def test_the_product_page_request_charges_the_default_card(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    response = await client.post(
        "/api/v1/payments",
        content=PRODUCT_PAGE_BODY % invoice.id.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["payment_status"] == "succeeded"
    assert body["amount"] == "150.00"
    assert body["currency"] == "usd"
    assert body["metadata"] == {
        "stripe_payment_intent_id": body["gateway_tracking_id"],
        "card_last4": "4242",
        "card_brand": "visa",
    }
    assert body["gateway_tracking_id"].startswith("pi_")
    assert body["error"] is None


async def test_a_decline_is_402_with_the_payment_and_what_to_do(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    response = await client.post("/api/v1/payments", json=_jsonable(card_payment(invoice)))
    assert response.status_code == 402
    error = _error(response)
    assert error["code"] == "card_declined"
    assert error["details"]["next_action"] == "contact_bank"
    assert error["details"]["customer_id"] == customer.id
    assert error["details"]["stripe_error_code"] == "card_declined"
    payment = await client.get(f"/api/v1/payments/{error['details']['payment_id']}")
    assert payment.json()["payment_status"] == "failed"
    assert payment.json()["error"]["code"] == "card_declined"


async def test_an_unknown_outcome_is_202_processing(
    checkout: CardCheckout, client: httpx.AsyncClient, faults: SandboxFaults
) -> None:
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)
    response = await client.post("/api/v1/payments", json=_jsonable(card_payment(invoice)))
    assert response.status_code == 202
    assert response.json()["payment_status"] == "processing"


async def test_a_replay_answers_the_same_with_a_header_and_another_body_is_refused(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    body = _jsonable(card_payment(invoice))
    first = await client.post("/api/v1/payments", json=body, headers={"Idempotency-Key": "k"})
    again = await client.post("/api/v1/payments", json=body, headers={"Idempotency-Key": "k"})
    # The same answer, but for the id of the request it answers.
    replayed = {k: v for k, v in again.json()["error"].items() if k != "request_id"}
    stored = {k: v for k, v in first.json()["error"].items() if k != "request_id"}
    assert (again.status_code, replayed) == (first.status_code, stored)
    assert again.json()["error"]["request_id"] == again.headers["x-request-id"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post(
        "/api/v1/payments", json={**body, "amount": "1.00"}, headers={"Idempotency-Key": "k"}
    )
    assert other.status_code == 422
    assert _error(other)["code"] == "idempotency_key_reused"


async def test_a_repeat_while_the_first_runs_is_409_in_use(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    held = HeldGateway("charge")
    assert checkout.sandbox is not None
    checkout.sandbox.faults = held  # type: ignore[assignment]
    body = _jsonable(card_payment(invoice))
    first = asyncio.create_task(
        client.post("/api/v1/payments", json=body, headers={"Idempotency-Key": "busy"})
    )
    await held.started.wait()
    repeat = await client.post("/api/v1/payments", json=body, headers={"Idempotency-Key": "busy"})
    held.release.set()
    assert repeat.status_code == 409
    assert _error(repeat)["code"] == "idempotency_key_in_use"
    assert (await first).status_code == 201


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Authorization": ""}, 401, "unauthorized"),
        ({"Authorization": "Bearer ck_unknown"}, 401, "unauthorized"),
        ({"X-Environment-ID": "env_other"}, 403, "forbidden"),
        ({"X-Environment-ID": ""}, 400, "missing_environment"),
    ],
)
async def test_requests_without_a_usable_key_are_refused(
    client: httpx.AsyncClient, headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.get("/api/v1/payments", headers=headers)
    assert response.status_code == status
    assert _error(response)["code"] == code


async def test_a_read_key_may_read_but_not_write_and_x_api_key_works(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    read = {"Authorization": "", "x-api-key": keys["read"]}
    assert (await client.get("/api/v1/invoices", headers=read)).status_code == 200
    refused = await client.post("/api/v1/customers", json={"external_id": "x"}, headers=read)
    assert refused.status_code == 403
    assert _error(refused)["code"] == "forbidden"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b'{"external_id": "' + b"x" * 70_000 + b'"}', "application/json", 413,
         "payload_too_large"),
        (b'{"external_id": "a", "favourite_colour": "blue"}', "application/json", 400,
         "validation_error"),
    ],
)  # fmt: skip
async def test_bad_bodies_get_their_error(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = await client.post(
        "/api/v1/customers", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    assert _error(response)["code"] == code


async def test_card_data_is_refused_and_never_echoed_or_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await client.post(
        "/api/v1/customers", json={"external_id": "a", "name": "4242 4242 4242 4242"}
    )
    assert response.status_code == 400
    assert _error(response)["details"]["field"] == "name"
    # Not the number, in any spelling (ids and request ids are random: four digits may be).
    for shown in (response.text, caplog.text):
        assert "4242 4242" not in shown
        assert "42424242" not in shown


async def test_unknown_routes_and_methods_answer_in_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert _error(missing)["code"] == "not_found"
    wrong = await client.delete("/api/v1/payments")
    assert wrong.status_code == 405
    assert _error(wrong)["code"] == "method_not_allowed"


async def test_each_request_logs_one_line_with_its_id_and_no_key(
    client: httpx.AsyncClient, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="card_checkout.http")
    response = await client.get("/api/v1/invoices", headers={"X-Request-ID": "req-123"})
    assert response.headers["x-request-id"] == "req-123"
    [line] = [r for r in caplog.records if r.name == "card_checkout.http"]
    assert line.getMessage() == "request"
    assert (line.request_id, line.route, line.status) == ("req-123", "/api/v1/invoices", 200)
    assert all(key not in caplog.text for key in keys.values())


async def test_openapi_is_valid_and_describes_exactly_the_routes(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/openapi.json")).json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    app = create_app(checkout, notify_every=None)
    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route) and route.include_in_schema
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert described == served
    create = document["paths"]["/api/v1/payments"]["post"]
    assert set(create["responses"]) >= {"201", "202", "402", "409", "422", "429"}


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/invoices")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'card_checkout_http_requests_total{method="GET",route="/api/v1/invoices",status="200"} 1.0'
        in metrics.text
    )


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz", headers={"Authorization": ""})).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200


def _jsonable(body: dict[str, object]) -> dict[str, object]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in body.items()}


async def test_finalize_with_a_key_replays_instead_of_refusing_the_second_time(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    customer = await customer_with_card(checkout, VISA)
    draft = await checkout.create_invoice(
        ENV, {"customer_id": customer.id, "currency": "usd", "amount_due": "5.00"}
    )
    path = f"/api/v1/invoices/{draft.id}/finalize"
    first = await client.post(path, headers={"Idempotency-Key": "fin"})
    again = await client.post(path, headers={"Idempotency-Key": "fin"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    unkeyed = await client.post(path)
    assert unkeyed.status_code == 409
    assert _error(unkeyed)["code"] == "invalid_state_transition"


async def test_a_bug_answers_500_revealing_nothing_inside(
    checkout: CardCheckout, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret table payments_v2 is missing")

    monkeypatch.setattr(CardCheckout, "get_payment", broken)
    app = create_app(checkout, notify_every=None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {keys['read']}", "X-Environment-ID": ENV}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/v1/payments/pay_1", headers=headers)
    assert response.status_code == 500
    assert _error(response)["code"] == "internal_error"
    assert "secret" not in response.text
    assert "payments_v2" not in response.text


async def test_customers_are_listed_and_found_by_external_id(client: httpx.AsyncClient) -> None:
    for external_id in ("acme-1", "acme-2"):
        made = await client.post("/api/v1/customers", json={"external_id": external_id})
        assert made.status_code == 201
    found = await client.get("/api/v1/customers", params={"external_id": "acme-2"})
    assert found.status_code == 200
    assert [c["external_id"] for c in found.json()["items"]] == ["acme-2"]
    assert found.json()["has_more"] is False
    page = await client.get("/api/v1/customers", params={"limit": 1})
    assert len(page.json()["items"]) == 1
    assert page.json()["has_more"] is True
    assert (await client.get("/api/v1/customers", params={"limit": 0})).status_code == 400
