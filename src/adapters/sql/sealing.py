"""Keeping the stored secrets sealed: checked at start, resealed when a key rotates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.secrets import NoEncryptionKey, SecretBox, SecretsUnreadable, is_sealed
from adapters.sql import tables


@attrs.frozen
class SealingReport:
    secrets: int  # stored secrets looked at
    changed: int  # of them, written again


async def reseal(engine: AsyncEngine, box: SecretBox, *, only_plain: bool) -> SealingReport:
    """Open every stored secret (`SecretsUnreadable` if one does not open) and write it
    again sealed with the first key: all of them, or with `only_plain` only those stored
    before secrets were sealed. One transaction: a failure changes nothing."""

    def resealed(stored: str) -> str:
        opened = box.open(stored)  # opens every one, so a wrong key is found either way
        if only_plain and is_sealed(stored):
            return stored
        try:
            return box.seal(opened)
        except NoEncryptionKey:
            raise NoEncryptionKey(
                "secrets are stored in plain text (from before they were sealed) and no "
                "CARD_CHECKOUT_ENCRYPTION_KEYS is set to seal them"
            ) from None

    async def each_table(connection: AsyncConnection, *, write: bool) -> SealingReport:
        environments = await _reseal_rows(
            connection, tables.environments, ("id",), resealed, _environment_secrets,
            write=write,
        )  # fmt: skip
        endpoints = await _reseal_rows(
            connection, tables.webhook_endpoints, ("environment_id", "id"), resealed,
            lambda row, seal: {"secret": seal(row["secret"])}, write=write,
        )  # fmt: skip
        return SealingReport(
            secrets=environments.secrets + endpoints.secrets,
            changed=environments.changed + endpoints.changed,
        )

    if only_plain:
        # The usual start: a look without locks, which finds nothing to seal.
        async with engine.connect() as connection:
            looked = await each_table(connection, write=False)
        if not looked.changed:
            return looked
    async with engine.begin() as connection:
        return await each_table(connection, write=True)


def _environment_secrets(row: Any, seal: Callable[[str], str]) -> dict[str, Any]:
    key = row["gateway_secret_key"]
    return {
        "webhook_secrets": [seal(secret) for secret in row["webhook_secrets"] or ()],
        "gateway_secret_key": seal(key) if key is not None else None,
    }


async def _reseal_rows(
    connection: AsyncConnection,
    table: Any,
    key_columns: tuple[str, ...],
    seal: Callable[[str], str],
    secrets_of: Callable[[Any, Callable[[str], str]], dict[str, Any]],
    *,
    write: bool,
) -> SealingReport:
    """Reseal one table's secrets (`write`: row by row, each changed row at its next version
    so a writer holding the row as it was must read it again; else only count them)."""
    query = select(table).with_for_update() if write else select(table)
    rows = (await connection.execute(query)).mappings().all()
    looked_at = changed = 0
    for row in rows:
        before = _flat(secrets_of(row, lambda stored: stored))
        try:
            after_values = secrets_of(row, seal)
        except SecretsUnreadable as unreadable:
            named = ", ".join(str(row[column]) for column in key_columns)
            raise SecretsUnreadable(f"{unreadable} (the first: {table.name} {named})") from None
        after = _flat(after_values)
        looked_at += len(before)
        changed_here = sum(old != new for old, new in zip(before, after, strict=True))
        if not changed_here:
            continue
        changed += changed_here
        if not write:
            continue
        where = [table.c[column] == row[column] for column in key_columns]
        await connection.execute(
            update(table).where(*where).values(**after_values, version=row["version"] + 1)
        )
    return SealingReport(secrets=looked_at, changed=changed)


def _flat(values: dict[str, Any]) -> list[str]:
    """The secrets among a row's values, in column order."""
    flat: list[str] = []
    for value in values.values():
        if isinstance(value, list):
            flat.extend(value)
        elif value is not None:
            flat.append(value)
    return flat
