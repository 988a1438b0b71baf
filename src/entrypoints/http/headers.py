"""Security headers on every answer: JSON is never sniffed as something else nor cached, and
the sandbox's hosted pages cannot be framed, run scripts, post elsewhere or leak their URL, and
the API reference runs only the scripts the service serves."""

from __future__ import annotations

import base64
import hashlib
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALWAYS: Final = [(b"x-content-type-options", b"nosniff")]
_JSON: Final = [(b"cache-control", b"no-store")]


def page_policy(style: str) -> bytes:
    """The Content-Security-Policy of a page whose only style is `style`, inline: nothing else
    loads, no script runs, forms post back here only, and no site may frame it."""
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ).encode()


def page_headers(style: str) -> dict[str, str]:
    """The headers of a hosted page (beside those every answer gets)."""
    return {
        "Content-Security-Policy": page_policy(style).decode(),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


# The API reference: scripts, styles and images from this service only (Swagger UI's icons
# are data: URIs in its style sheet); it reads the document and tries requests here only.
_REFERENCE_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def reference_headers() -> dict[str, str]:
    """The headers of the API reference page at /docs (beside those every answer gets)."""
    return {
        "Content-Security-Policy": _REFERENCE_POLICY,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


class SecurityHeaders:
    """Pure ASGI middleware: `nosniff` on every answer, `no-store` on JSON ones."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kind = dict(headers).get(b"content-type", b"")
                headers += _ALWAYS
                if kind.startswith(b"application/json"):
                    headers += _JSON
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
