"""The storage seam: what the engine asks of a database, as Protocols.

Two implementations: `mongo.Storage` (MongoDB through the driver) and `sqlite.SqliteStorage`
(the embedded database); `storage.connect(settings)` picks one. `create_app(settings,
storage=...)` takes any object with these operations, so a test can hand the app a store that
fails or is slow, the way httpx takes a transport. Queries and updates are MongoDB-shaped
dicts; storage/testing.py is the conformance suite every implementation passes. Every
operation raises StoreErrors only (Unavailable, Conflict, BadRequest, StoreError).

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

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]], timeout_ms: int | None = None) -> list[Doc]:
        """Run one aggregation pipeline, bounded like every read (`timeout_ms`, default the
        store's query timeout -> Unavailable). The engine (model/aggregate.py) sends only:

        - `{"$match": <query>}`: first, once; the same query language as `find`.
        - `{"$group": {"_id": None | {"g0": <key>, ...}, <out>: <acc>, ...}}` where `<key>` is
          `{"$ifNull": ["$<path>", None]}` (null and missing: one group) or
          `{"$dateToString": {"date": "$<path>", "format": F}}` with F one of `%Y-%m-%dT%H`,
          `%Y-%m-%d`, `%Y-%m`, `%Y` (UTC; a missing or null date gives null), and `<acc>` is
          `{"$sum": 1}` or `{"$sum" | "$avg" | "$min" | "$max": "$<path>"}` with MongoDB's
          semantics: $sum/$avg ignore non-numbers and missing ($sum of none = 0, $avg = null);
          $min/$max ignore missing/null and compare across types in BSON order.
        - `{"$sort": {"_id.g0": 1, ...}}`: BSON order of the group keys (null first).
        - `{"$limit": n}`.
        `<path>` may be dotted (a sub-field). Rows come back as MongoDB returns them."""
        ...

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
    embedded: bool  # one process owns the database (the embedded one, outside `serve --workers N`):
    # the feed may then count in memory, and nothing needs to poll it for other processes' writes
    database_name: str  # processes sharing a database share its change feed's Redis channel

    def collection(self, name: str) -> CollectionAPI: ...

    async def ping(self) -> bool:
        """False when the database cannot be reached (GET /healthz answers 503)."""
        ...

    async def close(self) -> None: ...
