"""Optional tracing (the `otel` extra): a span per request, named by its route and carrying
its status, exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces' own
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the standard `OTEL_*` variables apply.

A span carries the route's pattern, never the raw path or query: those hold ids, or whatever
a caller typed (card numbers included). Probes and scrapes are not traced. While a span is
current, every log line carries its `trace_id` and `span_id` (see `entrypoints.logs`).
OpenTelemetry is imported only when tracing is on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.routing import Match
from starlette.types import Scope

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

logger = logging.getLogger("card_checkout.http")

ENDPOINT_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
PROTOCOLS: Final = ("http/protobuf", "grpc")
SERVICE_NAME: Final = "card-checkout"
# Every few seconds from load balancers and Prometheus: not worth a trace each.
NOT_TRACED: Final = r"/healthz$,/readyz$,/metrics$"
# Span attributes that would carry the raw path or query, as semantic conventions old and new
# name them.
_PATHS: Final = ("http.target", "url.path")
_QUERIES: Final = ("url.query",)
_URLS: Final = ("http.url", "url.full")


def tracer_provider_from_environ(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A provider exporting over OTLP, set as the process's own; None when no endpoint is
    configured, tracing is disabled (`OTEL_SDK_DISABLED=true`) or the extra is missing."""
    env = os.environ if environ is None else environ
    if not any(env.get(name) for name in ENDPOINT_VARIABLES):
        return None
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but tracing is not installed "
            "(pip install 'card-checkout[otel]'): serving without traces"
        )
        return None
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself.
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": SERVICE_NAME})
    )
    provider.add_span_processor(BatchSpanProcessor(_exporter(env)))
    trace.set_tracer_provider(provider)
    return provider


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    """OTLP over HTTP (the specification's default) or gRPC, as the variables say; each
    exporter reads its endpoint, headers and timeout from the environment."""
    variable = next(
        (name for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
         if env.get(name)),
        None,
    )  # fmt: skip
    protocol = env[variable].strip() if variable else "http/protobuf"
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as OTLPHttpSpanExporter,
        )

        return OTLPHttpSpanExporter()
    raise ValueError(f"{variable} must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")


def add_tracing(app: Starlette, tracer_provider: TracerProvider) -> None:
    """Trace each request of `app` (outermost: the span covers every middleware, so that all
    the request's log lines carry its trace id)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=tracer_provider,
        excluded_urls=NOT_TRACED,
        default_span_details=_span_details(app),
        server_request_hook=_without_raw_path,
        exclude_spans=["receive", "send"],  # one span per request, not one per message
    )


def _span_details(app: Starlette) -> Callable[[Scope], tuple[str, dict[str, Any]]]:
    """The span's name, `GET /api/v1/payments/{payment_id}`, and its `http.route`; the method
    alone for a path no route serves (as the semantic conventions say)."""

    def details(scope: Scope) -> tuple[str, dict[str, Any]]:
        method = scope.get("method", "HTTP")
        route = _route_pattern(app, scope)
        if route is None:
            return method, {}
        return f"{method} {route}", {"http.route": route}

    return details


def _route_pattern(app: Starlette, scope: Scope) -> str | None:
    """The pattern of the route that serves `scope` (or would, but for its method)."""
    partial = None
    for route in app.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None)
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial


def _without_raw_path(span: Span, scope: Scope) -> None:
    """Replace the raw path and query the instrumentation recorded by the route's pattern."""
    attributes = getattr(span, "attributes", None) or {}
    pattern = str(attributes.get("http.route") or "unmatched")
    for key in _PATHS:
        if key in attributes:
            span.set_attribute(key, pattern)
    for key in _QUERIES:
        if key in attributes:
            span.set_attribute(key, "")
    for key in _URLS:
        if key in attributes:
            parts = urlsplit(str(attributes[key]))
            span.set_attribute(key, urlunsplit((parts.scheme, parts.netloc, pattern, "", "")))
