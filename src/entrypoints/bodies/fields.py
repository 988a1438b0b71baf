"""The pieces a request body is defined with: kinds of field, fields, bodies.

A `Body` is a table of `Field`s, each of a kind that knows how to read a value (or refuse it,
naming the field) and how to document it as JSON Schema. Reading and documenting come from
the same table, so the parser and the OpenAPI request schema cannot drift apart.
"""

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
    reject_card_data,
)
from entrypoints.bodies.text import check_body_text, check_free_text, check_name

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


# --- a body: its fields, read in order ------------------------------------------------------------


@attrs.frozen
class Field:
    name: str
    kind: Kind
    required: bool = False
    # What an absent optional field means, when it is more than the kind's empty value.
    default: str | None = None
    # (another field, its value): this field may be given only alongside that value.
    only_with: tuple[str, str] | None = None
    description: str | None = None

    def schema(self) -> Schema:
        schema = self.kind.schema()
        notes = [self.description] if self.description else []
        if self.only_with is not None:
            notes.append(f"Only with {self.only_with[0]} {self.only_with[1]}.")
        if notes:
            schema["description"] = " ".join([*notes, schema.get("description", "")]).strip()
        if self.default is not None:
            schema["default"] = self.default
        return schema


@attrs.frozen
class Body:
    """A request body: its name in the OpenAPI document and its fields, in reading order."""

    name: str
    fields: tuple[Field, ...]
    # No body at all reads as {} (a POST whose fields are all optional).
    optional: bool = False

    def read(self, body: object) -> dict[str, Any]:
        """Every field's value by name (absent ones as their default); or one ValidationError
        listing every field refused in `details.fields` (unknown ones first, then in reading
        order), the first also as `details.field`."""
        try:
            whole = self._whole(body)
        except ValidationError as error:  # the body as a whole: nothing more is read
            raise refused([error]) from None
        values, problems = self._fields(whole)
        if problems:
            raise refused(problems)
        return values

    def _whole(self, body: object) -> Mapping[str, object]:
        """The body, if it is an object of named fields, without card data or text that
        cannot be shown."""
        if body is None and self.optional:
            body = {}
        if not isinstance(body, Mapping):
            raise ValidationError("The request body must be a JSON object.", field="body")
        for key in body:
            if not isinstance(key, str):
                raise ValidationError("Field names must be strings.", field=str(key))
        reject_card_data(body)  # first: card data is refused as such, whatever else is wrong
        check_body_text(body)
        return body

    def _fields(self, body: Mapping[str, object]) -> tuple[dict[str, Any], list[ValidationError]]:
        """The values read, and every field refused; a field that depends on a refused one
        is left unread (that one is reported)."""
        problems = [
            ValidationError(f"Unknown field {name!r}.", field=name)
            for name in sorted(set(body) - {field.name for field in self.fields})
        ]
        values: dict[str, Any] = {}
        check_only_with_at = self._only_with_read()
        for index, field in enumerate(self.fields):
            try:
                values[field.name] = self._value(field, body.get(field.name), values)
            except ValidationError as error:
                problems.append(error)
            except NotReadable:
                pass
            if index == check_only_with_at:
                problems += self._only_with_problems(values)
        return values, problems

    @staticmethod
    def _value(field: Field, value: object, before: Mapping[str, Any]) -> object:
        if value is not None:
            return field.kind.read(field.name, value, before)
        if field.required:
            raise ValidationError(f"{field.name} is required.", field=field.name)
        if field.default is not None:
            return field.kind.read(field.name, field.default, before)
        return field.kind.empty()

    def _only_with_read(self) -> int:
        """Where the `only_with` rules are checked: once every field they concern is read."""
        names = [field.name for field in self.fields]
        concerned = {
            name
            for field in self.fields
            if field.only_with is not None
            for name in (field.name, field.only_with[0])
        }
        return max((names.index(name) for name in concerned), default=-1)

    def _only_with_problems(self, values: Mapping[str, Any]) -> list[ValidationError]:
        """A field given without the value it goes with (unless either was refused)."""
        problems = []
        for field in self.fields:
            if field.only_with is not None:
                other, wanted = field.only_with
                if field.name not in values or other not in values:
                    continue
                if values[field.name] != field.kind.empty() and values[other] != wanted:
                    problems.append(
                        ValidationError(f"{field.name} applies to {wanted} only.", field=field.name)
                    )
        return problems

    def schema(self) -> Schema:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [field.name for field in self.fields if field.required],
            "properties": {field.name: field.schema() for field in self.fields},
        }


def refused(problems: list[ValidationError]) -> ValidationError:
    """One error for every field refused: `details.fields` lists each (its field and
    message); the first is also `details.field`, with its other details, and its message
    leads."""
    first = problems[0]
    fields = [{"field": p.field or "body", "message": p.message} for p in problems]
    message = first.message
    if len(problems) > 1:
        message += f" ({len(problems) - 1} more in details.fields)"
    others = {key: value for key, value in first.details.items() if key != "field"}
    return ValidationError(message, field=first.field or "body", fields=fields, **others)
