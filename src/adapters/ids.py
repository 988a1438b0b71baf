"""Ids: a prefix and a ULID, sortable by creation time and unguessable."""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import Final

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of Crockford base-32 digits, indexed by the 10 bits it spells.
_PAIRS: Final = tuple(high + low for high in _CROCKFORD for low in _CROCKFORD)
# A ULID's 128 bits as 26 digits (130 bits, the top two zero): 13 pairs, most significant first.
_SHIFTS: Final = tuple(range(120, -1, -10))


def ulid_text(value: int) -> str:
    """The 26-character Crockford base-32 spelling of a 128-bit ULID."""
    return "".join([_PAIRS[value >> shift & 0x3FF] for shift in _SHIFTS])


class UlidIdGenerator:
    """ULIDs (48 bits of Unix milliseconds, 80 bits from the OS's CSPRNG), strictly increasing.

    Ids made in one millisecond keep the order they were made in (lists break ties on
    `created_at` by id): when fresh random bits would not sort after the last id, the id is
    the last plus 1 plus 32 fresh random bits, so it cannot be guessed from the one before
    (python-ulid adds exactly 1). About four times faster than `str(ulid.ULID())`, which
    profiles showed costing 9 % of a payment made in memory.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def new_ulid(self) -> str:
        value = time.time_ns() // 1_000_000 << 80 | int.from_bytes(os.urandom(10))
        with self._lock:
            if value <= self._last:
                value = self._last + 1 + int.from_bytes(os.urandom(4))
            self._last = value
        return ulid_text(value)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{self.new_ulid()}"

    def new_secret(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_urlsafe(32)}"
