"""Tracing (the `otel` extra): a span per request named by its route, with its status and
never its raw path or query; the request's log lines carry the span's trace id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import structlog

pytest.importorskip(
    "opentelemetry.sdk", reason="tracing is an extra: pip install 'card-checkout[otel]'"
)
pytest.importorskip(
    "opentelemetry.instrumentation.asgi",
    reason="tracing is an extra: pip install 'card-checkout[otel]'",
)

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from entrypoints.http.tracing import add_tracing, tracer_provider_from_environ
from entrypoints.logs import configure_logging
from tests.helpers import ENV

CARD = "4242424242424242"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def client(
    checkout: CardCheckout, exporter: InMemorySpanExporter
) -> AsyncIterator[httpx.AsyncClient]:
    await checkout.create_environment("t", "test", environment_id=ENV)
    _, key = await checkout.create_api_key("t", [ENV], "read")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(checkout, notify_every=None)
    add_tracing(app, provider)
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client
    provider.shutdown()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream=stream)
    level = logging.getLogger().level
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)
    logging.getLogger("httpx").setLevel(logging.NOTSET)
    structlog.reset_defaults()


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = exporter.get_finished_spans()
    return span


async def test_a_request_is_one_span_named_by_its_route_with_its_status(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    response = await client.get(f"/api/v1/payments/pay_{CARD}?expand={CARD}")

    assert response.status_code == 400  # card data is refused
    span = only_span(exporter)
    assert span.name == "GET /api/v1/payments/{payment_id}"
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/api/v1/payments/{payment_id}"
    assert attributes.get("http.status_code", attributes.get("http.response.status_code")) == 400
    # Neither the id in the path nor the query leaves the service in a span.
    assert not [key for key, value in attributes.items() if CARD in str(value)]
    assert not [key for key, value in attributes.items() if "pay_" in str(value)]


async def test_a_bug_is_a_failed_span_and_an_unknown_path_is_named_by_its_method(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(CardCheckout, "list_payments", broken)
    await client.get("/api/v1/payments")
    await client.get("/nothing/here")
    await client.get("/healthz")  # probes are not traced

    bug, unknown = exporter.get_finished_spans()
    assert (bug.name, bug.status.status_code) == ("GET /api/v1/payments", StatusCode.ERROR)
    assert unknown.name == "GET"
    assert "http.route" not in (unknown.attributes or {})


async def test_the_lines_of_a_traced_request_carry_its_trace_id(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    await client.get("/api/v1/invoices", headers={"X-Request-ID": "req-traced"})

    span = only_span(exporter)
    assert span.context is not None
    [line] = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert line["request_id"] == "req-traced"
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    assert len(line["span_id"]) == 16


def test_tracing_is_on_only_when_an_otlp_endpoint_is_set() -> None:
    assert tracer_provider_from_environ({}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracer_provider_from_environ({**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL must be one of"):
        tracer_provider_from_environ({**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})
    provider = tracer_provider_from_environ(endpoint)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "card-checkout"
    provider.shutdown()
