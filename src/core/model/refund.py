"""Refunds: part or all of a succeeded payment, given back through the gateway."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import attrs

from core.errors import CheckoutError, GatewayError, InvalidStateTransition
from core.model.payment import Failure
from core.money import Money


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@attrs.frozen
class Refund:
    id: str
    environment_id: str
    payment_id: str
    invoice_id: str
    amount: Money
    status: RefundStatus
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    gateway_refund_id: str | None = None
    failure: Failure | None = None
    version: int = 1

    def failure_error(self) -> CheckoutError | None:
        """The error that says why the gateway refused this refund (None unless it did)."""
        if self.status is not RefundStatus.FAILED or self.failure is None:
            return None
        return GatewayError(
            self.failure.message,
            refund_id=self.id,
            payment_id=self.payment_id,
            stripe_error_code=self.failure.gateway_code,
        )

    @property
    def idempotency_key(self) -> str:
        """The gateway key of this refund: each refund is sent at most once."""
        return f"{self.id}:refund"

    def settled(
        self,
        status: RefundStatus,
        *,
        at: datetime,
        gateway_refund_id: str | None = None,
        failure: Failure | None = None,
    ) -> Refund:
        if self.status is not RefundStatus.PENDING:
            raise InvalidStateTransition(
                f"The refund is already {self.status.value}.",
                expected=RefundStatus.PENDING.value,
                actual=self.status.value,
            )
        return attrs.evolve(
            self,
            status=status,
            updated_at=at,
            gateway_refund_id=gateway_refund_id or self.gateway_refund_id,
            failure=failure,
            version=self.version + 1,
        )

    def with_gateway_id(self, gateway_refund_id: str) -> Refund:
        """The gateway named the refund before settling it."""
        return attrs.evolve(self, gateway_refund_id=gateway_refund_id, version=self.version + 1)
