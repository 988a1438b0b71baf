"""Fixtures of the unit tests: Card Checkout in memory, with a clock and faults to steer."""

from __future__ import annotations

import pytest

from adapters.clock import ManualClock
from adapters.sandbox import SandboxFaults
from entrypoints.bootstrap import CardCheckout
from tests.helpers import in_memory_checkout


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def faults() -> SandboxFaults:
    return SandboxFaults()


@pytest.fixture
def checkout(clock: ManualClock, faults: SandboxFaults) -> CardCheckout:
    return in_memory_checkout(clock=clock, faults=faults)
