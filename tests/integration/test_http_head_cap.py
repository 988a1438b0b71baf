"""`card-checkout serve` stops reading a request whose head is absurdly large: its bytes are
never parsed, so one such request cannot stall the others."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from entrypoints.http.protocol import MAX_HEAD_BYTES
from tests.integration.http_server import Server

CHUNK = 64 * 1024


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    server = Server(sqlite_url, tmp_path / "server.log")
    server.start()
    yield server
    server.stop()


def _flood_one_header(port: int) -> int:
    """Send one header without end; the bytes sent when the server closed on it."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as attacker:
        attacker.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            while sent < 64 * MAX_HEAD_BYTES:
                attacker.sendall(b"a" * CHUNK)
                sent += CHUNK
        except (ConnectionResetError, BrokenPipeError):
            return sent
    raise AssertionError(f"the server read {sent} bytes of one header without closing")


def test_a_huge_header_is_cut_off_after_the_cap_and_the_service_goes_on(server: Server) -> None:
    sent = _flood_one_header(server.port)
    # The kernel's buffers take a little more than the server read before it closed.
    assert sent < 16 * MAX_HEAD_BYTES
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200


def test_a_large_body_behind_a_normal_head_is_not_mistaken_for_a_head(server: Server) -> None:
    body = b'{"pad": "' + b"x" * (2 * MAX_HEAD_BYTES) + b'"}'
    answer = httpx.post(f"{server.base_url}/api/v1/payments", content=body, timeout=10)
    assert answer.status_code in (401, 413), answer.text  # the app's answers, not the cap's
