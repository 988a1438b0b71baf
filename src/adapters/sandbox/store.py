"""Where the sandbox keeps its customers, cards, charges and sessions: JSON documents by kind."""

from __future__ import annotations

import json
from typing import Any, Protocol

import attrs

Document = dict[str, Any]


class SandboxStore(Protocol):
    async def get(self, kind: str, key: str) -> Document | None: ...
    async def put(self, kind: str, key: str, document: Document) -> None: ...
    async def insert(self, kind: str, key: str, document: Document) -> bool:
        """Store a new document; False (and no change) when the key is taken."""

    async def delete(self, kind: str, key: str) -> None: ...
    async def all(self, kind: str) -> list[Document]: ...


@attrs.define
class InMemorySandboxStore:
    """Documents kept as JSON text, as the SQL store keeps them: a caller never shares one."""

    documents: dict[tuple[str, str], str] = attrs.Factory(dict)

    async def get(self, kind: str, key: str) -> Document | None:
        found = self.documents.get((kind, key))
        return _load(found) if found is not None else None

    async def put(self, kind: str, key: str, document: Document) -> None:
        self.documents[(kind, key)] = json.dumps(document)

    async def insert(self, kind: str, key: str, document: Document) -> bool:
        if (kind, key) in self.documents:
            return False
        self.documents[(kind, key)] = json.dumps(document)
        return True

    async def delete(self, kind: str, key: str) -> None:
        self.documents.pop((kind, key), None)

    async def all(self, kind: str) -> list[Document]:
        return [_load(text) for (k, _), text in self.documents.items() if k == kind]


def _load(text: str) -> Document:
    document: Document = json.loads(text)
    return document
