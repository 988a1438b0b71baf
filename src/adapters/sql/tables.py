"""The schema, as SQLAlchemy Core tables (rows are converted to core objects explicitly).

Money is stored exactly as integer minor units beside its currency code. The rules that must
hold across processes are constraints here: one live and one paid payment per invoice
(partial unique indexes), unique idempotency keys and gateway event ids per environment,
unique customer external ids per environment, and refunds that never pass the amount.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

LIVE = "status IN ('initiated', 'processing')"
PAID = "status IN ('succeeded', 'partially_refunded', 'refunded')"
LINKED = "gateway_customer_id IS NOT NULL"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no zone: it is stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when() -> UtcDateTime:
    return UtcDateTime()


environments = Table(
    "environments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("created_at", _when(), nullable=False),
    # Null for rows from before it existed: no secrets of its own. Secrets are stored
    # sealed (adapters/secrets.py), as is the connection's key.
    Column("webhook_secrets", JSON),
    Column("version", Integer, nullable=False),
    Column("mode", String(8), nullable=False, server_default="test"),
    # Null: no connection of its own, the service's default gateway applies.
    Column("gateway_provider", String(16)),
    Column("gateway_secret_key", Text),
    Column("connection_updated_at", _when()),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    # SHA-256 of the key: the key itself is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("environment_ids", JSON, nullable=False),
    Column("created_at", _when(), nullable=False),
    Column("revoked_at", _when()),
    Column("version", Integer, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("name", String(500)),
    Column("email", String(320)),
    Column("gateway_customer_id", String(255)),
    Column("created_at", _when(), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("environment_id", "id"),
    UniqueConstraint("environment_id", "external_id"),
    Index(None, "environment_id", "created_at", "id"),
    # One holder per gateway customer: no environment adopts another's saved cards.
    Index("ux_customers_gateway_customer_id", "gateway_customer_id", unique=True,
          sqlite_where=text(LINKED), postgresql_where=text(LINKED)),
)  # fmt: skip

invoices = Table(
    "invoices",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_due", BigInteger, nullable=False),
    Column("amount_paid", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("payment_status", String(24), nullable=False),
    Column("external_id", String(255)),
    Column("created_at", _when(), nullable=False),
    Column("updated_at", _when(), nullable=False),
    Column("finalized_at", _when()),
    Column("voided_at", _when()),
    Column("paid_at", _when()),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("environment_id", "id"),
    ForeignKeyConstraint(
        ["environment_id", "customer_id"], ["customers.environment_id", "customers.id"]
    ),
    CheckConstraint("amount_due > 0", name="amount_due_positive"),
    CheckConstraint("amount_paid <= amount_due", name="paid_within_due"),
    CheckConstraint("amount_refunded <= amount_paid", name="refunded_within_paid"),
    Index(None, "environment_id", "created_at", "id"),
    Index(None, "environment_id", "customer_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("invoice_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("refund_reserved", BigInteger, nullable=False),
    Column("method_type", String(16), nullable=False),
    Column("status", String(24), nullable=False),
    Column("gateway", String(32), nullable=False),
    Column("payment_method_id", String(255)),
    Column("gateway_tracking_id", String(255)),
    Column("payment_url", Text),
    Column("save_card_and_make_default", Boolean, nullable=False),
    Column("success_url", Text),
    Column("cancel_url", Text),
    Column("metadata", JSON, nullable=False),
    Column("card_brand", String(32)),
    Column("card_last4", String(4)),
    Column("failure", JSON),
    Column("created_at", _when(), nullable=False),
    Column("updated_at", _when(), nullable=False),
    Column("succeeded_at", _when()),
    Column("failed_at", _when()),
    Column("refunded_at", _when()),
    Column("version", Integer, nullable=False),
    # How many events the payment has: the next one's sequence is one more (migration 0012).
    Column("event_count", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("environment_id", "id"),
    ForeignKeyConstraint(
        ["environment_id", "invoice_id"], ["invoices.environment_id", "invoices.id"]
    ),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint(
        "amount_refunded >= 0 AND refund_reserved >= 0 "
        "AND amount_refunded + refund_reserved <= amount",
        name="refunds_within_amount",
    ),
    Index("ux_payments_one_live_per_invoice", "environment_id", "invoice_id",
          unique=True, sqlite_where=text(LIVE), postgresql_where=text(LIVE)),
    Index("ux_payments_one_paid_per_invoice", "environment_id", "invoice_id",
          unique=True, sqlite_where=text(PAID), postgresql_where=text(PAID)),
    Index(None, "environment_id", "created_at", "id"),
    Index(None, "environment_id", "customer_id", "created_at"),
    Index(None, "gateway_tracking_id"),
    Index("ix_payments_processing", "updated_at",
          sqlite_where=text("status = 'processing'"),
          postgresql_where=text("status = 'processing'")),
)  # fmt: skip

payment_events = Table(
    "payment_events",
    metadata,
    Column("payment_id", String(64), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("environment_id", String(64), nullable=False),
    Column("from_status", String(24)),
    Column("to_status", String(24), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(16), nullable=False),
    Column("occurred_at", _when(), nullable=False),
    PrimaryKeyConstraint("payment_id", "sequence"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("payment_id", String(64), nullable=False),
    Column("invoice_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("gateway_refund_id", String(255)),
    Column("failure", JSON),
    Column("created_at", _when(), nullable=False),
    Column("updated_at", _when(), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("environment_id", "id"),
    ForeignKeyConstraint(
        ["environment_id", "payment_id"], ["payments.environment_id", "payments.id"]
    ),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index(None, "environment_id", "payment_id"),
    Index("ix_refunds_pending", "updated_at",
          sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
)  # fmt: skip

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("resource_type", String(16)),
    Column("resource", JSON),
    Column("error", JSON),
    Column("created_at", _when(), nullable=False),
    Column("expires_at", _when(), nullable=False),
    Column("version", Integer, nullable=False),
    # What the request recorded, and (in progress) until when it holds the key.
    Column("resource_id", String(64)),
    Column("lease_expires_at", _when()),
    PrimaryKeyConstraint("environment_id", "key"),
    Index(None, "expires_at"),
    Index(None, "environment_id", "resource_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("environment_id", String(64), nullable=False),
    Column("type", String(40), nullable=False),
    Column("occurred_at", _when(), nullable=False),
    Column("data", JSON, nullable=False),
)  # fmt: skip

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("url", Text, nullable=False),
    # The event types it wants; an empty list: all of them.
    Column("events", JSON, nullable=False),
    # Kept, sealed, to sign deliveries (an HMAC key cannot be stored as a hash).
    Column("secret", Text, nullable=False),
    Column("created_at", _when(), nullable=False),
    Column("disabled_at", _when()),
    Column("deleted_at", _when()),
    Column("failing_since", _when()),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("environment_id", "id"),
)

PENDING_DELIVERY = "delivered_at IS NULL AND failed_at IS NULL"

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("endpoint_id", String(64), nullable=False),
    # The notification, as it is sent: a copy, so that the outbox can be pruned.
    Column("notification_id", String(64), nullable=False),
    Column("notification_type", String(40), nullable=False),
    Column("occurred_at", _when(), nullable=False),
    Column("data", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", _when(), nullable=False),
    Column("first_attempt_at", _when()),
    Column("last_attempt_at", _when()),
    Column("last_error", Text),
    Column("delivered_at", _when()),
    Column("failed_at", _when()),
    Column("created_at", _when(), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("environment_id", "id"),
    ForeignKeyConstraint(
        ["environment_id", "endpoint_id"],
        ["webhook_endpoints.environment_id", "webhook_endpoints.id"],
    ),
    # However many dispatchers run, a notification is queued once per endpoint.
    UniqueConstraint("endpoint_id", "notification_id"),
    Index(None, "environment_id", "endpoint_id", "created_at", "id"),  # its pages
    Index("ix_webhook_deliveries_due", "next_attempt_at",
          sqlite_where=text(PENDING_DELIVERY), postgresql_where=text(PENDING_DELIVERY)),
)  # fmt: skip

# The environment of the events handled before the log was per environment (no environment
# has this id).
BEFORE_ENVIRONMENTS = ""

gateway_events = Table(
    "gateway_events",
    metadata,
    # Each environment handles an event as its own: one account's event may reach several.
    Column("environment_id", String(64), nullable=False),
    Column("id", String(255), nullable=False),
    Column("type", String(64), nullable=False),
    Column("processed_at", _when(), nullable=False),
    PrimaryKeyConstraint("environment_id", "id"),
)

sandbox_documents = Table(
    "sandbox_documents",
    metadata,
    Column("kind", String(32), nullable=False),
    Column("key", String(255), nullable=False),
    Column("document", JSON, nullable=False),
    PrimaryKeyConstraint("kind", "key"),
)
