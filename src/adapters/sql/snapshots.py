"""Idempotency records, whose snapshot of an answer is the resource exactly as it was."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cattrs
from cattrs.preconf.json import make_converter

from core.model import Customer, Invoice, Payment, Refund
from core.money import CURRENCIES, Currency, Money
from core.ports import IdempotencyRecord, IdempotencyState, Resource, StoredError

# Core objects as JSON values and back (also a payment's or refund's failure).
json_converter = make_converter()
# Error details are JSON values already: kept as they are.
json_converter.register_structure_hook_func(lambda kind: kind is object, lambda value, _: value)
json_converter.register_unstructure_hook(Currency, lambda c: c.code)
json_converter.register_structure_hook(Currency, lambda code, _: CURRENCIES[code])
json_converter.register_unstructure_hook(
    Money, lambda m: {"amount": str(m.amount), "currency": m.currency.code}
)
json_converter.register_structure_hook(Money, lambda d, _: Money.of(d["amount"], d["currency"]))
_RESOURCE_TYPES: dict[str, type[Resource]] = {
    "payment": Payment, "refund": Refund, "customer": Customer, "invoice": Invoice,
}  # fmt: skip
_RESOURCE_NAMES = {cls: name for name, cls in _RESOURCE_TYPES.items()}


def idempotency_values(record: IdempotencyRecord) -> dict[str, Any]:
    resource = record.resource
    return {
        "environment_id": record.environment_id,
        "key": record.key,
        "operation": record.operation,
        "fingerprint": record.fingerprint,
        "state": record.state.value,
        "resource_type": _RESOURCE_NAMES[type(resource)] if resource is not None else None,
        "resource": json_converter.unstructure(resource) if resource is not None else None,
        "error": json_converter.unstructure(record.error) if record.error is not None else None,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "version": record.version,
        "resource_id": record.resource_id,
        "lease_expires_at": record.lease_expires_at,
    }


def idempotency_from(row: Mapping[str, Any]) -> IdempotencyRecord:
    resource = None
    stored_error = row["error"]
    if row["resource_type"] is not None:
        try:
            resource = json_converter.structure(
                row["resource"], _RESOURCE_TYPES[row["resource_type"]]
            )
        except cattrs.BaseValidationError as error:  # a snapshot the code can no longer read
            raise ValueError(f"unreadable idempotency snapshot: {error}") from error
    return IdempotencyRecord(
        environment_id=row["environment_id"],
        key=row["key"],
        operation=row["operation"],
        fingerprint=row["fingerprint"],
        state=IdempotencyState(row["state"]),
        resource=resource,
        error=None if stored_error is None else json_converter.structure(stored_error, StoredError),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        version=row["version"],
        resource_id=row["resource_id"],
        lease_expires_at=row["lease_expires_at"],
    )
