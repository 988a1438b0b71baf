"""The kinds of field a request body is made of: each reads a present (non-null) value, or
refuses it naming the field, and documents itself as JSON Schema."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, Protocol

import attrs

from core.errors import ValidationError
from core.money import Money, currency, parse_decimal
from core.rules import (
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_LENGTH,
    MAX_TEXT_LENGTH,
    RESERVED_METADATA_KEYS,
)
from entrypoints.bodies.text import check_free_text, check_name

Schema = dict[str, Any]

CURRENCY_CODE_LENGTH: Final = 3  # ISO 4217
MAX_LIST_ITEMS: Final = 50


# --- what a field may hold: each kind reads a present (non-null) value and documents itself -----
# `before` holds the fields read before this one (an amount needs its currency); a field
# refused is not in it.


class NotReadable(Exception):
    """A kind cannot read its value: a field it depends on was refused (and is reported)."""


class Kind(Protocol):
    def read(self, name: str, value: object, before: Mapping[str, Any]) -> object: ...

    def empty(self) -> object:
        """What an absent (or null) optional field reads as."""
        ...

    def schema(self) -> Schema: ...


@attrs.frozen
class Text:
    """A string, stripped, not empty, at most `max_length` characters, maybe of a pattern;
    without control characters, but line breaks and tabs in `free` text."""

    max_length: int = MAX_TEXT_LENGTH
    pattern: re.Pattern[str] | None = None
    format: str | None = None  # what OpenAPI calls it (uri, email); the pattern is the check
    free: bool = False

    def read(self, name: str, value: object, before: Mapping[str, Any]) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string.", field=name)
        (check_free_text if self.free else check_name)(name, value)
        text = value.strip()
        if not text:
            raise ValidationError(f"{name} must not be empty.", field=name)
        if len(text) > self.max_length:
            raise ValidationError(
                f"{name} must be at most {self.max_length} characters.", field=name
            )
        if self.pattern is not None and not self.pattern.match(text):
            raise ValidationError(f"{name} is not well formed.", field=name)
        return text

    def empty(self) -> None:
        return None

    def schema(self) -> Schema:
        schema: Schema = {"type": "string", "minLength": 1, "maxLength": self.max_length}
        if self.pattern is not None:
            schema["pattern"] = self.pattern.pattern
        if self.format is not None:
            schema["format"] = self.format
        return schema


@attrs.frozen
class Choice:
    """One of a few strings, exactly: an enum's members (read as the member) or constants."""

    members: tuple[str, ...]

    def read(self, name: str, value: object, before: Mapping[str, Any]) -> str:
        text = Text().read(name, value, before)
        for member in self.members:
            if member == text:
                return member
        allowed = _either(self.values)
        raise ValidationError(
            f"{name} must be {allowed}.", field=name, expected=allowed, actual=text
        )

    @property
    def values(self) -> list[str]:
        return [str(member) for member in self.members]

    def empty(self) -> None:
        return None

    def schema(self) -> Schema:
        values = self.values
        return {"const": values[0]} if len(values) == 1 else {"enum": values}


@attrs.frozen
class Flag:
    """true or false; absent is false."""

    def read(self, name: str, value: object, before: Mapping[str, Any]) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false.", field=name)
        return value

    def empty(self) -> bool:
        return False

    def schema(self) -> Schema:
        return {"type": "boolean"}


@attrs.frozen
class Amount:
    """A decimal greater than 0 from a JSON number or a string, never through a float.

    With `currency` (the name of a `CurrencyCode` field before it), it reads as Money in
    that currency, within the currency's precision.
    """

    currency: str | None = None

    def read(self, name: str, value: object, before: Mapping[str, Any]) -> Decimal | Money:
        if self.currency is not None and self.currency not in before:
            raise NotReadable(self.currency)  # its precision is the currency's: unknown
        number = parse_decimal(value, field=name)
        if number <= 0:
            raise ValidationError(f"{name} must be greater than 0.", field=name)
        if self.currency is None:
            return number
        code = currency(before[self.currency], field=self.currency)
        return Money.of(number, code, field=name)

    def empty(self) -> None:
        return None

    def schema(self) -> Schema:
        return {
            "oneOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*$"},
            ],
            "description": "A decimal greater than 0, parsed exactly (never as a float)"
            + (", with at most the currency's decimal places." if self.currency else "."),
            "examples": ["150.00"],
        }


@attrs.frozen
class CurrencyCode:
    """An ISO 4217 code the service knows, in any case (read as given: the amount that names
    it reads itself as Money in it)."""

    def read(self, name: str, value: object, before: Mapping[str, Any]) -> str:
        code = Text(max_length=CURRENCY_CODE_LENGTH).read(name, value, before)
        currency(code, field=name)  # refused here, so that it is reported as itself
        return code

    def empty(self) -> None:
        return None

    def schema(self) -> Schema:
        return {
            "type": "string",
            "minLength": CURRENCY_CODE_LENGTH,
            "maxLength": CURRENCY_CODE_LENGTH,
            "description": "An ISO 4217 code, in any case.",
            "examples": ["usd"],
        }


@attrs.frozen
class Metadata:
    """The caller's own keys: string keys and string values, a few of each, none reserved."""

    def read(self, name: str, value: object, before: Mapping[str, Any]) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise ValidationError(f"{name} must be an object.", field=name)
        if len(value) > MAX_METADATA_KEYS:
            raise ValidationError(f"{name} may have at most {MAX_METADATA_KEYS} keys.", field=name)
        result: dict[str, str] = {}
        for key, item in value.items():
            where = f"{name}.{key}"
            if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY_LENGTH:
                raise ValidationError(
                    f"{name} keys must be 1 to {MAX_METADATA_KEY_LENGTH} characters.", field=where
                )
            if key in RESERVED_METADATA_KEYS:
                raise ValidationError(f"{key} is set by the service.", field=where)
            if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_LENGTH:
                raise ValidationError(
                    f"{name} values must be strings of at most "
                    f"{MAX_METADATA_VALUE_LENGTH} characters.",
                    field=where,
                )
            result[key] = item
        return result

    def empty(self) -> dict[str, str]:
        return {}

    def schema(self) -> Schema:
        return {
            "type": "object",
            "maxProperties": MAX_METADATA_KEYS,
            "propertyNames": {
                "minLength": 1,
                "maxLength": MAX_METADATA_KEY_LENGTH,
                "not": {"enum": sorted(RESERVED_METADATA_KEYS)},
            },
            "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_LENGTH},
        }


@attrs.frozen
class Strings:
    """A list of strings; `items` documents the values the domain then checks."""

    items: tuple[str, ...] = ()
    max_items: int = MAX_LIST_ITEMS

    def read(self, name: str, value: object, before: Mapping[str, Any]) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationError(f"{name} must be a list of strings.", field=name)
        if len(value) > self.max_items:
            raise ValidationError(f"{name} may have at most {self.max_items} items.", field=name)
        return list(value)

    def empty(self) -> list[str]:
        return []

    def schema(self) -> Schema:
        items: Schema = (
            {"enum": [str(item) for item in self.items]} if self.items else {"type": "string"}
        )
        return {"type": "array", "maxItems": self.max_items, "items": items}


def _either(values: list[str]) -> str:
    quoted = [f'"{value}"' for value in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
