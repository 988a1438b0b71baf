"""Rows and snapshots convert to core objects and back without losing anything."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from adapters.sql import rows, tables
from adapters.sql.codec import RowCodec
from core.errors import CardDeclined
from core.model import Actor, ApiKey, Failure, PaymentEvent, PaymentStatus, RefundStatus, Role
from core.ports import IdempotencyRecord, IdempotencyState, Resource, StoredError
from tests.storage_contract import (
    T0,
    customer,
    delivery,
    invoice,
    moved,
    paid,
    payment,
    refund,
    settled,
)


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


key = ApiKey("key_1", "ten_1", "ab" * 32, Role.WRITE, frozenset({"env_b", "env_a"}), T0)
event = PaymentEvent(
    "pay_1",
    "env_a",
    2,
    PaymentStatus.PROCESSING,
    PaymentStatus.FAILED,
    "declined",
    Actor.GATEWAY,
    T0,
)
failed_refund = attrs.evolve(
    settled(refund(1), RefundStatus.FAILED), failure=Failure("card_declined", "No.", None, None)
)
# Each codec with the table it writes and objects that use every kind of field it has.
SAMPLES: list[tuple[RowCodec[Any], Any, list[Any]]] = [
    (rows.API_KEYS, tables.api_keys, [key, attrs.evolve(key, revoked_at=T0, version=2)]),
    (rows.CUSTOMERS, tables.customers, [customer(), attrs.evolve(customer(), name="Zoë")]),
    (rows.INVOICES, tables.invoices, [invoice(amount="1.250"), paid(invoice())]),
    (rows.PAYMENTS, tables.payments, [payment(1), failed]),
    (rows.EVENTS, tables.payment_events, [event, attrs.evolve(event, from_status=None)]),
    (rows.REFUNDS, tables.refunds, [refund(1), failed_refund]),
    (rows.NOTIFICATIONS, tables.outbox, [delivery(1).notification]),
    (rows.DELIVERIES, tables.webhook_deliveries, [delivery(1), delivery(2)]),
]


@pytest.mark.parametrize(("codec", "table", "items"), SAMPLES, ids=lambda s: getattr(s, "name", ""))
def test_every_row_codec_writes_its_tables_columns_and_reads_back_the_same_object(
    codec: RowCodec[Any], table: Any, items: list[Any]
) -> None:
    for item in items:
        values = codec.values(item)
        assert set(values) == {c.name for c in table.columns if c.autoincrement is not True}
        assert codec.from_row(_through_json(values)) == item


def test_money_is_stored_in_integer_minor_units_beside_its_currency() -> None:
    values = rows.invoice_values(invoice(amount="12.50"))
    assert (values["amount_due"], values["currency"]) == (1250, "usd")
    assert type(values["amount_due"]) is int
    assert rows.event_values(event)["from_status"] == "processing"
    assert rows.api_key_values(key)["environment_ids"] == ["env_a", "env_b"]


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
