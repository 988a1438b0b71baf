"""The service's logs: every line of a request carries its id (the route's, the notifier's,
a bug's traceback), every line of a background pass its pass id; JSON or text; LOG_LEVEL."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import structlog

from adapters.addresses import StaticAddressResolver
from adapters.clock import ManualClock
from adapters.memory import InMemoryUnitOfWorkFactory
from adapters.notifiers import LoggingNotifier
from adapters.sandbox import SandboxFaults
from adapters.webhooks import HttpWebhookSender
from entrypoints.bootstrap import CardCheckout, Settings, bootstrap
from entrypoints.http import create_app
from entrypoints.logs import configure_logging
from tests.helpers import (
    DECLINED,
    ENV,
    PRODUCT_PAGE_BODY,
    PUBLIC_ADDRESS,
    card_payment,
    customer_with_card,
    error_of,
    finalized_invoice,
)

Configure = Callable[..., io.StringIO]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """Configures the service's logging into a string; undone after the test."""
    root = logging.getLogger()
    level = root.level
    installed: list[logging.Handler] = []

    def configured(log_format: str = "json", level: str = "INFO") -> io.StringIO:
        stream = io.StringIO()
        installed.append(configure_logging(log_format, level, stream=stream))
        return stream

    yield configured
    for handler in installed:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.NOTSET)
    structlog.reset_defaults()


def logging_checkout(**overrides: Any) -> CardCheckout:
    """In memory, with the notifier of `serve` (one log line per notification)."""
    return bootstrap(
        uow=InMemoryUnitOfWorkFactory(),
        clock=ManualClock(),
        notifier=LoggingNotifier(),
        sandbox_faults=SandboxFaults(),
        address_resolver=StaticAddressResolver(default=[PUBLIC_ADDRESS]),
        **overrides,
    )


@pytest.fixture
async def checkout() -> CardCheckout:
    checkout = logging_checkout()
    await checkout.create_environment("t", "test", environment_id=ENV)
    return checkout


@pytest.fixture
async def client(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    _, key = await checkout.create_api_key("t", [ENV], "write")
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    transport = httpx.ASGITransport(app=create_app(checkout, notify_every=None))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Each line as JSON (fails on any line that is not)."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(CardCheckout, "get_payment", broken)


async def test_each_line_of_a_request_carries_its_id_in_json_however_requests_interleave(
    checkout: CardCheckout, client: httpx.AsyncClient, configure: Configure
) -> None:
    customer = await customer_with_card(checkout)
    invoices = [await finalized_invoice(checkout, customer) for _ in range(3)]
    stream = configure("json")

    responses = await asyncio.gather(*(
        client.post(
            "/api/v1/payments",
            content=PRODUCT_PAGE_BODY % invoice.id.encode(),
            headers={"Content-Type": "application/json", "X-Request-ID": f"req-{n}"},
        )
        for n, invoice in enumerate(invoices)
    ))  # fmt: skip

    assert [r.status_code for r in responses] == [201, 201, 201]
    request_of_payment = {r.json()["id"]: r.headers["x-request-id"] for r in responses}
    lines = json_lines(stream)
    notified = [line for line in lines if line["logger"] == "card_checkout.notifications"]
    # created, processing, succeeded and the invoice's paid, for each payment
    assert len(notified) == 12
    for line in notified:
        assert line["request_id"] == request_of_payment[line["data"]["payment_id"]]
        assert line["environment_id"] == ENV
        assert line["message"].startswith(f"notification {line['notification_id']} ")
    requests = [line for line in lines if line["message"] == "request"]
    assert sorted(line["request_id"] for line in requests) == ["req-0", "req-1", "req-2"]
    assert {(line["route"], line["status"], line["level"]) for line in requests} == {
        ("/api/v1/payments", 201, "info")
    }
    assert all(line["request_id"] in {"req-0", "req-1", "req-2"} for line in lines)
    assert "42424242" not in stream.getvalue()
    assert "4242 4242" not in stream.getvalue()


async def test_a_bugs_traceback_is_inside_its_requests_one_json_line(
    client: httpx.AsyncClient, configure: Configure, a_bug: None
) -> None:
    stream = configure("json")

    response = await client.get("/api/v1/payments/pay_1", headers={"X-Request-ID": "req-bug"})

    assert response.status_code == 500
    [line] = json_lines(stream)
    assert (line["request_id"], line["level"], line["status"]) == ("req-bug", "error", 500)
    assert line["route"] == "/api/v1/payments/{payment_id}"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("RuntimeError: a bug")
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]


