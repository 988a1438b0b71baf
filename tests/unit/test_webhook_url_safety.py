"""Outbound webhooks never reach inside: private addresses refused at registration and at
delivery (a name can change its answer after registration), unless the setting allows them."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx
import pytest

from adapters.addresses import StaticAddressResolver
from adapters.clock import ManualClock
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.webhooks import HttpWebhookSender, WebhookNotAccepted
from core.errors import WebhookUrlNotAllowed
from core.model import Notification, NotificationType, WebhookDelivery, WebhookEndpoint
from core.rules import check_webhook_destination
from entrypoints.bootstrap import Settings, bootstrap
from entrypoints.http import create_app
from tests.helpers import ENV

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DELIVERY = WebhookDelivery(
    id="whd_1",
    environment_id="env_a",
    endpoint_id="we_1",
    notification=Notification(
        "evt_1", "env_a", NotificationType.PAYMENT_FAILED, T0, {"payment_id": "pay_1"}
    ),
    created_at=T0,
    next_attempt_at=T0,
)
INSIDE = [
    "http://127.0.0.1:8080/hooks",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://localhost/hooks",
    "http://LOCALHOST./hooks",
    "http://api.localhost/hooks",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[fec0::1]/",  # site-local: deprecated, yet "global" to Python 3.11
    "http://[ff02::1]/",
    "http://[::]/",
    "http://0.0.0.0/",
    "http://0/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[2002:7f00:1::]/",
    "https://user:pw@127.0.0.1:443/x",
]
OUTSIDE = [
    "https://subscriber.example/hooks",
    "https://93.184.215.14/hooks",
    "http://[2606:4700::1111]/",
    "https://hooks.localhost.example.com/",
    "https://1password.example/",
]


@pytest.mark.parametrize("url", INSIDE)
def test_an_inside_address_is_refused_at_registration(url: str) -> None:
    with pytest.raises(WebhookUrlNotAllowed):
        check_webhook_destination(url)
    assert check_webhook_destination(url, allow_private=True) == url


@pytest.mark.parametrize("url", OUTSIDE)
def test_a_public_address_or_name_is_accepted(url: str) -> None:
    assert check_webhook_destination(url) == url


@pytest.mark.parametrize("allow_private", [False, True])
async def test_the_route_answers_422_webhook_url_not_allowed_unless_the_setting_allows(
    allow_private: bool,
) -> None:
    checkout = bootstrap(
        Settings(webhook_allow_private_urls=allow_private), uow=InMemoryUnitOfWorkFactory()
    )
    await checkout.create_environment("t", "test", environment_id=ENV)
    key = (await checkout.create_api_key("t", [ENV], "admin"))[1]
    transport = httpx.ASGITransport(app=create_app(checkout, notify_every=None))
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        for url in ("http://169.254.169.254/latest/meta-data", "http://0x7f.1/", "http://[::1]/"):
            response = await client.post("/api/v1/webhook_endpoints", json={"url": url})
            if allow_private:
                assert response.status_code == 201, response.text
            else:
                assert response.status_code == 422, response.text
                error = response.json()["error"]
                assert (error["code"], error["details"]["field"]) == (
                    "webhook_url_not_allowed", "url",
                )  # fmt: skip
        listed = (await client.get("/api/v1/webhook_endpoints")).json()["items"]
        assert len(listed) == (3 if allow_private else 0)


def test_the_setting_is_read_from_the_environment_and_off_by_default() -> None:
    assert Settings().webhook_allow_private_urls is False
    assert Settings.from_environ({}).webhook_allow_private_urls is False
    environ = {"WEBHOOK_ALLOW_PRIVATE_URLS": "1"}
    assert Settings.from_environ(environ).webhook_allow_private_urls is True


def _endpoint(url: str) -> WebhookEndpoint:
    return WebhookEndpoint(
        id="we_1", environment_id="env_a", url=url, events=frozenset(),
        secret="whsec_test_secret", created_at=T0,
    )  # fmt: skip


def _sender(resolver: StaticAddressResolver, seen: list[httpx.Request]) -> HttpWebhookSender:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpWebhookSender(client, clock=ManualClock(T0), resolver=resolver)


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["93.184.215.14", "10.1.2.3"], ["::1"]])
async def test_the_sender_refuses_a_name_that_now_resolves_inside(answer: list[str]) -> None:
    seen: list[httpx.Request] = []
    resolver = StaticAddressResolver({"hooks.example": answer})
    sender = _sender(resolver, seen)
    with pytest.raises(WebhookNotAccepted) as refused:
        await sender.send(_endpoint("https://hooks.example/in"), DELIVERY)
    assert resolver.asked == ["hooks.example"]
    assert seen == []
    assert refused.value.recorded == "address_not_allowed"


async def test_the_sender_connects_to_the_address_it_checked() -> None:
    seen: list[httpx.Request] = []
    resolver = StaticAddressResolver({"hooks.example": ["93.184.215.14"]})
    await _sender(resolver, seen).send(_endpoint("https://hooks.example:8443/in?a=1"), DELIVERY)
    [request] = seen
    assert str(request.url) == "https://93.184.215.14:8443/in?a=1"
    assert request.headers["host"] == "hooks.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.example"


async def test_the_sender_refuses_an_inside_literal_without_resolving_it() -> None:
    seen: list[httpx.Request] = []
    resolver = StaticAddressResolver()
    with pytest.raises(WebhookNotAccepted):
        await _sender(resolver, seen).send(_endpoint("http://0x7f.1:8080/"), DELIVERY)
    assert (resolver.asked, seen) == ([], [])


def _listening_port() -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener, listener.getsockname()[1]


async def test_a_closed_and_an_open_inside_port_fail_alike() -> None:
    listener, open_port = _listening_port()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    sender = HttpWebhookSender(timeout=1.0, clock=ManualClock(T0))
    errors = []
    try:
        for port in (open_port, closed_port):
            with pytest.raises(WebhookNotAccepted) as refused:
                await sender.send(_endpoint(f"http://127.0.0.1:{port}/"), DELIVERY)
            errors.append(refused.value.recorded)
    finally:
        listener.close()
        await sender.aclose()
    assert errors[0] == errors[1] == "address_not_allowed"


async def test_the_sender_allows_inside_addresses_when_told() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    sender = HttpWebhookSender(client, clock=ManualClock(T0), allow_private_addresses=True)
    await sender.send(_endpoint("http://127.0.0.1:9/in"), DELIVERY)
    assert str(seen[0].url) == "http://127.0.0.1:9/in"
