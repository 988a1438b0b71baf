"""Secrets at rest: sealed with Fernet (AES-128-CBC and HMAC-SHA256, authenticated).

The first key seals, every key opens, so a key is rotated by putting a new one first,
resealing everything (`card-checkout secrets rotate`), then dropping the old one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Every Fernet token starts with its version byte 0x80, which base64 spells "gA"; a value
# stored before secrets were sealed (whsec_..., sk_...) never does.
_SEALED_PREFIX = "gA"


class SecretsError(Exception):
    """The configured keys cannot serve the stored secrets: the service must not start."""


class SecretsUnreadable(SecretsError):
    """The configured keys cannot serve: malformed, or none opens a stored secret."""


class NoEncryptionKey(SecretsError):
    """A secret was to be stored where no encryption key is configured."""


class SecretBox:
    """Seals and opens secrets with the configured keys (none: it can open nothing)."""

    def __init__(self, keys: Sequence[str], source: str = "CARD_CHECKOUT_ENCRYPTION_KEYS") -> None:
        self.source = source  # where the keys came from, for the operator
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
                f"sealed secrets are stored that no key of {self.source} opens"
            ) from None


class Sealer(Protocol):
    def seal(self, secret: str) -> str: ...
    def open(self, stored: str) -> str: ...


class KeepsStoredForm:
    """Seals with `box`, but writes a secret read through it back in the form it was read:
    an update that leaves a secret as it was needs no key and stores no new ciphertext."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._stored: dict[str, str] = {}

    def open(self, stored: str) -> str:
        secret = self._box.open(stored)
        if is_sealed(stored):  # one stored plain (before sealing) is sealed when written
            self._stored[secret] = stored
        return secret

    def seal(self, secret: str) -> str:
        return self._stored.get(secret) or self._box.seal(secret)


def is_sealed(stored: str) -> bool:
    return stored.startswith(_SEALED_PREFIX)


def key_file_beside(database: Path) -> SecretBox:
    """The box of the key kept beside an embedded database, the key created (owner-only) on
    first use. It is written whole under another name and then linked into place, so a
    process racing this one, or one killed midway, never leaves or reads an empty key."""
    path = database.with_name(database.name + ".key")
    source = f"the key file {path}"
    if not path.exists():
        fd, written = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as file:  # mkstemp makes it 0600
                file.write(SecretBox.new_key() + "\n")
            with contextlib.suppress(FileExistsError):  # another process got there first
                os.link(written, path)
        finally:
            os.unlink(written)
        if database.exists() and database.stat().st_size:
            source += " (made just now: was the database copied without its key file?)"
    return SecretBox([path.read_text().strip()], source)
