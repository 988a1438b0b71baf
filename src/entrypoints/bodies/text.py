"""Text a request may carry: Unicode scalar values only, no NUL, and no control characters in
ids and names (free text may keep its line breaks and tabs).

A lone surrogate cannot be encoded (the answer, a log line or the database fails after the
row is written) and PostgreSQL refuses NUL in text, so both are refused at the edge, before
anything is written. The value is never echoed: it cannot be rendered, and may be anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from core.errors import ValidationError

# Surrogates, and C0/C1 control characters (DEL included).
_NOT_IN_A_NAME: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The same, less the line breaks and tab that free text may hold.
_NOT_IN_FREE_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def check_name(field: str, text: str) -> str:
    """`text` (an id, a name, a key) if it holds no control character nor surrogate."""
    if _NOT_IN_A_NAME.search(text):
        raise ValidationError(
            f"{field} must be valid Unicode text without control characters.", field=field
        )
    return text


def check_free_text(field: str, text: str) -> str:
    """`text` (a note, a reason) if it holds no surrogate nor control character but line
    breaks and tabs."""
    if _NOT_IN_FREE_TEXT.search(text):
        raise ValidationError(
            f"{field} must be valid Unicode text without control characters other than line "
            "breaks and tabs.",
            field=field,
        )
    return text


def check_body_text(body: Mapping[str, object], where: str = "") -> None:
    """Every key and string at any depth of a parsed body: keys as names, values as free text
    (each field's kind then holds its own values to its own rule)."""
    for key, value in body.items():
        if isinstance(key, str):  # a bad key is never named (it cannot be shown): its object is
            check_name(where.rstrip(".") or "body", key)
        _check_value(f"{where}{key}", value)


def _check_value(field: str, value: object) -> None:
    if isinstance(value, str):
        check_free_text(field, value)
    elif isinstance(value, Mapping):
        check_body_text(value, f"{field}.")
    elif isinstance(value, list):
        for item in value:
            # Items are named by their list: `events`, like the kinds that read them.
            _check_value(field, item)


def check_request_text(where_and_text: Iterable[tuple[str, str]]) -> None:
    """What a request says outside its body (path parameters, query parameters, headers), each
    as (its name, its text): all of them ids or names."""
    for field, text in where_and_text:
        check_name(field, text)
