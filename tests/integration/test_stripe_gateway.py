"""`StripePaymentGateway` against localstripe, a Stripe-compatible server started here.

localstripe differs from Stripe in ways these tests cover separately: it declines some test
cards when they are attached (so charge-time declines use 4000000000000341), it has no Checkout
Sessions and ignores idempotency keys. The keys are proven on the adapter's outgoing requests,
and hosted pages on recorded Stripe responses.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from adapters.stripe_gateway import StripePaymentGateway
from core.errors import CheckoutError
from core.gateway import (
    ChargeStatus,
    CheckoutMode,
    CheckoutSessionRequest,
    CheckoutSessionStatus,
    GatewayUnavailable,
    RefundRequest,
)
from core.money import Money
from core.ports import PaymentGateway
from tests.gateway_contract import VISA, GatewayContract


def stripe_gateway(url: str, retries: int = 0) -> StripePaymentGateway:
    return StripePaymentGateway.create("sk_test_local", api_base=url, max_network_retries=retries)


class TestStripeGatewayContract(GatewayContract):
    @pytest.fixture
    def gateway(self, localstripe_url: str) -> PaymentGateway:
        return stripe_gateway(localstripe_url)

    async def save_card(self, gateway: PaymentGateway, customer_id: str, card: str) -> str:
        """Through Stripe's API: in production, cards arrive only through hosted pages."""
        assert isinstance(gateway, StripePaymentGateway)
        methods = gateway.client.v1.payment_methods
        pm = await methods.create_async(
            params={"type": "card", "card": {"number": card, "exp_month": 12,  # type: ignore[typeddict-item]
                    "exp_year": 2034, "cvc": "123"}}
        )  # fmt: skip
        await methods.attach_async(pm.id, params={"customer": customer_id})
        await gateway.set_default_payment_method(customer_id, pm.id)
        return str(pm.id)


