"""SQLAlchemy's internals the SQL adapter relies on: still there, and still behaving.

An upgrade that changes one fails here first, naming it (see adapters/sql/sqlalchemy_internals.py).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import select

from adapters.sql import sqlalchemy_internals as internals
from adapters.sql import tables

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_every_internal_still_behaves_as_the_adapter_expects() -> None:
    try:
        internals.check.__wrapped__()
    except internals.InternalsChanged as changed:
        pytest.fail(str(changed))


def test_the_installed_sqlalchemy_is_a_minor_version_tested() -> None:
    installed = internals.installed_minor_version()
    assert installed in internals.TESTED_MINOR_VERSIONS, (
        f"SQLAlchemy {sqlalchemy.__version__} is not among the versions whose internals "
        f"adapters/sql/sqlalchemy_internals.py was tested on ({internals.TESTED_MINOR_VERSIONS})"
    )


def test_pyproject_bounds_sqlalchemy_to_the_minor_versions_tested() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    [line] = [d for d in dependencies if d.startswith("sqlalchemy")]
    lowest, highest = min(internals.TESTED_MINOR_VERSIONS), max(internals.TESTED_MINOR_VERSIONS)
    major, minor = highest.split(".")
    assert re.search(rf">={re.escape(lowest)}\b", line), line
    assert f"<{major}.{int(minor) + 1}" in line, f"{line}: no bound above {highest}"


def test_a_changed_internal_is_named_in_the_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(_: object) -> None:
        raise AttributeError("'Select' object has no attribute '_generate_cache_key'")

    monkeypatch.setattr(internals, "statement_key", gone)

    with pytest.raises(internals.InternalsChanged, match=r"changed Select\._generate_cache_key"):
        internals.check.__wrapped__()


def test_a_statement_with_a_lock_is_told_from_one_without() -> None:
    reading = select(tables.invoices)

    assert internals.locks_rows(reading.with_for_update())
    assert not internals.locks_rows(reading)
    assert not internals.locks_rows(tables.invoices.insert())
