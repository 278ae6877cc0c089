"""The write side of the change feed: each write carries its change inside the entity's own
document (feed.py, A, C, D, E, F). The entity service makes every create, update and delete
through `Writes`; with the feed switched off they are the plain database writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from storeengine.core.errors import BadRequest, Conflict, NotFound
from storeengine.core.types import Doc
from storeengine.model.access import Principal
from storeengine.model.schema import StoreSchema
from storeengine.store import carried
from storeengine.store.carried import FIELD, SEQ, TOMBSTONE, VOID, key
from storeengine.store.feed import Feed


class Writes:
    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    async def create(self, principal: Principal, store: StoreSchema, doc: Doc) -> None:
        """Insert a new entity carrying its change (A)."""
        entities = self.feed.entities(store)
        if not self.feed.enabled:
            await entities.insert(doc)
            return

        async def insert() -> bool:
            await entities.insert(doc)
            return True

        while True:
            seq, since = await self._number(store)
            doc[FIELD] = carried.stamp(seq, "create", principal.user_id, None, doc)
            if await self._land(store, seq, since, insert):
                break
        await self._landed(store, doc, since)

    async def update(self, principal: Principal, store: StoreSchema, current: Doc, new: Doc, change: Doc) -> bool:
        """Compare-and-swap the entity from `current` to `new` (`change`: the `$set` / `$unset` of
        its fields), carrying the change. False if another write came first."""
        entities = self.feed.entities(store)
        where = {"_id": current["_id"], "updatedAt": current["updatedAt"], SEQ: carried.seq_of(current)}
        if not self.feed.enabled:
            return await entities.update_if(where, change)
        prepared = await self._prepare(store, current)
        if prepared is None:
            return False
        seq, since = prepared
        new[FIELD] = carried.stamp(seq, "update", principal.user_id, current, new)
        swap = {**change, "$set": {**change.get("$set", {}), FIELD: new[FIELD]}}
        if not await self._land(store, seq, since, lambda: entities.update_if(where, swap)):
            return False
        await self._landed(store, new, since)
        return True

    async def delete(self, principal: Principal, store: StoreSchema, current: Doc) -> bool:
        """Delete the entity if it is still `current`: tombstone, record, removal (D). False if
        another write came first."""
        entities = self.feed.entities(store)
        where = {"_id": current["_id"], "updatedAt": current["updatedAt"], SEQ: carried.seq_of(current)}
        if not self.feed.enabled:
            return bool(await entities.delete(where))
        prepared = await self._prepare(store, current)
        if prepared is None:
            return False
        seq, since = prepared
        change = carried.stamp(seq, TOMBSTONE, principal.user_id, current, current)
        if not await self._land(store, seq, since, lambda: entities.update_if(where, {"$set": {FIELD: change}})):
            return False
        await self.feed.finish_delete(store, {**current, FIELD: change})
        return True

    async def _number(self, store: StoreSchema) -> tuple[int, float]:
        """The next number, and when (monotonic) this writer got it."""
        return await self.feed.numbers.next(store), time.monotonic()

    async def _prepare(self, store: StoreSchema, current: Doc) -> tuple[int, float] | None:
        """Before replacing `current`: finish it if it is a tombstone (then 404); keep the change it
        carries (C) while taking a number. None: it had been renumbered (F): read it again."""
        if carried.is_tombstone(current):
            await self.feed.finish_delete(store, current)
            raise NotFound("Entity not found")
        numbered, kept = await asyncio.gather(self._number(store), self._keep(store, current),
                                              return_exceptions=True)
        if isinstance(numbered, BaseException):
            raise numbered  # (a kept record is harmless: it is what the entity carries)
        if kept is not True:  # the entity write was never sent: the number surely stays empty
            await self.feed.void(store, numbered[0], sure=True)
            if isinstance(kept, BaseException):
                raise kept
            return None
        return numbered

    async def _keep(self, store: StoreSchema, current: Doc) -> bool:
        """C: the change `current` carries, into `_changes`. False if that number had been voided
        (the entity is renumbered instead: the caller reads again)."""
        if carried.seq_of(current) is None:
            return True  # written before changes were carried: its change is in `_changes` already
        return await self.feed.materialize(store, current) is not None

    async def _land(self, store: StoreSchema, seq: int, since: float, write: Callable[[], Awaitable[bool]]) -> bool:
        """The entity write carrying number `seq` (A); True once it landed. A write that surely did
        not happen voids its number at once; any other failure leaves it open (E). Not sent at all
        past the send deadline (F): the caller takes a new number."""
        if time.monotonic() - since > self.feed.send_deadline:
            await self.feed.void(store, seq, sure=True)
            return False
        try:
            landed = await write()
        except (Conflict, BadRequest):  # a duplicate key, or a value refused before it was sent
            await self.feed.void(store, seq, sure=True)
            raise
        if not landed:
            await self.feed.void(store, seq, sure=True)
        return landed

    async def _landed(self, store: StoreSchema, doc: Doc, since: float) -> None:
        """After the entity write: if it came back late, make sure its number was not voided
        meanwhile (F); then tell the listeners."""
        if time.monotonic() - since > self.feed.send_deadline:
            found = await self.feed.changes.find_one({"_id": key(store.name, doc[FIELD]["seq"])}, {"op": 1})
            if found is not None and found["op"] == VOID:
                moved = await self.feed.renumber(store, doc)
                if moved is not None:
                    doc[FIELD] = moved[FIELD]
                return
        self.feed.tell(store, carried.record(store, doc, self.feed.retention_of(store)))
