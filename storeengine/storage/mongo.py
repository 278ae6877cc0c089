"""MongoDB through PyMongo's native async driver (`AsyncMongoClient`: every operation a coroutine on
the event loop, no thread pool). Driver errors become StoreErrors here and nowhere else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from bson.errors import BSONError
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from storeengine.core.errors import BadRequest, Conflict, StoreError, Unavailable
from storeengine.core.types import Doc, Sort
from storeengine.settings import Settings

log = logging.getLogger(__name__)

_DOWN = (ServerSelectionTimeoutError, AutoReconnect, ConnectionFailure, NetworkTimeout)
# Values the driver cannot encode: integers outside signed 64 bits (OverflowError), invalid
# documents and strings (bson InvalidDocument / InvalidStringData), lone surrogates.
_UNENCODABLE = (OverflowError, BSONError, UnicodeEncodeError)
CONNECT_TIMEOUT_MS = 20000  # PyMongo's default (see Storage.connect)



_CAUGHT = (*_UNENCODABLE, PyMongoError)


def translated(exc: BaseException) -> StoreError:
    """A driver error as the engine's: unreachable -> 503, unique index -> 409, a value the driver
    cannot encode -> 400, other -> 500. Raised as it is (`raise translated(exc)`): its cause is set
    here as `raise ... from` did, the driver's error for a refused value, none otherwise."""
    error: StoreError
    if isinstance(exc, _UNENCODABLE):
        log.info("value refused by the driver: %s", type(exc).__name__)
        error = BadRequest("A value cannot be stored (integers must fit in signed 64 bits)")
        error.__cause__ = exc
        return error
    if isinstance(exc, DuplicateKeyError):
        error = Conflict("An entity with the same unique value exists")
    elif isinstance(exc, ExecutionTimeout):
        error = Unavailable("The query took too long")
    elif isinstance(exc, _DOWN):
        log.warning("database unavailable: %s", type(exc).__name__)
        error = Unavailable()
    else:
        log.error("database error: %s", exc)
        error = StoreError()
    error.__suppress_context__ = True
    return error


@asynccontextmanager
async def guard() -> AsyncIterator[None]:
    """Driver errors translated (`translated`) around a block. The reads of every request catch
    them inline instead: entering this costs 1.5 us a call, a try block nothing."""
    try:
        yield
    except _CAUGHT as exc:
        raise translated(exc)  # noqa: B904 (its cause is set by translated)


class Collection:
    """The few operations the engine needs, each guarded."""

    def __init__(self, raw: AsyncCollection[Doc], timeout_ms: int) -> None:
        self.raw = raw
        self.timeout_ms = timeout_ms  # bounds every read, so one costly filter cannot run on

    async def find_one(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None = None,
                       sort: Sort | None = None) -> Doc | None:
        try:
            return await self.raw.find_one(query, projection, sort=list(sort) if sort else None,
                                           max_time_ms=self.timeout_ms)
        except _CAUGHT as exc:
            raise translated(exc)  # noqa: B904 (its cause is set by translated)

    async def find(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None = None,
                   sort: Sort | None = None, skip: int = 0, limit: int = 0) -> list[Doc]:
        try:
            cursor = self.raw.find(query, projection, skip=skip, limit=limit, max_time_ms=self.timeout_ms)
            if sort:
                cursor = cursor.sort(list(sort))
            return await cursor.to_list(None)
        except _CAUGHT as exc:
            raise translated(exc)  # noqa: B904 (its cause is set by translated)

    async def count(self, query: Mapping[str, Any]) -> int:
        async with guard():
            return await self.raw.count_documents(query, maxTimeMS=self.timeout_ms)

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]], timeout_ms: int | None = None) -> list[Doc]:
        """One pipeline (the stages storage.api documents), bounded by maxTimeMS."""
        timeout = timeout_ms or self.timeout_ms
        async with guard():
            cursor = await self.raw.aggregate(list(pipeline), maxTimeMS=timeout)
            rows: list[Doc] = await cursor.to_list(None)
            return rows

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A write or index call through the driver, guarded."""
        async with guard():
            return await getattr(self.raw, method)(*args, **kwargs)

    async def insert(self, doc: Doc) -> None:
        await self._call("insert_one", doc)

    async def update_if(self, query: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
        """Update the one document matching `query` (a compare-and-swap); False if none matched."""
        result = await self._call("update_one", query, update)
        return bool(result.matched_count == 1)

    async def update(self, query: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False) -> int:
        result = await self._call("update_many", query, update, upsert=upsert)
        return int(result.matched_count)

    async def delete(self, query: Mapping[str, Any]) -> int:
        result = await self._call("delete_many", query)
        return int(result.deleted_count)

    async def find_one_and_delete(self, query: Mapping[str, Any]) -> Doc | None:
        doc: Doc | None = await self._call("find_one_and_delete", query)
        return doc

    async def increment(self, query: Mapping[str, Any], update: Mapping[str, Any]) -> Doc:
        """Apply `update` to the one document matching `query`, creating it if missing, and
        return it as it is after the update: one atomic step on MongoDB."""
        doc: Doc = await self._call("find_one_and_update", query, update, upsert=True,
                                    return_document=ReturnDocument.AFTER)
        return doc

    async def ensure_index(self, keys: Sequence[tuple[str, int]], *, unique: bool = False,
                           expire_after: int | None = None) -> None:
        extra: dict[str, Any] = {"expireAfterSeconds": expire_after} if expire_after is not None else {}
        if unique:
            # Unique among the documents that have the fields: entities without an optional
            # unique field must not collide with each other as `null`s.
            extra["partialFilterExpression"] = {k: {"$exists": True} for k, _ in keys}
        await self._call("create_index", list(keys), unique=unique, **extra)


class Storage:
    def __init__(self, client: Any, database: str, *, embedded: bool, query_timeout_ms: int = 10000) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[database]
        self.database_name = database
        self.embedded = embedded
        self.query_timeout_ms = query_timeout_ms
        self._collections: dict[str, Collection] = {}

    @classmethod
    def connect(cls, settings: Settings) -> Storage:
        # connectTimeoutMS also bounds the monitor's heartbeat `hello` and every new connection's
        # handshake, and one that runs out clears the pool, cancelling every operation in flight
        # (503s). At the selection timeout (2 s) a database merely busy under load (32 lists of
        # 1,000 on jongodb) did that; a dead one is still found by server selection.
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            settings.mongodb_uri, tz_aware=False,
            serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
            connectTimeoutMS=max(CONNECT_TIMEOUT_MS, settings.server_selection_timeout_ms),
        )
        log.info("using MongoDB database %r", settings.database)
        return cls(client, settings.database, embedded=False, query_timeout_ms=settings.query_timeout_ms)

    def collection(self, name: str) -> Collection:
        # Kept per name: building the driver's collection object on every call took a sixth of a
        # GET by id's own time over the wire.
        coll = self._collections.get(name)
        if coll is None:
            coll = self._collections[name] = Collection(self.db[name], self.query_timeout_ms)
        return coll

    async def ping(self) -> bool:
        try:
            async with guard():
                await self.db.command("ping")
            return True
        except StoreError:
            return False

    async def close(self) -> None:
        await self.client.close()
