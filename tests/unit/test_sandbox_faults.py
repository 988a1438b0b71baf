"""Sandbox faults strike the operation they name, and only it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sandbox import Fault, SandboxFaults
from adapters.sandbox.faults import OPERATIONS
from core.gateway import GatewayUnavailable
from tests.unit.test_sandbox_gateway import _customer_with_visa, _request, new_sandbox


async def test_a_rate_on_charges_strikes_charges_only() -> None:
    sandbox = new_sandbox()
    customer, card = await _customer_with_visa(sandbox)
    sandbox.faults = SandboxFaults.parse("charge:error_before@1.0")
    for _ in range(20):
        await sandbox.get_customer(customer)
        await sandbox.list_payment_methods(customer)
        await sandbox.get_payment_method(customer, card)
        await sandbox.set_default_payment_method(customer, card)
    with pytest.raises(GatewayUnavailable):
        await sandbox.charge(_request(customer, card, "struck"))
    assert await sandbox.succeeded_charges() == []


async def test_faults_planned_for_charges_leave_a_reconciliation_look_up_alone() -> None:
    sandbox = new_sandbox()
    customer, card = await _customer_with_visa(sandbox)
    request = _request(customer, card, "looked-up")
    charged = await sandbox.charge(request)
    sandbox.faults.schedule("charge", Fault.ERROR_BEFORE)

    found = await sandbox.find_charge(request, None)  # replays the create by its key

    assert found.tracking_id == charged.tracking_id
    with pytest.raises(GatewayUnavailable):  # the planned fault is still there for a charge
        await sandbox.charge(_request(customer, card, "next"))


async def test_a_rate_for_every_operation_is_named_with_a_star() -> None:
    sandbox = new_sandbox()
    customer, _ = await _customer_with_visa(sandbox)
    sandbox.faults = SandboxFaults.parse("*:error_before@1.0")
    with pytest.raises(GatewayUnavailable):
        await sandbox.get_customer(customer)


def test_rates_are_kept_by_operation() -> None:
    faults = SandboxFaults.parse("charge:timeout_after@0.2,refund:reject@0.1,charge:reject")
    assert faults.rates == {
        "charge": {Fault.TIMEOUT_AFTER: 0.2},
        "refund": {Fault.REJECT: 0.1},
    }
    assert faults.plan == {"charge": [Fault.REJECT]}


@pytest.mark.parametrize(
    "spec", ["chrage:error_before", "error_before@0.2", "charge:late@0.1", "charge:reject@2"]
)
def test_a_spec_that_names_no_operation_or_fault_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="sandbox fault"):
        SandboxFaults.parse(spec)


def test_the_readme_names_every_operation_a_fault_can_strike() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| `SANDBOX_FAULTS`")]
    assert {name for name in OPERATIONS if f"`{name}`" in row} == OPERATIONS
