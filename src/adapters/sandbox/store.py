"""Where the sandbox keeps its customers, cards, charges and sessions: JSON documents by kind."""

from __future__ import annotations

import copy
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
    documents: dict[tuple[str, str], Document] = attrs.Factory(dict)

    async def get(self, kind: str, key: str) -> Document | None:
        found = self.documents.get((kind, key))
        return copy.deepcopy(found) if found is not None else None

    async def put(self, kind: str, key: str, document: Document) -> None:
        self.documents[(kind, key)] = copy.deepcopy(document)

    async def insert(self, kind: str, key: str, document: Document) -> bool:
        if (kind, key) in self.documents:
            return False
        self.documents[(kind, key)] = copy.deepcopy(document)
        return True

    async def delete(self, kind: str, key: str) -> None:
        self.documents.pop((kind, key), None)

    async def all(self, kind: str) -> list[Document]:
        return [copy.deepcopy(doc) for (k, _), doc in self.documents.items() if k == kind]
