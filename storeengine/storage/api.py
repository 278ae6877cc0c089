"""The storage seam: what the engine asks of a database, as Protocols.

`storage.mongo.Storage` / `Collection` (PyMongo's AsyncMongoClient, guarded) are the real
implementation and the only code that touches the driver. `create_app(settings, storage=...)`
takes any object with these operations, so a test can hand the app a store that fails or is
slow, the way httpx takes a transport. Every operation raises StoreErrors only (Unavailable,
Conflict, StoreError).

What the change feed relies on (store/feed.py, its argument A-G); every backend must give it:
- Each write (`insert`, `update_if`, `update`, `delete`) is atomic for the one document it
  touches: an entity and the `_change` field written with it land together or not at all.
- `Conflict` (duplicate key) and `BadRequest` (a value refused) mean the write did NOT happen;
  `update_if` returning False means it did not match. Any other failure (Unavailable, StoreError,
  a cancellation) may leave the write done or not: the feed treats it so.
- Queries, sorts and `$set` on a dotted path into a sub-document (`_change.seq` ranges, sorted
  on `_change.seq`, with an index from `ensure_index((("_change.seq", 1),))`), and a filter
  `{"_change.seq": None}` matching a document without the field (as MongoDB's does).
- `close()` is a coroutine (PyMongo's async client closes with `await`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from storeengine.core.types import Doc, Sort


class CollectionAPI(Protocol):
    async def find_one(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None = None,
                       sort: Sort | None = None) -> Doc | None: ...

    async def find(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None = None,
                   sort: Sort | None = None, skip: int = 0, limit: int = 0) -> list[Doc]: ...

    async def count(self, query: Mapping[str, Any]) -> int: ...

    async def insert(self, doc: Doc) -> None: ...

    async def update_if(self, query: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
        """Update the one document matching `query` (a compare-and-swap); False if none matched."""
        ...

    async def update(self, query: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False) -> int: ...

    async def delete(self, query: Mapping[str, Any]) -> int: ...

    async def find_one_and_delete(self, query: Mapping[str, Any]) -> Doc | None: ...

    async def increment(self, query: Mapping[str, Any], update: Mapping[str, Any]) -> Doc:
        """Apply `update` to the one matching document, creating it if missing; return it after."""
        ...

    async def ensure_index(self, keys: Sequence[tuple[str, int]], *, unique: bool = False,
                           expire_after: int | None = None) -> None: ...


class StorageAPI(Protocol):
    embedded: bool  # the in-process database: one process owns it (the feed counts in memory there)
    database_name: str  # processes sharing a database share its change feed's Redis channel

    def collection(self, name: str) -> CollectionAPI: ...

    async def ping(self) -> bool:
        """False when the database cannot be reached (GET /healthz answers 503)."""
        ...

    async def close(self) -> None: ...
