"""What `card-checkout reconcile` prints and the background pass of `serve` logs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import timedelta

import pytest

from adapters.clock import ManualClock
from adapters.sandbox import Fault
from entrypoints import cli
from entrypoints.bootstrap import CardCheckout, Settings
from entrypoints.http.app import create_app
from tests.helpers import ENV, card_payment, customer_with_card, finalized_invoice
from tests.reconcile_doubles import FailingStorage, HookedFaults, hooked_checkout, stuck_payments


async def _one_of_each() -> tuple[CardCheckout, str, str]:
    """A checkout holding a card payment unknown for 6 minutes (the gateway is down for
    charges) and a pending refund whose next look-up raises: (checkout, payment, refund)."""
    clock, faults = ManualClock(), HookedFaults()
    checkout = hooked_checkout(faults, clock)
    customer = await customer_with_card(checkout)
    paid = await checkout.create_payment(
        ENV, card_payment(await finalized_invoice(checkout, customer))
    )
    faults.schedule("refund", Fault.TIMEOUT_AFTER)
    refund = await checkout.refund_payment(ENV, paid.id, {"amount": "10.00"})
    faults.down.update({"charge", "find_charge"})
    unknown = await checkout.create_payment(
        ENV, card_payment(await finalized_invoice(checkout, customer))
    )

    async def explode() -> None:
        raise RuntimeError("the refund's answer could not be read")

    faults.arm("refund", explode)
    clock.advance(timedelta(minutes=6))
    return checkout, unknown.id, refund.id


def _run_cli(monkeypatch: pytest.MonkeyPatch, checkout: CardCheckout, *args: str) -> int:
    """Run `card-checkout reconcile` in this process, on `checkout`; its exit code."""
    monkeypatch.setattr(cli, "bootstrap", lambda settings: checkout)
    monkeypatch.setattr(Settings, "from_environ", classmethod(lambda cls: Settings()))
    return cli.main(["reconcile", "--older-than", "0", *args])


def _counts(stdout: str) -> dict[str, int]:
    return {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^  (\w[\w ]*?) +(\d+)$", stdout, flags=re.MULTILINE)
    }


def test_cli_prints_each_count_and_a_line_per_error_and_per_payment_needing_a_person(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout, unknown, refund = asyncio.run(_one_of_each())

    code = _run_cli(monkeypatch, checkout)

    out = capsys.readouterr().out
    assert code == 0
    assert _counts(out) == {
        "examined": 2, "succeeded": 0, "failed": 0, "refunds settled": 0,
        "already settled": 0, "still unknown": 1, "errors": 1, "need a person": 1,
    }  # fmt: skip
    assert f"  needs a person: {unknown} in {ENV}, in flight for 360 s\n" in out
    assert f"  error: {refund} in {ENV}: RuntimeError: the refund's answer could not be read\n" in (
        out
    )


def test_cli_counts_what_another_pass_settled_first_apart(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock, faults = ManualClock(), HookedFaults()
    checkout = hooked_checkout(faults, clock)
    asyncio.run(stuck_payments(checkout, faults, 2))

    async def other_pass() -> None:
        await checkout.reconcile(older_than=timedelta(0))

    faults.arm("find_charge", other_pass)

    code = _run_cli(monkeypatch, checkout)

    counts = _counts(capsys.readouterr().out)
    assert code == 0
    assert (counts["succeeded"], counts["already settled"]) == (0, 2)


async def _settled_by_the_next_pass() -> tuple[CardCheckout, list[str], str]:
    """Two card payments and a refund whose answers were lost, all done at the gateway:
    (checkout, payments, refund)."""
    clock, faults = ManualClock(), HookedFaults()
    checkout = hooked_checkout(faults, clock)
    stuck = await stuck_payments(checkout, faults, 2)
    customer = await customer_with_card(checkout)
    paid = await checkout.create_payment(
        ENV, card_payment(await finalized_invoice(checkout, customer))
    )
    faults.schedule("refund", Fault.TIMEOUT_AFTER)
    refund = await checkout.refund_payment(ENV, paid.id, {"amount": "10.00"})
    clock.advance(timedelta(minutes=1))
    return checkout, stuck, refund.id


def test_cli_lists_each_payment_and_refund_it_settled_with_its_new_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout, stuck, refund = asyncio.run(_settled_by_the_next_pass())

    code = _run_cli(monkeypatch, checkout)

    out = capsys.readouterr().out
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("  settled: ")] == [
        *(f"  settled: payment {payment} in {ENV}: succeeded" for payment in stuck),
        f"  settled: refund {refund} in {ENV}: succeeded",
    ]
    assert (_counts(out)["succeeded"], _counts(out)["refunds settled"]) == (2, 1)


def test_cli_prints_the_report_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout, unknown, refund = asyncio.run(_one_of_each())

    code = _run_cli(monkeypatch, checkout, "--json")

    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "examined": 2, "succeeded": 0, "failed": 0, "refunds_settled": 0, "already_settled": 0,
        "settled": [], "unresolved": [unknown],
        "errors": [{"id": refund, "environment_id": ENV,
                    "error": "RuntimeError: the refund's answer could not be read"}],
        "needs_attention": [
            {"payment_id": unknown, "environment_id": ENV, "in_flight_seconds": 360}
        ],
        "stopped_by": None,
    }  # fmt: skip


def test_cli_json_lists_what_it_settled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout, stuck, refund = asyncio.run(_settled_by_the_next_pass())

    assert _run_cli(monkeypatch, checkout, "--json") == 0

    report = json.loads(capsys.readouterr().out)
    assert report["settled"] == [
        *({"kind": "payment", "id": payment, "environment_id": ENV, "status": "succeeded"}
          for payment in stuck),
        {"kind": "refund", "id": refund, "environment_id": ENV, "status": "succeeded"},
    ]  # fmt: skip


def test_cli_stopped_by_a_storage_outage_prints_what_it_did_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock, faults, storage = ManualClock(), HookedFaults(), FailingStorage()
    checkout = hooked_checkout(faults, clock, storage)
    asyncio.run(stuck_payments(checkout, faults, 2))

    async def outage() -> None:
        storage.down = True

    faults.arm("find_charge", outage)

    code = _run_cli(monkeypatch, checkout)

    said = capsys.readouterr()
    assert code == 1
    assert _counts(said.out)["examined"] == 0
    assert said.err == (
        "error: service_unavailable: reconciliation stopped early: the database is not answering\n"
    )


async def test_the_background_pass_logs_each_error_and_each_payment_needing_a_person(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checkout, unknown, refund = await _one_of_each()
    app = create_app(checkout, notify_every=None, reconcile_every=0.01, reconcile_older_than=0)
    caplog.set_level(logging.INFO, logger="card_checkout.http")

    async with app.router.lifespan_context(app):
        for _ in range(500):
            if any(unknown in record.getMessage() for record in caplog.records):
                break
            await asyncio.sleep(0.01)

    lines = {(r.levelno, r.getMessage()) for r in caplog.records}
    assert (
        logging.ERROR,
        f"payment {unknown} in {ENV} still unknown after 360 s: it needs a person",
    ) in lines
    assert (
        logging.WARNING,
        f"reconciliation could not handle {refund} in {ENV}: "
        "RuntimeError: the refund's answer could not be read",
    ) in lines
    assert all("\n" not in message and not r.exc_info for r in caplog.records
               for message in [r.getMessage()])  # fmt: skip
