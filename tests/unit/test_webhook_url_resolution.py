"""Webhook URLs' host names are resolved at registration and again at each delivery, and a
failed delivery records a kind that says nothing about what listens where."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest

from adapters.addresses import StaticAddressResolver, SystemAddressResolver
from adapters.clock import ManualClock
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.notifiers import RecordingNotifier
from adapters.webhooks import HttpWebhookSender
from core.errors import WebhookUrlNotAllowed
from core.model import Notification, NotificationType, WebhookDelivery, WebhookEndpoint
from core.usecases import webhook_endpoints
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from tests.helpers import ENV, PUBLIC_ADDRESS, api_client

ROUTE = "/api/v1/webhook_endpoints"
HOOK = "https://hooks.example/in"
# Every kind a delivery may record; an HTTP status is the only number in any of them.
KINDS = re.compile(
    r"^(timeout|connection_failed|tls_error|address_not_allowed|http_status_\d{3}"
    r"|endpoint_disabled|endpoint_deleted|failed)$"
)


def _checkout(
    resolver: StaticAddressResolver, *, allow_private: bool = False, **kwargs: Any
) -> CardCheckout:
    return bootstrap(
        Settings(webhook_allow_private_urls=allow_private),
        uow=InMemoryUnitOfWorkFactory(),
        clock=ManualClock(),
        notifier=RecordingNotifier(),
        address_resolver=resolver,
        **kwargs,
    )


# Registration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.1"],
        [PUBLIC_ADDRESS, "10.0.0.1"],  # one inside answer is enough
        ["::ffff:127.0.0.1"],
        ["2606:4700::1111", "fe80::1%eth0"],
        ["169.254.169.254"],
        ["100.64.0.1"],
        ["0.0.0.0"],
        ["fec0::1"],
        ["not an address"],
        [],  # the name does not resolve (or not in time)
    ],
)
async def test_a_name_resolving_inside_or_nowhere_is_refused_with_422(answers: list[str]) -> None:
    resolver = StaticAddressResolver({"hooks.example": answers})
    async with api_client(_checkout(resolver)) as client:
        response = await client.post(ROUTE, json={"url": HOOK})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert (error["code"], error["details"]["field"]) == ("webhook_url_not_allowed", "url")
        # The same words whether it has no address or an inside one.
        assert "must resolve, and only to public addresses" in error["message"]
        assert resolver.asked == ["hooks.example"]
        assert (await client.get(ROUTE)).json()["items"] == []


async def test_a_name_resolving_only_to_public_addresses_is_registered() -> None:
    resolver = StaticAddressResolver({"hooks.example": [PUBLIC_ADDRESS, "2606:4700::1111"]})
    async with api_client(_checkout(resolver)) as client:
        response = await client.post(ROUTE, json={"url": "https://Hooks.Example:8443/in"})
        assert response.status_code == 201, response.text
    assert resolver.asked == ["hooks.example"]


async def test_the_setting_lets_any_name_through_unresolved() -> None:
    resolver = StaticAddressResolver({"hooks.example": ["10.0.0.1"]})
    async with api_client(_checkout(resolver, allow_private=True)) as client:
        for url in (HOOK, "https://nowhere.example/"):
            assert (await client.post(ROUTE, json={"url": url})).status_code == 201
    assert resolver.asked == []


async def test_a_body_refused_for_its_events_or_its_address_is_not_resolved() -> None:
    resolver = StaticAddressResolver(default=[PUBLIC_ADDRESS])
    async with api_client(_checkout(resolver)) as client:
        bad_events = await client.post(ROUTE, json={"url": HOOK, "events": ["nope"]})
        assert bad_events.status_code == 400, bad_events.text
        literal = await client.post(ROUTE, json={"url": "http://10.0.0.1/"})
        assert literal.json()["error"]["code"] == "webhook_url_not_allowed"
    assert resolver.asked == []


async def test_without_a_resolver_no_name_is_accepted() -> None:
    checkout = _checkout(StaticAddressResolver(default=[PUBLIC_ADDRESS]))
    deps = attrs.evolve(checkout.deps, addresses=None)
    with pytest.raises(WebhookUrlNotAllowed):
        await webhook_endpoints.create_webhook_endpoint(deps, ENV, HOOK)
    assert await webhook_endpoints.create_webhook_endpoint(deps, ENV, "https://93.184.215.14/")


# The system's resolver ---------------------------------------------------------------------


async def test_the_system_resolver_answers_from_the_hosts_file() -> None:
    assert "127.0.0.1" in await SystemAddressResolver().resolve("localhost")


async def test_the_system_resolver_gives_nothing_for_a_name_that_does_not_resolve() -> None:
    assert await SystemAddressResolver().resolve("no-such-host.invalid") == []


async def test_the_system_resolver_gives_up_on_a_slow_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never(*args: object, **kwargs: object) -> list[Any]:
        await asyncio.sleep(60)
        return []

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", never)
    started = asyncio.get_running_loop().time()
    assert await SystemAddressResolver(timeout=0.05).resolve("slow.example") == []
    assert asyncio.get_running_loop().time() - started < 5


async def test_the_system_resolver_asks_for_the_name_a_delivery_connects_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[object] = []

    async def recording(host: object, *args: object, **kwargs: object) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, 0))] * 2

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", recording)
    assert await SystemAddressResolver().resolve("Straße.example") == [PUBLIC_ADDRESS]
    assert asked == ["xn--strae-oqa.example"]  # as httpx encodes it, not as IDNA 2003 would


# Delivery ----------------------------------------------------------------------------------


async def _queue_delivery(checkout: CardCheckout, endpoint_id: str) -> None:
    """One event due for the endpoint now, as the outbox would queue it."""
    now = checkout.deps.clock.now()
    event = Notification("evt_1", ENV, NotificationType.PAYMENT_FAILED, now, {"payment_id": "p"})
    async with checkout.deps.uow() as uow:
        await uow.webhook_deliveries.add(
            WebhookDelivery("whd_1", ENV, endpoint_id, event, created_at=now, next_attempt_at=now)
        )
        await uow.commit()


async def _attempted(checkout: CardCheckout, endpoint_id: str) -> list[WebhookDelivery]:
    return [d for d in await checkout.webhook_deliveries(ENV, endpoint_id) if d.attempts]


async def test_a_name_re_pointed_inside_after_registration_is_refused_at_delivery() -> None:
    resolver = StaticAddressResolver({"hooks.example": [PUBLIC_ADDRESS]})
    posted: list[httpx.Request] = []

    def subscriber(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        return httpx.Response(204)

    sender = HttpWebhookSender(
        httpx.AsyncClient(transport=httpx.MockTransport(subscriber)), resolver=resolver
    )
    checkout = _checkout(resolver, webhook_sender=sender)
    async with api_client(checkout) as client:
        created = await client.post(ROUTE, json={"url": HOOK, "events": ["payment.failed"]})
        endpoint_id = created.json()["id"]
        resolver.answers["hooks.example"] = ["10.0.0.1"]  # DNS rebinding
        await _queue_delivery(checkout, endpoint_id)
        report = await checkout.send_webhooks()
        assert (report.delivered, report.failed) == (0, 1)
        assert posted == []
        shown = (await client.get(f"{ROUTE}/{endpoint_id}/deliveries")).json()["items"]
        assert [(d["attempts"], d["last_error"]) for d in shown] == [(1, "address_not_allowed")]
    assert resolver.asked == ["hooks.example", "hooks.example"]
    # Pointed back outside, the next attempt goes through, to the address checked.
    resolver.answers["hooks.example"] = [PUBLIC_ADDRESS]
    [delivery] = await checkout.webhook_deliveries(ENV, endpoint_id)
    assert isinstance(checkout.deps.clock, ManualClock)
    checkout.deps.clock.current = delivery.next_attempt_at
    assert (await checkout.send_webhooks()).delivered == 1
    [request] = posted
    assert (request.url.host, request.headers["host"]) == (PUBLIC_ADDRESS, "hooks.example")


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _answers_500(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def _answers_in_plain_text(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await reader.read()
    writer.close()


async def _hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _says_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the sender gives up and hangs up
    writer.close()


@asynccontextmanager
async def _listening(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


@pytest.mark.parametrize(
    ("scheme", "handler", "kind"),
    [
        ("http", None, "connection_failed"),  # nothing listens
        ("http", _hangs_up, "connection_failed"),  # open, but not HTTP
        ("http", _says_nothing, "timeout"),
        ("http", _answers_500, "http_status_500"),
        ("https", _answers_in_plain_text, "tls_error"),
    ],
)
async def test_a_failed_delivery_records_a_kind_and_no_network_detail(
    scheme: str, handler: Handler | None, kind: str
) -> None:
    # Inside addresses allowed, so that the sender really connects to local ports.
    sender = HttpWebhookSender(timeout=0.5, allow_private_addresses=True)
    checkout = _checkout(StaticAddressResolver(), allow_private=True, webhook_sender=sender)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(sender.aclose)
        if handler is None:
            port = _closed_port()
        else:
            port = await stack.enter_async_context(_listening(handler))
        endpoint = await checkout.create_webhook_endpoint(
            ENV, {"url": f"{scheme}://127.0.0.1:{port}/hooks"}
        )
        await _queue_delivery(checkout, endpoint.id)
        assert (await checkout.send_webhooks()).failed == 1
    [tried] = await _attempted(checkout, endpoint.id)
    assert tried.last_error == kind
    assert KINDS.match(tried.last_error)
    assert str(port) not in tried.last_error


async def test_a_sender_that_breaks_records_failed_not_its_words() -> None:
    class Broken:
        async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> None:
            raise OSError("[Errno 111] Connect call failed ('10.0.0.7', 6379)")

    checkout = _checkout(StaticAddressResolver(default=[PUBLIC_ADDRESS]), webhook_sender=Broken())
    endpoint = await checkout.create_webhook_endpoint(ENV, {"url": HOOK})
    await _queue_delivery(checkout, endpoint.id)
    assert (await checkout.send_webhooks()).failed == 1
    [tried] = await _attempted(checkout, endpoint.id)
    assert tried.last_error == "failed"
