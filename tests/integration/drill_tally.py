"""What a drill left, counted from the database and from the sandbox's own records, and the
guarantees it broke (each with a few examples)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg
import attrs

from adapters.notifiers import RecordingNotifier
from entrypoints.bootstrap import Settings, bootstrap
from tests.helpers import ENV, sandbox
from tests.integration.drills import BROKEN_CONNECTION_SIGN, Attempt, plain

PAID = {"succeeded", "partially_refunded", "refunded"}
EXAMPLES = 3
# Each drill's summary, for the end of the test run (conftest.pytest_terminal_summary).
REPORTED: list[str] = []


@attrs.define
class Tally:
    counts: dict[str, Any] = attrs.Factory(dict)
    broken: dict[str, list[str]] = attrs.Factory(lambda: defaultdict(list))

    def breach(self, guarantee: str, example: str) -> None:
        self.broken[guarantee].append(example)

    def summary(self, name: str) -> str:
        lines = [f"drill {name}:"]
        lines += [f"  {key}: {value}" for key, value in self.counts.items()]
        for guarantee, examples in self.broken.items():
            shown = "; ".join(examples[:EXAMPLES])
            lines.append(f"  BROKEN {guarantee}: {len(examples)} (e.g. {shown})")
        if not self.broken:
            lines.append("  every guarantee held")
        return "\n".join(lines)


async def _rows(database_url: str) -> tuple[list[Any], list[Any], list[Any]]:
    connection = await asyncpg.connect(plain(database_url), timeout=10)
    try:
        payments = await connection.fetch(
            "SELECT id, invoice_id, status FROM payments WHERE environment_id = $1", ENV
        )
        invoices = await connection.fetch(
            "SELECT id, amount_due, amount_paid FROM invoices WHERE environment_id = $1", ENV
        )
        keys = await connection.fetch(
            "SELECT state, count(*) AS n FROM idempotency_records WHERE environment_id = $1"
            " GROUP BY state",
            ENV,
        )
    finally:
        await connection.close()
    return list(payments), list(invoices), list(keys)


async def _charges(database_url: str) -> list[dict[str, Any]]:
    """The sandbox's succeeded charges, read through the sandbox itself."""
    checkout = bootstrap(Settings(database_url=database_url), notifier=RecordingNotifier())
    try:
        return await sandbox(checkout).succeeded_charges()
    finally:
        await checkout.aclose()


def _failed_as_busy(log: str) -> int:
    """Errors logged as asyncpg's "another operation is in progress", but for those given
    as the cause of another error that says what happened."""
    lines = [line for line in log.splitlines() if line.strip()]
    return sum(
        BROKEN_CONNECTION_SIGN in line
        and not (n + 1 < len(lines) and lines[n + 1].startswith("The above exception"))
        for n, line in enumerate(lines)
    )


def _reconcile_counts(output: str) -> dict[str, int]:
    return {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^  (\w[\w ]*?) +(\d+)$", output, flags=re.MULTILINE)
    }


async def tallied(
    database_url: str, attempts: Sequence[Attempt], logs: Sequence[str], reconcile_output: str
) -> Tally:
    payments, invoices, key_states = await _rows(database_url)
    charges = await _charges(database_url)
    tally = Tally()
    status_of = {p["id"]: p["status"] for p in payments}
    invoice_of = {p["id"]: p["invoice_id"] for p in payments}
    paid_invoices = {i["id"] for i in invoices if i["amount_paid"] > 0}
    charges_by_invoice = Counter(str(c["metadata"].get("invoice_id")) for c in charges)

    # One successful charge per paid invoice, and a paid invoice for every charge.
    for invoice in invoices:
        charged = charges_by_invoice[invoice["id"]]
        if invoice["id"] in paid_invoices and charged != 1:
            tally.breach("one charge per paid invoice", f"{invoice['id']}: {charged} charges")
    for charge in charges:
        payment_id = str(charge["metadata"].get("payment_id"))
        if status_of.get(payment_id) not in PAID or invoice_of[payment_id] not in paid_invoices:
            tally.breach(
                "no charge without a paid invoice",
                f"{charge['id']} for {payment_id} ({status_of.get(payment_id)}, invoice "
                f"{'paid' if invoice_of.get(payment_id) in paid_invoices else 'unpaid'})",
            )
    succeeded_by_invoice = Counter(p["invoice_id"] for p in payments if p["status"] in PAID)
    for invoice_id, count in succeeded_by_invoice.items():
        if count > 1:
            tally.breach("one charge per paid invoice", f"{invoice_id}: {count} paid payments")

    # Nothing left in flight once reconciliation ran.
    for payment in payments:
        if payment["status"] == "processing":
            tally.breach("nothing processing after reconciliation", payment["id"])

    # Every key, asked again, answers its payment's real state.
    key_breaches: Counter[str] = Counter()

    def key_breach(why: str, example: str) -> None:
        key_breaches[why] += 1
        tally.breach("every key answers its payment's state", example)

    named_by_replay: set[str] = set()
    for attempt in attempts:
        assert attempt.replay is not None
        status, code, named, state = attempt.replay
        where = f"{attempt.key}: {status} {code or state}"
        if code == "idempotency_key_in_use":
            key_breach("still in use", where)
        elif status == 0 or status >= 500:
            key_breach("no answer", where)
        elif named is None:
            if attempt.payment_ids:
                key_breach("forgot its payment", where)
        else:
            named_by_replay.add(named)
            real = status_of.get(named)
            said = state if state is not None else ("failed" if status == 402 else None)
            if said != real or (attempt.payment_ids and named not in attempt.payment_ids):
                key_breach("not the real state", f"{where} {named}, really {real}")
    for payment in payments:
        if payment["id"] not in named_by_replay:
            key_breach("payment named by no key", f"{payment['id']} ({payment['status']})")

    # No 500, ever.
    load_statuses = Counter(s for a in attempts for s in a.statuses)
    replay_statuses = Counter(a.replay[0] for a in attempts if a.replay is not None)
    for attempt in attempts:
        for status, code in zip(attempt.statuses, attempt.codes, strict=True):
            if status == 500:
                tally.breach("no 500", f"{attempt.key}: {code}")
        if attempt.replay is not None and attempt.replay[0] == 500:
            tally.breach("no 500", f"{attempt.key} (replay)")

    # No operation failed as if its connection were busy with another one.
    broken_connections = sum(_failed_as_busy(log) for log in logs)
    if broken_connections:
        tally.breach(
            "no operation failed as if its connection were busy", f"{broken_connections} errors"
        )

    tally.counts.update(
        invoices=len(invoices),
        paid_invoices=len(paid_invoices),
        payments=dict(Counter(p["status"] for p in payments)),
        succeeded_charges=len(charges),
        clients=len(attempts),
        requests=sum(len(a.statuses) + a.transport_errors for a in attempts),
        load_statuses=dict(sorted(load_statuses.items())),
        load_codes=dict(Counter(c for a in attempts for c in a.codes if c)),
        transport_errors=sum(a.transport_errors for a in attempts),
        clients_without_an_answer=sum(not a.answered for a in attempts),
        replay_statuses=dict(sorted(replay_statuses.items())),
        replay_codes=dict(Counter(a.replay[1] for a in attempts if a.replay and a.replay[1])),
        idempotency_records=({str(k["state"]): int(k["n"]) for k in key_states}),
        key_breaches=dict(key_breaches),
        reconcile=_reconcile_counts(reconcile_output),
        log_errors_as_if_busy=broken_connections,
        log_tracebacks=sum(log.count("Traceback") for log in logs),
    )
    return tally
