"""Outbound notifications: the outbox's events, subscribers' endpoints and deliveries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Final

import attrs

from core.model.payment import PaymentStatus


class NotificationType(StrEnum):
    PAYMENT_CREATED = "payment.created"
    PAYMENT_PROCESSING = "payment.processing"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REFUNDED = "payment.refunded"
    PAYMENT_PARTIALLY_REFUNDED = "payment.partially_refunded"
    INVOICE_PAID = "invoice.paid"


NOTIFICATION_FOR_STATUS: Final[Mapping[PaymentStatus, NotificationType]] = {
    PaymentStatus.INITIATED: NotificationType.PAYMENT_CREATED,
    PaymentStatus.PROCESSING: NotificationType.PAYMENT_PROCESSING,
    PaymentStatus.SUCCEEDED: NotificationType.PAYMENT_SUCCEEDED,
    PaymentStatus.FAILED: NotificationType.PAYMENT_FAILED,
    PaymentStatus.REFUNDED: NotificationType.PAYMENT_REFUNDED,
    PaymentStatus.PARTIALLY_REFUNDED: NotificationType.PAYMENT_PARTIALLY_REFUNDED,
}


@attrs.frozen
class Notification:
    """An outbound event, written to the outbox with the change it reports."""

    id: str
    environment_id: str
    type: NotificationType
    occurred_at: datetime
    data: Mapping[str, str | None]


@attrs.frozen
class WebhookEndpoint:
    """A subscriber's URL in one environment, and the events it wants (none named: all)."""

    id: str
    environment_id: str
    url: str
    events: frozenset[NotificationType]
    # Signs every delivery; shown to the caller once, when the endpoint is created.
    secret: str = attrs.field(repr=False)
    created_at: datetime
    disabled_at: datetime | None = None
    deleted_at: datetime | None = None
    # When the first of the failures since the last success happened.
    failing_since: datetime | None = None
    version: int = 1

    @property
    def active(self) -> bool:
        return self.disabled_at is None and self.deleted_at is None

    def wants(self, kind: NotificationType) -> bool:
        return self.active and (not self.events or kind in self.events)

    def deleted(self, at: datetime) -> WebhookEndpoint:
        return attrs.evolve(self, deleted_at=at, version=self.version + 1)

    def answered(self) -> WebhookEndpoint:
        """A delivery got through: the endpoint is healthy again."""
        if self.failing_since is None:
            return self
        return attrs.evolve(self, failing_since=None, version=self.version + 1)

    def failed(self, at: datetime, *, disable: bool = False) -> WebhookEndpoint:
        """A delivery failed: failing since now unless it already was; `disable` stops it."""
        since = self.failing_since or at
        disabled_at = self.disabled_at or (at if disable else None)
        if (since, disabled_at) == (self.failing_since, self.disabled_at):
            return self
        return attrs.evolve(
            self, failing_since=since, disabled_at=disabled_at, version=self.version + 1
        )


class DeliveryError(StrEnum):
    """What a failed delivery records as its `last_error`: a kind, never the network's own
    words (an errno, an address or a port would tell a subscriber what listens where)."""

    TIMEOUT = "timeout"  # no answer in time, connecting or waiting for the status
    CONNECTION_FAILED = "connection_failed"  # refused, reset, unreachable, not HTTP
    TLS_ERROR = "tls_error"  # no TLS, or a certificate that is not the host's
    ADDRESS_NOT_ALLOWED = "address_not_allowed"  # the host has no address, or not a public one
    HTTP_STATUS = "http_status"  # recorded with the status: `http_status_503`
    ENDPOINT_DISABLED = "endpoint_disabled"  # given up unsent
    ENDPOINT_DELETED = "endpoint_deleted"  # given up unsent
    FAILED = "failed"  # the sender broke (its details are in the service's log)


class WebhookNotAccepted(Exception):
    """The endpoint did not take a delivery; `recorded` is what the delivery keeps of it."""

    def __init__(self, error: DeliveryError, *, status: int | None = None) -> None:
        self.error = error
        self.status = status
        super().__init__(self.recorded)

    @property
    def recorded(self) -> str:
        if self.error is DeliveryError.HTTP_STATUS and self.status is not None:
            return f"{self.error.value}_{self.status}"
        return self.error.value


@attrs.frozen
class WebhookDelivery:
    """One notification on its way to one endpoint, with what its attempts gave."""

    id: str
    environment_id: str
    endpoint_id: str
    notification: Notification
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    first_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    version: int = 1

    @property
    def pending(self) -> bool:
        return self.delivered_at is None and self.failed_at is None

    def rescheduled(self, at: datetime) -> WebhookDelivery:
        """Next tried at `at`: a dispatcher's lease on it, or a wait for its endpoint."""
        return attrs.evolve(self, next_attempt_at=at, version=self.version + 1)

    def succeeded(self, at: datetime) -> WebhookDelivery:
        return attrs.evolve(
            self,
            attempts=self.attempts + 1,
            first_attempt_at=self.first_attempt_at or at,
            last_attempt_at=at,
            last_error=None,
            delivered_at=at,
            version=self.version + 1,
        )

    def attempt_failed(
        self, at: datetime, error: str, *, retry_at: datetime | None
    ) -> WebhookDelivery:
        """A failed attempt: tried again at `retry_at`, or never again when it is None."""
        return attrs.evolve(
            self,
            attempts=self.attempts + 1,
            first_attempt_at=self.first_attempt_at or at,
            last_attempt_at=at,
            last_error=error,
            next_attempt_at=retry_at or at,
            failed_at=None if retry_at else at,
            version=self.version + 1,
        )

    def abandoned(self, at: datetime, reason: str) -> WebhookDelivery:
        """Given up without an attempt (its endpoint was disabled or deleted)."""
        return attrs.evolve(self, last_error=reason, failed_at=at, version=self.version + 1)