async def test_text_lines_read_as_key_values_with_the_traceback_under_its_line(
    client: httpx.AsyncClient, configure: Configure, a_bug: None
) -> None:
    stream = configure("text")

    await client.get("/api/v1/payments/pay_1", headers={"X-Request-ID": "req-bug"})

    first, *traceback = stream.getvalue().splitlines()
    assert "[error" in first
    assert "[card_checkout.http]" in first
    assert "request_id=req-bug" in first
    assert "route=/api/v1/payments/{payment_id}" in first
    assert "status=500" in first
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "RuntimeError: a bug"
    assert "{" not in first.split("route=")[0]  # not JSON


async def test_log_level_leaves_out_lines_below_it_for_every_logger(
    checkout: CardCheckout, client: httpx.AsyncClient, configure: Configure, a_bug: None
) -> None:
    stream = configure("json", "warning")

    await client.get("/api/v1/invoices", headers={"X-Request-ID": "req-fine"})
    await client.get("/api/v1/payments/pay_1", headers={"X-Request-ID": "req-bug"})
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")

    lines = json_lines(stream)
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("card_checkout.http", "error"),
        ("uvicorn.error", "warning"),
    ]
    assert lines[0]["request_id"] == "req-bug"


async def test_uvicorns_lines_go_through_the_same_formatter_once(configure: Configure) -> None:
    server = logging.getLogger("uvicorn.error")
    server.addHandler(logging.StreamHandler(io.StringIO()))  # as uvicorn's own config does
    server.propagate = False
    stream = configure("json")

    server.info("Uvicorn running on %s", "http://127.0.0.1:8000", extra={"color_message": "x"})

    [line] = json_lines(stream)
    assert line["message"] == "Uvicorn running on http://127.0.0.1:8000"
    assert "color_message" not in line


async def test_an_access_log_that_uvicorn_turned_off_stays_off(configure: Configure) -> None:
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()  # what uvicorn does with access_log=False
    access.propagate = False
    stream = configure("json")

    access.info('127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200')

    assert stream.getvalue() == ""


async def test_a_background_passs_lines_carry_its_pass_id_and_no_request_id(
    configure: Configure,
) -> None:
    """The notifier's lines and the webhook sender's (an adapter) in the server's passes."""

    def subscribers(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.example.com":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200)

    sender = HttpWebhookSender(
        httpx.AsyncClient(transport=httpx.MockTransport(subscribers)),
        allow_private_addresses=True,
    )
    checkout = logging_checkout(dispatch_inline=False, webhook_sender=sender)
    await checkout.create_environment("t", "test", environment_id=ENV)
    for host in ("up", "down"):
        await checkout.create_webhook_endpoint(ENV, {"url": f"https://{host}.example.com/h"})
    customer = await customer_with_card(checkout, DECLINED)
    invoice = await finalized_invoice(checkout, customer)
    await error_of(checkout.create_payment(ENV, card_payment(invoice)))
    stream = configure("json")

    app = create_app(checkout, notify_every=0.01, close_checkout=False)
    async with app.router.lifespan_context(app):
        for _ in range(500):
            if "failed: ConnectError" in stream.getvalue():
                break
            await asyncio.sleep(0.01)

    lines = json_lines(stream)
    notified = [line for line in lines if line["logger"] == "card_checkout.notifications"]
    [refused] = [line for line in lines if line["logger"] == "adapters.webhooks"]
    assert len(notified) == 3
    assert {line["background_pass"] for line in notified} == {"delivery"}
    assert refused["background_pass"] == "webhook"
    assert all(len(line["pass_id"]) == 32 and "request_id" not in line for line in lines)
    # One delivery pass delivered all three: its lines share a pass id, the webhook pass's differs.
    assert len({line["pass_id"] for line in notified}) == 1
    assert refused["pass_id"] != notified[0]["pass_id"]


def test_log_settings_come_from_the_environment_and_a_wrong_one_is_named() -> None:
    assert (Settings.from_environ({}).log_format, Settings.from_environ({}).log_level) == (
        "text",
        "INFO",
    )
    chosen = Settings.from_environ({"LOG_FORMAT": "JSON", "LOG_LEVEL": "debug"})
    assert (chosen.log_format, chosen.log_level) == ("json", "DEBUG")
    with pytest.raises(ValueError, match=r"^LOG_FORMAT must be one of text, json, not 'xml'$"):
        Settings.from_environ({"LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match=r"^LOG_LEVEL must be one of .*, not 'loud'$"):
        Settings.from_environ({"LOG_LEVEL": "loud"})
