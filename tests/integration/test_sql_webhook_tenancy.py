"""On every SQL path: a Stripe event signed for one environment never settles another's payment,
and a signed event holding text no database can store is a 400, not a 500."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.clock import SystemClock
from adapters.ids import UlidIdGenerator
from adapters.sandbox import InMemorySandboxStore, SandboxFaults, SandboxPaymentGateway
from core.model import PaymentStatus
from entrypoints.bootstrap import CardCheckout, bootstrap
from tests.helpers import ENV, OTHER_ENV, customer_with_card, finalized_invoice, webhook_client
from tests.integration.conftest import SqlPath
from tests.unit.test_http_webhook_tenancy import (
    ENV_B_SECRET,
    SERVICE_WIDE_SECRET,
    _env_a_link_in_processing,
    _post,
    _session_event,
    _unchanged,
)
from tests.unit.test_payment_links_and_refunds import payment_link, session_id
from tests.unit.test_stripe_webhooks import signed


@pytest.fixture
async def checkout(sql_path: SqlPath) -> CardCheckout:
    gateway = SandboxPaymentGateway(
        clock=SystemClock(), ids=UlidIdGenerator(), store=InMemorySandboxStore(),
        faults=SandboxFaults(),
    )  # fmt: skip
    checkout = bootstrap(uow=sql_path.units(), gateway=gateway, dispatch_inline=False)
    gateway.event_sink = checkout.handle_gateway_event
    return checkout


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    async with webhook_client(checkout, SERVICE_WIDE_SECRET) as client:
        yield client


async def test_env_b_and_unknown_environment_events_leave_env_a_payment_alone(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    link = await _env_a_link_in_processing(checkout)
    completed = _session_event("checkout.session.completed", session_id(link), "complete", "e1")
    expired = _session_event("checkout.session.expired", session_id(link), "expired", "e2")
    unknown = _session_event("checkout.session.completed", session_id(link), "complete", "e3")

    answers = [
        await _post(client, OTHER_ENV, completed, signed(completed, ENV_B_SECRET)),
        await _post(client, OTHER_ENV, expired, signed(expired, ENV_B_SECRET)),
        await _post(client, "env_unknown", unknown, signed(unknown, SERVICE_WIDE_SECRET)),
    ]

    assert [a.json() for a in answers] == [{"received": True, "handled": False}] * 3
    await _unchanged(checkout, link)
    # Delivered for its own environment, the event still applies.
    mine = _session_event("checkout.session.completed", session_id(link), "complete", "e4")
    assert (await _post(client, ENV, mine, signed(mine, SERVICE_WIDE_SECRET))).json() == {
        "received": True,
        "handled": True,
    }


async def test_an_event_id_recorded_for_env_a_still_settles_env_b_payment(
    checkout: CardCheckout, client: httpx.AsyncClient
) -> None:
    """One Stripe account, both environments' URLs: the same event reaches each. Recorded for
    env A, where it names nothing, it still settles env B's payment."""
    await _env_a_link_in_processing(checkout)  # both environments, env B with its own secret
    customer = await customer_with_card(checkout, None, env=OTHER_ENV)
    invoice = await finalized_invoice(checkout, customer, env=OTHER_ENV)
    link = await checkout.create_payment(OTHER_ENV, payment_link(invoice))
    event = _session_event("checkout.session.completed", session_id(link), "complete", "e_both")

    at_a = await _post(client, ENV, event, signed(event, SERVICE_WIDE_SECRET))
    at_b = await _post(client, OTHER_ENV, event, signed(event, ENV_B_SECRET))

    assert [at_a.json()["handled"], at_b.json()["handled"]] == [False, True]
    assert (await checkout.get_payment(OTHER_ENV, link.id)).status is PaymentStatus.SUCCEEDED
    again = await _post(client, OTHER_ENV, event, signed(event, ENV_B_SECRET))
    assert again.json() == {"received": True, "handled": True}  # applied once, acknowledged


async def test_a_signed_event_with_a_nul_in_a_payment_id_is_a_400(
    client: httpx.AsyncClient,
) -> None:
    intent = {"id": "pi_1", "status": "succeeded", "metadata": {"payment_id": "pay\x00"}}
    body = {"id": "evt_nul", "type": "payment_intent.succeeded", "created": int(time.time()),
            "data": {"object": intent}}  # fmt: skip
    payload = json.dumps(body).encode()

    response = await _post(client, ENV, payload, signed(payload, SERVICE_WIDE_SECRET))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
