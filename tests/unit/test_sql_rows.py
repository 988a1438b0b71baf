"""Rows and snapshots convert to core objects and back without losing anything."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import attrs
import pytest

from adapters.sql import rows
from core.errors import CardDeclined
from core.model import Failure, PaymentStatus
from core.ports import IdempotencyRecord, IdempotencyState, Resource, StoredError
from tests.storage_contract import T0, customer, invoice, moved, payment


def _through_json(values: dict[str, object]) -> dict[str, object]:
    """What a JSON column gives back: plain JSON, with datetimes restored by their column."""
    decoded = json.loads(json.dumps(values, default=str))
    for key, value in values.items():
        if isinstance(value, datetime):
            decoded[key] = value
    return decoded


failed = moved(payment(1), PaymentStatus.FAILED)
failed = attrs.evolve(
    failed, failure=Failure("card_declined", "Declined.", "card_declined", "generic_decline"),
    metadata={"order": "42"},
)  # fmt: skip


@pytest.mark.parametrize("resource", [failed, customer(), invoice(amount="1.250")], ids=repr)
def test_an_idempotency_snapshot_round_trips_exactly(resource: Resource) -> None:
    error = CardDeclined(payment_id="pay_1", decline_code="generic_decline")
    record = IdempotencyRecord(
        environment_id="env_a", key="k", operation="create_payment", fingerprint="f",
        state=IdempotencyState.COMPLETED, created_at=T0, expires_at=T0, resource=resource,
        error=StoredError(error.code, error.message, dict(error.details)),
    )  # fmt: skip
    assert rows.idempotency_from(_through_json(rows.idempotency_values(record))) == record


def test_rows_round_trip_payments_with_their_money_in_minor_units() -> None:
    values = rows.payment_values(failed)
    assert values["amount"] == 15000
    assert rows.payment_from(_through_json(values)) == failed


def test_sqlite_datetimes_come_back_aware_in_utc() -> None:
    from sqlalchemy.dialects import sqlite

    from adapters.sql.tables import UtcDateTime

    column = UtcDateTime()
    stored = column.process_bind_param(datetime(2026, 1, 1, 12, tzinfo=UTC), sqlite.dialect())
    assert stored is not None
    assert stored.tzinfo is None
    assert column.process_result_value(stored, sqlite.dialect()) == datetime(
        2026, 1, 1, 12, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 1, 1), sqlite.dialect())
