"""The payment lifecycle state machine on in-memory storage."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.lifecycle_machine import PaymentLifecycle

PaymentLifecycle.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPaymentLifecycleInMemory = PaymentLifecycle.TestCase
