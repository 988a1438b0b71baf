"""`card-checkout reconcile` settles what another process left in flight."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from adapters.notifiers import RecordingNotifier
from adapters.sandbox import Fault, SandboxFaults
from core.model import PaymentStatus
from entrypoints.bootstrap import Settings, bootstrap
from tests.helpers import ENV, VISA, card_payment, customer_with_card, finalized_invoice, sandbox


async def test_reconcile_settles_a_charge_whose_answer_was_lost(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    faults = SandboxFaults()
    checkout = bootstrap(
        Settings(database_url=url), notifier=RecordingNotifier(), sandbox_faults=faults
    )
    await checkout.migrate()
    customer = await customer_with_card(checkout, VISA)
    invoice = await finalized_invoice(checkout, customer)
    faults.schedule("charge", Fault.TIMEOUT_AFTER)  # charged, but the answer never came
    payment = await checkout.create_payment(ENV, card_payment(invoice))
    assert payment.status is PaymentStatus.PROCESSING
    await checkout.aclose()

    cli = str(Path(sys.executable).with_name("card-checkout"))
    process = await asyncio.create_subprocess_exec(
        cli, "reconcile", "--older-than", "0", env={**os.environ, "DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    stdout = out.decode()
    counts = {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^  (\w[\w ]*?) +(\d+)$", stdout, flags=re.MULTILINE)
    }
    assert counts == {
        "examined": 1, "succeeded": 1, "failed": 0, "refunds settled": 0,
        "already settled": 0, "still unknown": 0, "errors": 0, "need a person": 0,
    }  # fmt: skip

    after = bootstrap(Settings(database_url=url), notifier=RecordingNotifier())
    settled = await after.get_payment(ENV, payment.id)
    assert settled.status is PaymentStatus.SUCCEEDED
    assert (await after.get_invoice(ENV, invoice.id)).amount_remaining.is_zero
    assert len(await sandbox(after).charges_for(payment.id)) == 1
    await after.aclose()


async def test_an_environments_webhook_secrets_are_set_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    cli = str(Path(sys.executable).with_name("card-checkout"))

    async def run(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            cli, *args, env={**os.environ, "DATABASE_URL": url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    await run("api-keys", "create", "--environment", "env_hooks", "--role", "admin")
    said = await run("environments", "webhook-secrets", "--environment", "env_hooks",
                     "--secret", "whsec_old", "--secret", "whsec_new")  # fmt: skip
    assert "2 webhook secret(s)" in said
    checkout = bootstrap(Settings(database_url=url), notifier=RecordingNotifier())
    environment = await checkout.get_environment("env_hooks")
    assert environment.webhook_secrets == ("whsec_old", "whsec_new")
    await checkout.aclose()
