"""`HttpWebhookSender`'s connections: to the address it checked, with the name's certificate
checked, and none kept for another delivery."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import webhooks
from adapters.addresses import StaticAddressResolver
from adapters.webhooks import HttpWebhookSender, WebhookNotAccepted
from core.model import Notification, NotificationType, WebhookDelivery, WebhookEndpoint
from tests.helpers import ENV


def _one_delivery_to(url: str) -> tuple[WebhookEndpoint, WebhookDelivery]:
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        id="we_1", environment_id=ENV, url=url, events=frozenset(), secret="whsec_test",
        created_at=now,
    )  # fmt: skip
    event = Notification("evt_1", ENV, NotificationType.PAYMENT_FAILED, now, {})
    return endpoint, WebhookDelivery("whd_1", ENV, endpoint.id, event, now, now)


def _certificate_for(name: str, directory: Path) -> tuple[str, Path, Path]:
    """A CA's certificate (PEM), and the files of a key and a certificate it signed for
    `name`."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def issued(subject: str, public_key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
        )

    ca = (
        issued("test ca", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        issued(name, key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (directory / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca.public_bytes(pem).decode(), directory / "cert.pem", directory / "key.pem"


@pytest.mark.parametrize(
    ("certified", "kind"), [("hooks.example", None), ("other.example", "tls_error")]
)
async def test_the_sender_connects_to_the_checked_address_and_checks_the_names_certificate(
    certified: str, kind: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loopback stands in for a public address: the local server plays the subscriber's.
    monkeypatch.setattr(webhooks, "host_may_be_public", lambda host: True)
    monkeypatch.setattr(webhooks, "are_public_addresses", lambda answers: bool(answers))
    ca, cert, key = _certificate_for(certified, tmp_path)
    heads: list[bytes] = []

    async def subscriber(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = await asyncio.start_server(subscriber, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    resolver = StaticAddressResolver({"hooks.example": ["127.0.0.1"]})
    client = httpx.AsyncClient(verify=ssl.create_default_context(cadata=ca))
    sender = HttpWebhookSender(client, resolver=resolver)
    endpoint, delivery = _one_delivery_to(f"https://hooks.example:{port}/in")
    try:
        if kind is None:
            await sender.send(endpoint, delivery)
            [head] = heads
            assert f"host: hooks.example:{port}\r\n".encode() in head.lower()
        else:
            with pytest.raises(WebhookNotAccepted) as refused:
                await sender.send(endpoint, delivery)
            assert (refused.value.recorded, heads) == (kind, [])
    finally:
        await sender.aclose()
        server.close()
    assert resolver.asked == ["hooks.example"]


async def test_no_connection_is_kept_for_the_next_delivery() -> None:
    """A kept connection is pooled by address alone: another name sharing the address would
    be sent over a connection whose certificate was checked for this one."""
    connections = 0

    async def keeps_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(keeps_alive, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = HttpWebhookSender(allow_private_addresses=True)
    endpoint, delivery = _one_delivery_to(f"http://127.0.0.1:{port}/in")
    try:
        for _ in range(2):
            await sender.send(endpoint, delivery)
    finally:
        await sender.aclose()
        server.close()
    assert connections == 2
