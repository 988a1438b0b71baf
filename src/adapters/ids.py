"""Ids: a prefix and a ULID, sortable by creation time and unguessable."""

from __future__ import annotations

import secrets

from ulid import ULID


class UlidIdGenerator:
    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{ULID()}"

    def new_secret(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_urlsafe(32)}"