class Recorder(httpx.AsyncBaseTransport):
    """Records every request the SDK sends; fails the first `fail_first` with no answer."""

    def __init__(self, fail_first: int = 0, answer: dict[str, Any] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.fail_first = fail_first
        self.answer = answer
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        if len(self.requests) <= self.fail_first:
            raise httpx.ConnectError("connection reset by the test", request=request)
        if self.answer is not None:
            return httpx.Response(200, json=self.answer)
        return await self.inner.handle_async_request(request)

    def bodies(self) -> list[dict[str, list[str]]]:
        return [parse_qs(r.content.decode()) for r in self.requests]


def _recorded(gateway: StripePaymentGateway, recorder: Recorder) -> StripePaymentGateway:
    # The SDK builds its own httpx client; tests swap in one whose transport records.
    gateway.http_client._client_async = httpx.AsyncClient(transport=recorder)
    return gateway


async def _customer_with_visa(gateway: StripePaymentGateway) -> tuple[str, str]:
    contract = TestStripeGatewayContract()
    customer = await contract.new_customer(gateway, f"c{time.monotonic_ns()}")
    return customer, await contract.save_card(gateway, customer, VISA)


async def test_the_charge_is_the_product_pages_payment_intent(localstripe_url: str) -> None:
    recorder = Recorder()
    gateway = _recorded(stripe_gateway(localstripe_url), recorder)
    customer, card = await _customer_with_visa(gateway)
    request = TestStripeGatewayContract().charge_request(
        customer, card, "pay_1:charge", "1500", "jpy"
    )
    recorder.requests.clear()
    result = await gateway.charge(request)
    assert result.status is ChargeStatus.SUCCEEDED
    [sent] = recorder.requests
    body = parse_qs(sent.content.decode())
    assert sent.url.path == "/v1/payment_intents"
    assert body["amount"] == ["1500"]  # jpy has no minor unit: never a blind x100
    assert body["currency"] == ["jpy"]
    assert body["customer"] == [customer]
    assert body["payment_method"] == [card]
    assert body["off_session"] == ["true"]
    assert body["confirm"] == ["true"]
    assert body["metadata[payment_id]"] == ["pay_pay_1:charge"]
    assert sent.headers["idempotency-key"] == "pay_1:charge"
    assert sent.headers["stripe-version"] == "2026-10-28.endive"


async def test_a_retried_charge_carries_the_same_idempotency_key(localstripe_url: str) -> None:
    recorder = Recorder()
    gateway = _recorded(stripe_gateway(localstripe_url, retries=2), recorder)
    customer, card = await _customer_with_visa(gateway)
    recorder.requests.clear()
    recorder.fail_first = 1
    request = TestStripeGatewayContract().charge_request(customer, card, "pay_2:charge")
    result = await gateway.charge(request)
    assert result.status is ChargeStatus.SUCCEEDED
    keys = [r.headers["idempotency-key"] for r in recorder.requests]
    assert keys == ["pay_2:charge", "pay_2:charge"]


async def test_each_refund_carries_its_own_key(localstripe_url: str) -> None:
    recorder = Recorder()
    gateway = _recorded(stripe_gateway(localstripe_url), recorder)
    customer, card = await _customer_with_visa(gateway)
    charged = await gateway.charge(
        TestStripeGatewayContract().charge_request(customer, card, "pay_3:charge")
    )
    assert charged.intent_id is not None
    recorder.requests.clear()
    for key in ("re_1:refund", "re_2:refund"):
        await gateway.refund(
            RefundRequest(charged.intent_id, Money.of("10.00", "usd"), idempotency_key=key)
        )
    assert [r.headers["idempotency-key"] for r in recorder.requests] == [
        "re_1:refund",
        "re_2:refund",
    ]
    assert [b["amount"] for b in recorder.bodies()] == [["1000"], ["1000"]]


async def test_a_server_that_dies_mid_call_is_an_unknown_outcome() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept_and_hang_up() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()

    threading.Thread(target=accept_and_hang_up, daemon=True).start()
    port = listener.getsockname()[1]
    gateway = stripe_gateway(f"http://127.0.0.1:{port}")
    request = TestStripeGatewayContract().charge_request("cus_x", "pm_x", "pay_4:charge")
    with pytest.raises(GatewayUnavailable):
        await gateway.charge(request)
    listener.close()


async def test_amount_too_small_is_a_gateway_error_not_a_decline() -> None:
    answer = {"error": {"type": "invalid_request_error", "code": "amount_too_small",
                        "message": "Amount must be at least $0.50 usd"}}  # fmt: skip

    class Refuses(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await request.aread()
            self.requests.append(request)
            return httpx.Response(400, json=answer)

    gateway = _recorded(stripe_gateway("http://stripe.invalid"), Refuses())
    request = TestStripeGatewayContract().charge_request("cus_x", "pm_x", "k", "0.10")
    result = await gateway.charge(request)
    assert result.status is ChargeStatus.FAILED
    assert result.failure is not None
    assert result.failure.code == "gateway_error"
    assert result.failure.gateway_code == "amount_too_small"


@pytest.mark.parametrize(
    ("code", "decline_code", "expected"),
    [
        ("card_declined", "insufficient_funds", "insufficient_funds"),
        ("expired_card", None, "expired_card"),
        ("card_declined", "authentication_required", "authentication_required"),
        ("authentication_required", None, "authentication_required"),
        ("card_declined", "do_not_honor", "card_declined"),
        ("incorrect_cvc", None, "card_declined"),
    ],
)
async def test_card_errors_map_to_the_contracts_codes(
    code: str, decline_code: str | None, expected: str
) -> None:
    error = {"type": "card_error", "code": code, "message": "Declined.",
             "payment_intent": {"id": "pi_123", "object": "payment_intent"}}  # fmt: skip
    if decline_code:
        error["decline_code"] = decline_code

    class Declines(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await request.aread()
            return httpx.Response(402, json={"error": error})

    gateway = _recorded(stripe_gateway("http://stripe.invalid"), Declines())
    result = await gateway.charge(TestStripeGatewayContract().charge_request("c", "p", "k"))
    assert result.status is ChargeStatus.FAILED
    assert result.failure is not None
    assert (result.failure.code, result.failure.gateway_code) == (expected, code)
    assert result.failure.decline_code == decline_code
    assert result.intent_id == "pi_123"


RECORDED_SESSION = {
    "id": "cs_test_a1", "object": "checkout.session", "mode": "payment", "status": "open",
    "url": "https://checkout.stripe.com/c/pay/cs_test_a1", "customer": "cus_1",
    "payment_status": "unpaid", "payment_intent": None, "setup_intent": None,
    "metadata": {"payment_id": "pay_1", "save_card_and_make_default": "true"},
}  # fmt: skip


async def test_a_payment_page_saves_the_card_for_off_session_use() -> None:
    recorder = Recorder(answer=RECORDED_SESSION)
    gateway = _recorded(stripe_gateway("http://stripe.invalid"), recorder)
    session = await gateway.create_checkout_session(
        CheckoutSessionRequest(
            mode=CheckoutMode.PAYMENT, gateway_customer_id="cus_1", idempotency_key="pay_1:co",
            amount=Money.of("1.250", "kwd"), save_card_and_make_default=True,
            metadata={"payment_id": "pay_1"},
        )
    )  # fmt: skip
    [body] = recorder.bodies()
    assert body["mode"] == ["payment"]
    assert body["line_items[0][price_data][unit_amount]"] == ["1250"]
    assert body["line_items[0][price_data][currency]"] == ["kwd"]
    assert body["payment_intent_data[setup_future_usage]"] == ["off_session"]
    assert recorder.requests[0].headers["idempotency-key"] == "pay_1:co"
    assert session.url == "https://checkout.stripe.com/c/pay/cs_test_a1"
    assert session.status is CheckoutSessionStatus.OPEN
    assert session.save_card_and_make_default
    assert dict(session.metadata) == {"payment_id": "pay_1"}


async def test_a_completed_setup_session_names_the_saved_card() -> None:
    completed = {
        **RECORDED_SESSION, "mode": "setup", "status": "complete",
        "payment_status": "no_payment_required",
        "setup_intent": {"id": "seti_1", "object": "setup_intent", "payment_method": {
            "id": "pm_9", "object": "payment_method",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2030}}},
    }  # fmt: skip
    gateway = _recorded(stripe_gateway("http://stripe.invalid"), Recorder(answer=completed))
    session = await gateway.get_checkout_session("cs_test_a1")
    assert session.mode is CheckoutMode.SETUP
    assert session.status is CheckoutSessionStatus.COMPLETE
    assert session.charge is not None
    assert (session.charge.payment_method_id, session.charge.card_last4) == ("pm_9", "4242")


def test_recorded_answers_are_plain_json() -> None:
    assert json.loads(json.dumps(RECORDED_SESSION)) == RECORDED_SESSION


async def test_reconciliation_without_an_intent_id_replays_the_create_with_its_key() -> None:
    succeeded = {"id": "pi_77", "object": "payment_intent", "status": "succeeded",
                 "payment_method": {"id": "pm_1", "object": "payment_method",
                                    "card": {"brand": "visa", "last4": "4242"}}}  # fmt: skip
    recorder = Recorder(answer=succeeded)
    gateway = _recorded(stripe_gateway("http://stripe.invalid"), recorder)
    request = TestStripeGatewayContract().charge_request("cus_1", "pm_1", "pay_9:charge")
    found = await gateway.find_charge(request, None)
    assert found.status is ChargeStatus.SUCCEEDED
    assert (found.intent_id, found.card_last4) == ("pi_77", "4242")
    [replayed] = recorder.requests
    assert (replayed.method, replayed.url.path) == ("POST", "/v1/payment_intents")
    assert replayed.headers["idempotency-key"] == "pay_9:charge"
    by_id = await gateway.find_charge(request, "pi_77")
    assert by_id == found
    assert (recorder.requests[-1].method, recorder.requests[-1].url.path) == (
        "GET",
        "/v1/payment_intents/pi_77",
    )


async def test_a_lost_replay_stays_unknown_where_search_is_not_offered(
    localstripe_url: str,
) -> None:
    """localstripe has no search endpoint (tests/unit/test_stripe_charge_search.py covers
    Stripe's): the replay's lost answer stays an unknown outcome, not a failure."""
    gateway = stripe_gateway(localstripe_url)
    customer, card = await _customer_with_visa(gateway)
    recorder = Recorder(fail_first=1)
    _recorded(gateway, recorder)
    request = TestStripeGatewayContract().charge_request(customer, card, f"k{time.time_ns()}")
    with pytest.raises(GatewayUnavailable):
        await gateway.find_charge(request, None)
    replay, search = recorder.requests
    assert (replay.method, replay.url.path) == ("POST", "/v1/payment_intents")
    assert (search.method, search.url.path) == ("GET", "/v1/payment_intents/search")
    assert (
        search.url.params["query"] == f"metadata['payment_id']:'{request.metadata['payment_id']}'"
    )


async def test_the_service_charges_through_stripe_end_to_end(localstripe_url: str) -> None:
    """The library on the Stripe adapter: customers are created at Stripe, declines keep
    Stripe's codes, 3D Secure cards need a payment link."""
    from entrypoints.bootstrap import Settings, bootstrap
    from tests.helpers import ENV, card_payment, finalized_invoice

    checkout = bootstrap(
        Settings(stripe_secret_key="sk_test_local", stripe_api_base=localstripe_url)
    )
    gateway = checkout.gateway
    assert isinstance(gateway, StripePaymentGateway)
    outcomes: dict[str, str] = {}
    for number in ("4242424242424242", "4000000000000341", "4000002760003184"):
        customer = await checkout.create_customer(ENV, {"external_id": f"ext-{number[-4:]}"})
        assert customer.gateway_customer_id is not None
        assert customer.gateway_customer_id.startswith("cus_")
        await TestStripeGatewayContract().save_card(gateway, customer.gateway_customer_id, number)
        invoice = await finalized_invoice(checkout, customer)
        try:
            payment = await checkout.create_payment(ENV, card_payment(invoice))
            outcomes[number] = payment.status.value
        except CheckoutError as error:
            outcomes[number] = error.code
    assert outcomes == {
        "4242424242424242": "succeeded",
        "4000000000000341": "card_declined",
        "4000002760003184": "authentication_required",
    }
    await checkout.aclose()


async def test_a_rate_limited_charge_is_retried_with_the_same_key() -> None:
    succeeded = {"id": "pi_8", "object": "payment_intent", "status": "succeeded"}

    class LimitsOnce(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await request.aread()
            self.requests.append(request)
            if len(self.requests) == 1:
                error = {"type": "invalid_request_error", "code": "rate_limit", "message": "Slow"}
                return httpx.Response(429, json={"error": error})
            return httpx.Response(200, json=succeeded)

    recorder = LimitsOnce()
    gateway = _recorded(stripe_gateway("http://stripe.invalid"), recorder)
    result = await gateway.charge(TestStripeGatewayContract().charge_request("c", "p", "k-rl"))
    assert result.status is ChargeStatus.SUCCEEDED
    assert [r.headers["idempotency-key"] for r in recorder.requests] == ["k-rl", "k-rl"]


async def test_an_environment_connected_to_stripe_charges_there_and_others_stay_on_the_sandbox(
    localstripe_url: str,
) -> None:
    """No STRIPE_SECRET_KEY: the sandbox is the default; one environment's own connection
    sends its customers and charges to Stripe (localstripe), the other's stay in the sandbox."""
    from entrypoints.bootstrap import Settings, bootstrap
    from tests.helpers import ENV, OTHER_ENV, VISA, card_payment, finalized_invoice
    from tests.integration.conftest import attach_card

    checkout = bootstrap(Settings(stripe_api_base=localstripe_url))
    try:
        for environment in (ENV, OTHER_ENV):
            await checkout.create_environment("t", environment, environment_id=environment)
        await checkout.connect_gateway(ENV, {"provider": "stripe", "secret_key": "sk_test_own"})
        paid = {}
        for environment in (ENV, OTHER_ENV):
            customer = await checkout.create_customer(environment, {"external_id": "acme"})
            assert customer.gateway_customer_id is not None
            if environment == ENV:
                await attach_card(localstripe_url, customer.gateway_customer_id, VISA)
            else:
                setup = await checkout.setup_card(environment, customer.id)
                await checkout.complete_sandbox_checkout(setup.id, VISA)
            invoice = await finalized_invoice(checkout, customer, env=environment)
            paid[environment] = await checkout.create_payment(environment, card_payment(invoice))
        sandbox = checkout.sandbox
        assert sandbox is not None
        charged_in_sandbox = [
            c["metadata"]["payment_id"] for c in await sandbox.succeeded_charges()
        ]
    finally:
        await checkout.aclose()
    assert paid[ENV].gateway_tracking_id is not None
    assert paid[ENV].gateway_tracking_id.startswith("pi_")
    assert paid[ENV].status.value == paid[OTHER_ENV].status.value == "succeeded"
    assert charged_in_sandbox == [paid[OTHER_ENV].id]
