"""Request bodies: JSON only, at most 64 KiB, read without trusting Content-Length."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

from core.errors import PayloadTooLarge, UnsupportedMediaType
from entrypoints.http.wire import Json, parse_json_object

MAX_BODY_BYTES: Final = 64 * 1024
# Stripe's events can carry more than a request of ours.
MAX_WEBHOOK_BYTES: Final = 512 * 1024


async def raw_body(request: Request, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body's bytes, refusing more than `limit` before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, *, optional: bool = False) -> Json | None:
    """The body as a JSON object; None when `optional` and there is no body at all."""
    body = await raw_body(request)
    if optional and not body.strip():
        return None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType()
    return parse_json_object(body)
