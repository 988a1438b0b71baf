"""Stripe webhooks over HTTP: one environment's signed events never reach another's payments,
and signed events that do not parse, or are dated ahead, are refused with a 400."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from core.model import InvoicePaymentStatus, Payment, PaymentStatus
from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, OTHER_ENV, customer_with_card, finalized_invoice, webhook_client
from tests.unit.test_payment_links_and_refunds import payment_link, session_id
from tests.unit.test_stripe_webhooks import signed

SERVICE_WIDE_SECRET = "whsec_service_wide"
ENV_B_SECRET = "whsec_env_b_own"


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    async with webhook_client(checkout, SERVICE_WIDE_SECRET) as client:
        yield client


async def _env_a_link_in_processing(checkout: CardCheckout) -> Payment:
    await checkout.create_environment("t_a", "env a", environment_id=ENV)
    await checkout.create_environment("t_b", "env b", environment_id=OTHER_ENV)
    await checkout.set_webhook_secrets(OTHER_ENV, [ENV_B_SECRET])
    customer = await customer_with_card(checkout, None)
    invoice = await finalized_invoice(checkout, customer)
    link = await checkout.create_payment(ENV, payment_link(invoice))
    assert link.status is PaymentStatus.PROCESSING
    return link


def _session_event(kind: str, session_id: str, status: str, event_id: str) -> bytes:
    session = {
        "id": session_id, "object": "checkout.session", "mode": "payment", "status": status,
        "payment_status": "paid" if status == "complete" else "unpaid", "customer": "cus_any",
        "payment_intent": {"id": "pi_made_up", "payment_method": "pm_made_up"}
        if status == "complete" else None,
        "metadata": {},
    }  # fmt: skip
    body = {"id": event_id, "type": kind, "created": int(time.time()),
            "data": {"object": session}}  # fmt: skip
    return json.dumps(body).encode()


async def _post(
    client: httpx.AsyncClient, environment_id: str, payload: bytes, signature: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/webhooks/stripe/{environment_id}",
        content=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


async def _unchanged(checkout: CardCheckout, link: Payment) -> None:
    assert await checkout.get_payment(ENV, link.id) == link
    invoice = await checkout.get_invoice(ENV, link.invoice_id)
    assert invoice.payment_status is not InvoicePaymentStatus.SUCCEEDED
    assert str(invoice.amount_paid) == "0.00"


@pytest.mark.parametrize(
    ("kind", "status"),
    [("checkout.session.completed", "complete"), ("checkout.session.expired", "expired")],
)
async def test_env_b_signed_event_for_env_a_session_changes_nothing_in_env_a(
    checkout: CardCheckout, client: httpx.AsyncClient, kind: str, status: str
) -> None:
    link = await _env_a_link_in_processing(checkout)
    payload = _session_event(kind, session_id(link), status, "evt_cross")

    response = await _post(client, OTHER_ENV, payload, signed(payload, ENV_B_SECRET))

    assert response.status_code == 200
    assert response.json() == {"received": True, "handled": False}
    await _unchanged(checkout, link)


async def test_an_unknown_environment_signed_with_the_service_wide_secret_changes_nothing(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    link = await _env_a_link_in_processing(checkout)
    payload = _session_event("checkout.session.completed", session_id(link), "complete", "evt_u")

    response = await _post(client, "env_unknown", payload, signed(payload, SERVICE_WIDE_SECRET))

    assert response.status_code == 200
    assert response.json() == {"received": True, "handled": False}
    await _unchanged(checkout, link)


def _envelope(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "evt_shape", "type": "payment_intent.succeeded", "created": int(time.time()),
        "data": {"object": {"id": "pi_1", "status": "succeeded", "metadata": {}}},
    }  # fmt: skip
    body.update(overrides)
    return body


MALFORMED: dict[str, object] = {
    "object_is_a_string": _envelope(data={"object": "pi_1"}),
    "object_is_a_list": _envelope(data={"object": [1, 2]}),
    "object_is_a_number": _envelope(data={"object": 7}),
    "object_is_null": _envelope(data={"object": None}),
    "data_missing": {k: v for k, v in _envelope().items() if k != "data"},
    "data_is_a_string": _envelope(data="x"),
    "id_missing": {k: v for k, v in _envelope().items() if k != "id"},
    "type_missing": {k: v for k, v in _envelope().items() if k != "type"},
    "type_is_an_object": _envelope(type={"a": 1}),
    "created_is_text": _envelope(created="yesterday"),
    "metadata_is_a_string": _envelope(data={"object": {"id": "pi_1", "metadata": "x"}}),
    "session_mode_unknown": _envelope(
        type="checkout.session.completed",
        data={"object": {"id": "cs_1", "mode": "weird", "customer": "cus_1"}},
    ),
    "session_status_unknown": _envelope(
        type="checkout.session.completed",
        data={"object": {"id": "cs_1", "mode": "payment", "status": 5, "customer": "cus_1"}},
    ),
    "refunds_is_a_string": _envelope(type="charge.refunded", data={"object": {"refunds": "x"}}),
    "refund_list_holds_a_string": _envelope(
        type="charge.refunded", data={"object": {"refunds": {"data": ["re_1"]}}}
    ),
    "nul_in_a_payment_id": _envelope(
        data={"object": {"id": "pi_1", "status": "succeeded", "metadata": {"payment_id": "p\x00"}}}
    ),
    "lone_surrogate_in_the_event_id": _envelope(id="evt_\ud800"),
    "body_is_a_list": [1, 2, 3],
    "body_is_a_string": "evt",
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
async def test_a_signed_event_of_the_wrong_shape_is_a_400(
    checkout: CardCheckout, client: httpx.AsyncClient, shape: str
) -> None:
    payload = json.dumps(MALFORMED[shape]).encode()

    response = await _post(client, ENV, payload, signed(payload, SERVICE_WIDE_SECRET))

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("validation_error", "invalid_json")


async def test_a_signed_body_that_is_not_json_is_a_400_and_logged_once(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    payload = b"not json at all"
    caplog.set_level(logging.INFO)

    response = await _post(client, ENV, payload, signed(payload, SERVICE_WIDE_SECRET))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert len([r for r in caplog.records if "does not parse" in r.getMessage()]) == 1


@pytest.mark.parametrize(("ahead", "accepted"), [(3600, False), (301, False), (60, True)])
async def test_a_signature_dated_ahead_beyond_the_tolerance_is_refused(
    client: httpx.AsyncClient, ahead: int, accepted: bool
) -> None:
    payload = json.dumps(_envelope()).encode()
    signature = signed(payload, SERVICE_WIDE_SECRET, at=int(time.time()) + ahead)

    response = await _post(client, ENV, payload, signature)

    assert (response.status_code == 200) is accepted, response.text
    if not accepted:
        assert response.json()["error"]["details"]["field"] == "Stripe-Signature"
