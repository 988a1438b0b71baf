"""The service's logs, configured once: structlog's formatter on the root logger's handler.

Every standard-library logger (ours, uvicorn's, the libraries') writes through it, so the code
keeps calling `logging.getLogger(...)`. Each line carries what is bound to the context: the
`request_id` of the request being served (bound by the HTTP middleware), or the `pass_id` of
the background pass at work, and the `trace_id` and `span_id` when a span is current.

- `json`: one JSON object per line; a traceback is inside it, as `exception`.
- `text`: a line for a person (time, level, message, logger, then key=value), a traceback
  printed under it.

structlog is imported only to configure or bind (it takes a tenth of a second): the settings
read the names here without it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Final

if TYPE_CHECKING:
    import structlog
    from structlog.types import EventDict, Processor, WrappedLogger

LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Loggers that uvicorn gives handlers of its own: they write through ours instead.
_SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# Marks the handler installed here, so that configuring again replaces it (and only it).
_OURS: Final = "_card_checkout_handler"
# Chatty at INFO (a line per outbound request, with its URL, a subscriber's query included).
_QUIET_BELOW_WARNING: Final = ("httpx",)
# A JSON line starts with these, whatever the context and the record add.
_FIRST_KEYS: Final = ("timestamp", "level", "logger", "message")


def configure_logging(
    log_format: str = "text", level: str = "INFO", *, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record through one handler on the root logger, in `log_format`, at
    `level` and above; returns the handler. Calling it again replaces the handler."""
    import structlog

    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    if level.upper() not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    out = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(out)
    handler.setFormatter(_formatter(log_format, colors=out.isatty()))
    handler.setLevel(level.upper())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.setLevel(logging.NOTSET)
        if server_logger.handlers:  # uvicorn's own configuration: ours instead
            server_logger.handlers.clear()
            server_logger.propagate = True
        # else: as uvicorn left it (its access log, turned off, does not propagate)
    for name in _QUIET_BELOW_WARNING:
        logging.getLogger(name).setLevel(max(logging.getLevelName(level.upper()), logging.WARNING))
    structlog.configure(
        processors=[*_shared(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return handler


@contextmanager
def bound(**values: str) -> Iterator[None]:
    """Every line written inside carries `values` (a request id, a pass id)."""
    from structlog.contextvars import bound_contextvars

    with bound_contextvars(**values):
        yield


def _plain_line(_: WrappedLogger, __: str, event: EventDict) -> str:
    """`<time> [<level>] <event> [<logger>] key=value ...`, a traceback on the lines below."""
    exception = event.pop("exception", None)
    line = (
        f"{event.pop('timestamp', '')} [{event.pop('level', ''):<9}] {event.pop('event', '')} "
        f"[{event.pop('logger', '')}]"
    )
    if event:
        line += " " + " ".join(f"{key}={value}" for key, value in sorted(event.items()))
    return f"{line}\n{exception}" if exception else line


def bound_value(name: str) -> str | None:
    """What `bound` holds under `name` here and now (None outside of it)."""
    from structlog.contextvars import get_contextvars

    value = get_contextvars().get(name)
    return value if isinstance(value, str) else None


def _drop_server_colors(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """uvicorn passes its message again, with terminal colors, as an extra."""
    event.pop("color_message", None)
    return event


def _in_reading_order(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    ordered: EventDict = {key: event[key] for key in _FIRST_KEYS if key in event}
    ordered.update(event)
    return ordered


def _add_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """The current span's ids, when tracing is on (no span can be current before
    OpenTelemetry was imported, so nothing is imported here)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event["trace_id"] = format(context.trace_id, "032x")
            event["span_id"] = format(context.span_id, "016x")
    return event


def _shared() -> list[Processor]:
    """What every line gets, whether written by a standard-library logger or structlog's."""
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        _drop_server_colors,
        _add_trace_ids,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _formatter(log_format: str, *, colors: bool) -> structlog.stdlib.ProcessorFormatter:
    import structlog

    rendering: list[Processor]
    if log_format == "json":
        rendering = [
            structlog.processors.format_exc_info,  # the traceback, as text, in `exception`
            structlog.processors.EventRenamer("message"),
            _in_reading_order,
            structlog.processors.JSONRenderer(),
        ]
    elif colors:
        # A terminal: aligned and coloured for a person. A plain traceback: the default
        # (rich's) shows local variables, which may hold secrets or card data.
        rendering = [
            structlog.dev.ConsoleRenderer(
                colors=True, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    else:
        # A file or a pipe: the same fields in the same order, at a fifth of the cost (the
        # console renderer's padding and styling are most of a request's logging time).
        rendering = [structlog.processors.format_exc_info, _plain_line]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
