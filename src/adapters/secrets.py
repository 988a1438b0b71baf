"""Secrets at rest: sealed with Fernet (AES-128-CBC and HMAC-SHA256, authenticated).

The first key seals, every key opens, so a key is rotated by putting a new one first,
resealing everything (`card-checkout secrets rotate`), then dropping the old one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Every Fernet token starts with its version byte 0x80, which base64 spells "gA"; a value
# stored before secrets were sealed (whsec_..., sk_...) never does.
_SEALED_PREFIX = "gA"


class SecretsUnreadable(Exception):
    """The configured keys cannot serve: malformed, or none opens a stored secret."""


class NoEncryptionKey(Exception):
    """A secret was to be stored where no encryption key is configured."""


class SecretBox:
    """Seals and opens secrets with the configured keys (none: it can open nothing)."""

    def __init__(self, keys: Sequence[str]) -> None:
        try:
            fernets = [Fernet(key.strip().encode()) for key in keys]
        except ValueError:
            raise SecretsUnreadable(
                "CARD_CHECKOUT_ENCRYPTION_KEYS: each key is 32 url-safe base64-encoded bytes "
                "(python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from None
        self._keys = MultiFernet(fernets) if fernets else None

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, secret: str) -> str:
        if self._keys is None:
            raise NoEncryptionKey(
                "no encryption key: set CARD_CHECKOUT_ENCRYPTION_KEYS to store secrets"
            )
        return self._keys.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        """The secret; a value stored before sealing existed is returned as it is."""
        if not is_sealed(stored):
            return stored
        if self._keys is None:
            raise SecretsUnreadable("sealed secrets are stored but no encryption key is set")
        try:
            return self._keys.decrypt(stored.encode()).decode()
        except InvalidToken:
            raise SecretsUnreadable(
                "sealed secrets are stored that none of CARD_CHECKOUT_ENCRYPTION_KEYS opens"
            ) from None

    def reseal(self, stored: str) -> str:
        """The secret sealed with the first key (a plain legacy value is sealed too)."""
        return self.seal(self.open(stored))


def is_sealed(stored: str) -> bool:
    return stored.startswith(_SEALED_PREFIX)


def key_file_beside(database: Path) -> str:
    """The key kept beside an embedded database, created (owner-only) on first use."""
    path = database.with_name(database.name + ".key")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        key = SecretBox.new_key()
        file.write(key + "\n")
    return key
