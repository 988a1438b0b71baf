"""The OpenAPI document is read off the routes: every operation named, tagged and derived."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.model import InvoicePaymentStatus, InvoiceStatus, PaymentStatus, RefundStatus
from entrypoints.bodies import BODIES, Body
from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from entrypoints.http.errors import STATUS_FOR_CODE
from entrypoints.http.openapi import openapi_document
from entrypoints.http.routes import RESOURCES
from entrypoints.http.routing import ApiRoute
from tests.helpers import ENV, OTHER_ENV, VISA, api_client, customer_with_card, webhook_client
from tests.unit.test_stripe_webhooks import signed


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(checkout) as client:
        yield client


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    validate(body)
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_operation_has_a_readable_unique_id_and_one_declared_tag(
    document: dict[str, Any],
) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)*", id_) for id_ in ids), ids
    assert {"createPayment", "listPayments", "getPayment", "createInvoice"} <= set(ids)
    declared = [tag["name"] for tag in document["tags"]]
    assert declared == [resource.tag.name for resource in RESOURCES]
    used = {tag for _, _, operation in operations(document) for tag in operation["tags"]}
    assert used == set(declared)
    assert all(len(operation["tags"]) == 1 for _, _, operation in operations(document))


def test_the_document_names_its_server(document: dict[str, Any]) -> None:
    assert document["servers"] == [
        {"url": "/", "description": "The server that serves this document"}
    ]


def test_request_schemas_are_derived_from_the_body_definitions(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    by_name = {body.name: body for body in BODIES}
    used: set[str] = set()
    for _, _, operation in operations(document):
        if "requestBody" not in operation:
            continue
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        name = ref.removeprefix("#/components/schemas/")
        if name in by_name:
            used.add(name)
            body: Body = by_name[name]
            assert schemas[name] == body.schema()
            assert operation["requestBody"]["required"] is not body.optional
    assert used == set(by_name)


def test_keyed_posts_take_an_idempotency_key(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        if method == "POST" and "security" in operation:
            expected = path != "/api/v1/webhook_endpoints"  # created once, never replayed
            assert ("Idempotency-Key" in headers) is expected, path


def declared(operation: dict[str, Any], status: int) -> set[str]:
    """The error codes `operation` declares under `status` (none: not declared)."""
    response = operation["responses"].get(str(status))
    if response is None:
        return set()
    schema = response["content"]["application/json"]["schema"]
    error, narrowed = schema["allOf"]
    assert error == {"$ref": "#/components/schemas/Error"}
    return set(narrowed["properties"]["error"]["properties"]["code"]["enum"])


def test_every_error_answer_is_declared_in_the_error_shape_under_its_status(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        where = (method, path)
        for status in operation["responses"]:
            if status.startswith("2") or (path, status) == ("/readyz", "503"):
                continue  # successes, and a probe's "not ready"
            codes = declared(operation, int(status))
            assert codes, where
            assert {STATUS_FOR_CODE[code] for code in codes} == {int(status)}, where
        # Hostile text in a path, query or header, and oversized headers: any route.
        assert "validation_error" in declared(operation, 400), where
        assert declared(operation, 431) == {"request_header_fields_too_large"}, where
        assert declared(operation, 500) == {"internal_error"}, where
        if "security" in operation:
            assert declared(operation, 401) == {"unauthorized"}, where
            assert declared(operation, 403) == {"forbidden"}, where
            assert declared(operation, 429) == {"rate_limited"}, where
            assert "service_unavailable" in declared(operation, 503), where
            assert "Retry-After" in operation["responses"]["429"]["headers"]
            assert "Retry-After" in operation["responses"]["503"]["headers"]
        else:
            assert "429" not in operation["responses"], where  # only keyed routes throttle
        if method == "POST" and "security" in operation:
            assert "invalid_json" in declared(operation, 400), where
            assert declared(operation, 413) == {"payload_too_large"}, where
            assert declared(operation, 415) == {"unsupported_media_type"}, where


def test_every_error_code_is_declared_by_some_operation(document: dict[str, Any]) -> None:
    everywhere: set[str] = set()
    for _, path, operation in operations(document):
        for status in operation["responses"]:
            if status[0] in "45" and (path, status) != ("/readyz", "503"):
                everywhere |= declared(operation, int(status))
    # Answered by the router, for a method no operation at that path takes.
    assert set(STATUS_FOR_CODE) - everywhere == {"method_not_allowed"}


def test_routes_declare_their_own_refusals(document: dict[str, Any]) -> None:
    paths = document["paths"]
    create_customer = paths["/api/v1/customers"]["post"]
    assert {"gateway_customer_not_owned", "idempotency_key_reused"} <= declared(
        create_customer, 422
    )
    assert {"customer_already_exists", "idempotency_key_in_use"} <= declared(create_customer, 409)
    assert declared(paths["/api/v1/webhook_endpoints"]["post"], 422) == {"webhook_url_not_allowed"}
    stripe = paths["/api/v1/webhooks/stripe/{environment_id}"]["post"]
    assert declared(stripe, 400) == {"validation_error", "invalid_json"}
    assert declared(stripe, 503) == {"service_unavailable"}
    payment = paths["/api/v1/payments"]["post"]
    assert declared(payment, 402) == {
        "no_default_payment_method", "payment_method_not_found", "card_declined",
        "insufficient_funds", "authentication_required", "expired_card",
    }  # fmt: skip
    assert "payment_not_found" in declared(paths["/api/v1/payments/{payment_id}"]["get"], 404)


async def test_refusals_the_routes_answer_are_the_ones_they_declare(
    checkout: CardCheckout, client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    await checkout.create_environment("t", "other", environment_id=OTHER_ENV)
    victim = await customer_with_card(checkout, VISA, env=OTHER_ENV)
    surrogate = b'{"external_id": "a", "name": "\\ud800"}'
    cases = [
        ("GET", "/api/v1/payments", client.get("/api/v1/payments?customer_id=cus%00"),
         400, "validation_error"),
        ("POST", "/api/v1/customers",
         client.post("/api/v1/customers", content=surrogate,
                     headers={"Content-Type": "application/json"}),
         400, "validation_error"),
        ("POST", "/api/v1/customers",
         client.post("/api/v1/customers", json={
             "external_id": "thief", "gateway_customer_id": victim.gateway_customer_id}),
         422, "gateway_customer_not_owned"),
        ("POST", "/api/v1/webhook_endpoints",
         client.post("/api/v1/webhook_endpoints", json={"url": "http://169.254.169.254/"}),
         422, "webhook_url_not_allowed"),
        ("GET", "/api/v1/invoices", client.get("/api/v1/invoices", headers={"X-Big": "a" * 20_000}),
         431, "request_header_fields_too_large"),
    ]  # fmt: skip
    for method, path, call, status, code in cases:
        response = await call
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), path
        assert code in declared(document["paths"][path][method.lower()], status), (path, code)


async def test_a_signed_event_that_does_not_parse_is_a_declared_400(
    checkout: CardCheckout, document: dict[str, Any]
) -> None:
    stripe = document["paths"]["/api/v1/webhooks/stripe/{environment_id}"]["post"]
    async with webhook_client(checkout, "whsec_test") as client:
        for payload in (b"{not json", json.dumps({"id": "evt_1", "type": 7}).encode()):
            response = await client.post(
                f"/api/v1/webhooks/stripe/{ENV}",
                content=payload,
                headers={"Stripe-Signature": signed(payload, "whsec_test")},
            )
            assert response.status_code == 400
            assert response.json()["error"]["code"] in declared(stripe, 400)


def test_response_enumerations_come_from_the_enum_classes(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Payment"]["properties"]["payment_status"]["enum"] == [
        s.value for s in PaymentStatus
    ]
    assert schemas["Refund"]["properties"]["status"]["enum"] == [s.value for s in RefundStatus]
    invoice = schemas["Invoice"]["properties"]
    assert invoice["invoice_status"]["enum"] == [s.value for s in InvoiceStatus]
    assert invoice["payment_status"]["enum"] == [s.value for s in InvoicePaymentStatus]


async def test_documented_query_values_are_the_ones_the_lists_take(
    document: dict[str, Any], client: httpx.AsyncClient
) -> None:
    for path in ("/api/v1/payments", "/api/v1/invoices"):
        for parameter in document["paths"][path]["get"]["parameters"]:
            schema = parameter["schema"]
            for value in schema.get("enum", []):
                answered = await client.get(path, params={parameter["name"]: value})
                assert answered.status_code == 200, (path, parameter["name"], value)
            if parameter["name"] == "limit":
                for value in (schema["minimum"], schema["maximum"]):
                    assert (await client.get(path, params={"limit": value})).status_code == 200
                for value in (schema["minimum"] - 1, schema["maximum"] + 1):
                    assert (await client.get(path, params={"limit": value})).status_code == 400


async def _endpoint(request: Request) -> Response:
    return Response()


def test_a_route_served_without_an_operation_is_refused() -> None:
    with pytest.raises(TypeError, match="/undocumented"):
        openapi_document([Route("/undocumented", _endpoint)])
    hidden = Route("/hidden", _endpoint, include_in_schema=False)
    assert openapi_document([hidden])["paths"] == {}


def test_every_served_route_carries_its_operation(checkout: CardCheckout) -> None:
    app = create_app(checkout, notify_every=None)
    for route in app.routes:
        assert isinstance(route, Route)
        assert isinstance(route, ApiRoute) or not route.include_in_schema, route.path
