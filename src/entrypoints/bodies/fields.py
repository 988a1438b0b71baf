"""The pieces a request body is defined with: fields of a kind, and bodies.

A `Body` is a table of `Field`s, each of a kind (`kinds.py`) that knows how to read a value
(or refuse it, naming the field) and how to document it as JSON Schema. Reading and
documenting come from the same table, so the parser and the OpenAPI request schema cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from core.errors import ValidationError
from core.rules import reject_card_data
from entrypoints.bodies.kinds import Kind, NotReadable, Schema
from entrypoints.bodies.text import check_body_text

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
