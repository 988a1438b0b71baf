"""uvicorn's httptools protocol with a cap on a request's head, counted before it is parsed.

httptools sets no limit on headers and joins a header's pieces as they arrive (work that
grows with the square of its size, on the event loop): a 100 MB header stalls every other
request for seconds. The app refuses heads over 16 KiB precisely (`header_limits.py`); this
cap is far above that and above any head with the first piece of a body, and only stops the
bytes from being parsed at all. `card-checkout serve` runs with it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from entrypoints.http.errors import RequestHeaderFieldsTooLarge, error_type, status_for
from entrypoints.http.wire import error_json

# Bytes read since a request began, before its headers were complete.
MAX_HEAD_BYTES: Final = 1024 * 1024


def _refusal() -> bytes:
    """The one error body, as every other refusal has it (with a request id of its own:
    the request never reached the app that would have given it one)."""
    error = RequestHeaderFieldsTooLarge(
        "The request's headers are far too large; nothing was read of them."
    )
    status = status_for(error)
    body = error_json(error, error_type=error_type(status), request_id=uuid.uuid4().hex)
    return json.dumps(body).encode()


class HeaderCappedProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def _refuse(self) -> None:
        if self.transport.is_closing():
            return
        body = _refusal()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
