"""The binder that turns SQLAlchemy statements into asyncpg's SQL and arguments (no I/O:
it only compiles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, literal_column, select, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from adapters.sql import sqlalchemy_internals, tables
from adapters.sql.binder import Binder, rows_written

invoices = tables.invoices


@pytest.fixture
def binder() -> Binder:
    return Binder(asyncpg_dialect())


def test_statements_differing_only_in_values_share_one_compiled_form(binder: Binder) -> None:
    first = binder.bind(select(invoices.c.id).where(invoices.c.customer_id == "cust_1"), {})
    second = binder.bind(select(invoices.c.id).where(invoices.c.customer_id == "cust_2"), {})

    assert first.sql == second.sql
    assert "$1" in first.sql
    assert (first.arguments, second.arguments) == (["cust_1"], ["cust_2"])
    assert len(binder.cache) == 1


def test_values_given_by_name_go_through_their_columns_processors(binder: Binder) -> None:
    statement = update(tables.payments).where(
        tables.payments.c.id == bindparam("match_id"),
        tables.payments.c.version == bindparam("match_version"),
    )
    east = timezone(timedelta(hours=3))
    params = {"updated_at": datetime(2026, 1, 1, 12, tzinfo=east), "metadata": {"order": "A-1"},
              "match_id": "pay_1", "match_version": 2}  # fmt: skip

    bound = binder.bind(statement, params)
    # SET in the table's column order, then WHERE.
    assert bound.sql.startswith("UPDATE payments SET metadata=$1::JSON, updated_at=$2")
    values = dict(zip(("metadata", "updated_at", "match_id", "match_version"),
                      bound.arguments, strict=True))  # fmt: skip

    assert values["updated_at"] == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert values["updated_at"].tzinfo is UTC
    assert values["metadata"] == '{"order": "A-1"}'  # JSON text, as the connection's codec takes
    assert (values["match_id"], values["match_version"]) == ("pay_1", 2)
    assert not bound.returns_rows


def test_a_literal_in_a_statement_is_bound_with_the_values_given(binder: Binder) -> None:
    statement = select(invoices.c.id).where(
        invoices.c.status == "FINALIZED", invoices.c.id == bindparam("match_id")
    )

    bound = binder.bind(statement, {"match_id": "inv_1"})

    assert sorted(bound.arguments) == ["FINALIZED", "inv_1"]


def test_an_in_list_is_spread_over_one_argument_each(binder: Binder) -> None:
    statement = select(invoices.c.id).where(invoices.c.id.in_(["inv_1", "inv_2", "inv_3"]))

    bound = binder.bind(statement, {})

    assert "$3" in bound.sql
    assert bound.arguments == ["inv_1", "inv_2", "inv_3"]
    assert len(binder.cache) == 0  # compiled for the call: the list is spliced into the SQL


def test_rows_come_back_from_selects_and_returning_writes_only(binder: Binder) -> None:
    returning = update(invoices).values(status="PAID").returning(literal_column("1"))

    assert binder.bind(select(invoices.c.id), {}).returns_rows
    assert binder.bind(returning, {}).returns_rows
    assert not binder.bind(update(invoices).values(status="PAID"), {}).returns_rows


def test_a_statement_bound_before_is_bound_again_without_its_cache_key(
    binder: Binder, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement = select(invoices.c.id).where(invoices.c.id == bindparam("match_id"))
    first = binder.bind(statement, {"match_id": "inv_1"})

    def refuse(_: object) -> None:
        raise AssertionError("keyed again")

    monkeypatch.setattr(sqlalchemy_internals, "statement_key", refuse)
    again = binder.bind(statement, {"match_id": "inv_2"})

    assert (again.sql, again.arguments) == (first.sql, ["inv_2"])


def test_a_known_statement_given_other_names_is_compiled_for_them(binder: Binder) -> None:
    statement = update(invoices).where(invoices.c.id == bindparam("match_id"))
    binder.bind(statement, {"match_id": "inv_1", "status": "PAID"})

    bound = binder.bind(statement, {"match_id": "inv_1", "amount_paid": 500})

    assert bound.sql.startswith("UPDATE invoices SET amount_paid=$1")
    assert bound.arguments == [500, "inv_1"]


def test_statements_built_per_call_do_not_grow_the_binder_past_its_size() -> None:
    binder = Binder(asyncpg_dialect(), size=8)
    statements = [
        select(invoices.c.id).where(invoices.c.id == bindparam("match_id")) for _ in range(20)
    ]

    bound = [
        binder.bind(statement, {"match_id": f"inv_{n}"}) for n, statement in enumerate(statements)
    ]

    assert len(binder.known) <= 8
    assert [b.arguments for b in bound] == [[f"inv_{n}"] for n in range(20)]
    assert len(binder.cache) == 1  # one shape, compiled once


@pytest.mark.parametrize(
    ("status", "count"),
    [("UPDATE 3", 3), ("INSERT 0 1", 1), ("DELETE 0", 0), ("BEGIN", 0), ("SELECT 12", 12)],
)
def test_the_rows_written_are_read_from_the_command_status(status: str, count: int) -> None:
    assert rows_written(status) == count
