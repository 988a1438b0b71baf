"""Rows from core objects and back, one column a field under the field's own name.

Each kind of value is converted the one way stated here: money in integer minor units beside a
single `currency` column, enums by value, sets as sorted lists, attrs values (a failure) as
JSON. A field that needs more says so by name (`parts`). The conversions are worked out once,
when a codec is made, so a row costs a dictionary and a call a converted field.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from adapters.sql.snapshots import json_converter
from core.money import CURRENCIES, Money

T = TypeVar("T")
Row = Mapping[str, Any]
Convert = Callable[[Any], Any]


@attrs.frozen
class Part:
    """A field stored over several columns: its columns from the value, the value from the row."""

    columns: Callable[[Any], dict[str, Any]]
    read: Callable[[Row], Any]


def _optional(kind: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of a field's annotation."""
    arguments = typing.get_args(kind)
    if isinstance(kind, types.UnionType) and type(None) in arguments:
        (inner,) = (argument for argument in arguments if argument is not type(None))
        return inner, True
    return kind, False


def _conversions(kind: Any) -> tuple[Convert, Convert] | None:
    """(to the column, from the column) for a type that is not stored as it is."""
    origin = typing.get_origin(kind) or kind
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        return (lambda member: member.value), origin
    if origin is frozenset:
        return sorted, frozenset
    if origin is Mapping:
        return dict, (lambda stored: stored)
    if attrs.has(origin):
        return json_converter.unstructure, (lambda stored: json_converter.structure(stored, origin))
    return None


def _or_none(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


class RowCodec(Generic[T]):
    def __init__(self, cls: type[T], parts: Mapping[str, Part] | None = None) -> None:
        self.cls = cls
        self._parts = dict(parts or {})
        self._plain: list[tuple[str, str]] = []  # (column, init argument)
        self._converted: list[tuple[str, str, Convert, Convert]] = []
        self._money: list[tuple[str, str]] = []
        kinds = typing.get_type_hints(cls)
        for field in attrs.fields(cls):  # type: ignore[arg-type]
            if field.name in self._parts:
                continue
            kind, nullable = _optional(kinds[field.name])
            conversions = _conversions(kind)
            if kind is Money:
                self._money.append((field.name, field.alias))
            elif conversions is None:
                self._plain.append((field.name, field.alias))
            else:
                write, read = (_or_none(c) for c in conversions) if nullable else conversions
                self._converted.append((field.name, field.alias, write, read))

    def values(self, item: T) -> dict[str, Any]:
        values = {name: getattr(item, name) for name, _ in self._plain}
        for name, _, write, _ in self._converted:
            values[name] = write(getattr(item, name))
        for name, _ in self._money:
            money: Money = getattr(item, name)
            values[name] = money.to_minor_units()
            values["currency"] = money.currency.code
        for name, part in self._parts.items():
            values.update(part.columns(getattr(item, name)))
        return values

    def from_row(self, row: Row) -> T:
        arguments = {alias: row[name] for name, alias in self._plain}
        for name, alias, _, read in self._converted:
            arguments[alias] = read(row[name])
        if self._money:
            currency = CURRENCIES[row["currency"]]
            for name, alias in self._money:
                arguments[alias] = Money.from_minor_units(row[name], currency)
        for name, part in self._parts.items():
            arguments[name] = part.read(row)
        return self.cls(**arguments)
