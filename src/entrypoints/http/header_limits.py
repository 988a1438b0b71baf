"""Request headers are capped: too many, or too large in total, answer 431 before any route.

uvicorn's default parser (httptools) takes headers of any size, so this is the cap that holds.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from entrypoints.http.errors import RequestHeaderFieldsTooLarge, error_response

# Names and values together; a browser's headers, cookies and all, are a few KiB.
MAX_HEADER_BYTES: Final = 16 * 1024
MAX_HEADER_COUNT: Final = 100


class HeaderLimits:
    """Pure ASGI middleware: 431 `request_header_fields_too_large` for more than `max_count`
    headers or more than `max_bytes` of names and values."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = MAX_HEADER_BYTES,
        max_count: int = MAX_HEADER_COUNT,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._too_large(scope["headers"]):
            refusal = RequestHeaderFieldsTooLarge(
                max_header_bytes=self.max_bytes, max_header_count=self.max_count
            )
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _too_large(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if len(headers) > self.max_count:
            return True
        return sum(len(name) + len(value) for name, value in headers) > self.max_bytes
