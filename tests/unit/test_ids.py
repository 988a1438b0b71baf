"""Ids: ULIDs after a prefix, read back by python-ulid, ordered by time, never guessable."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

from ulid import ULID

from adapters.ids import UlidIdGenerator, ulid_text


def test_an_id_is_its_prefix_and_a_ulid_of_now() -> None:
    before = datetime.now(UTC)
    made = UlidIdGenerator().new_id("pay")
    after = datetime.now(UTC)

    prefix, _, text = made.partition("_")
    parsed = ULID.from_str(text)
    assert prefix == "pay"
    assert str(parsed) == text
    assert len(text) == 26
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= parsed.datetime
    assert parsed.datetime <= after


def test_the_spelling_is_python_ulids() -> None:
    for value in (0, 1, 2**80 - 1, 2**127 + 12345, 2**128 - 1):
        assert ulid_text(value) == str(ULID.from_int(value))


def test_ids_sort_in_the_order_they_were_made() -> None:
    ids = UlidIdGenerator()
    made = [ids.new_ulid() for _ in range(2000)]
    time.sleep(0.002)
    made.append(ids.new_ulid())
    assert sorted(made) == made
    assert len(set(made)) == len(made)


def test_the_next_id_is_not_the_last_plus_one() -> None:
    ids = UlidIdGenerator()
    values = [ULID.from_str(ids.new_ulid()).to_uuid().int for _ in range(1000)]
    # Many fall in one millisecond; each still carries fresh random bits.
    assert all(b - a > 1 for a, b in itertools.pairwise(values))
