"""The change feed: every write appends one change to its store's feed, kept in the database.

Why a reader never skips a change (the argument the README repeats):

1. Numbers. A writer takes the next number of its store from an atomic counter
   (`find_one_and_update` + `$inc`) *before* its entity write (and, for updates, after the
   read it builds on), and inserts the change under that number *after* the write
   succeeded. Two writes of one entity are serialised by the compare-and-swap, so the later
   one's number is larger: the feed's order is each entity's write order.
2. Readers stop at holes. Numbers are dense, so a missing number is a writer between its
   allocation and its insert. A reader walks numbers in order and stops before the first
   missing one; everything up to its cursor is in the feed for good.
3. Holes close atomically. A writer that gives up (failed write, lost race) fills its number
   with a `void` at once. A number that stays missing longer than `void_after` (the writer
   died) is filled with a `void` by a reader. A change's `_id` is "<store>:<seq>", so the
   database's own unique `_id` makes "void" vs "late change" a race that exactly one side
   wins (an atomic insert, on MongoDB and the embedded database alike); a late writer that loses takes
   a new number and inserts again, so its change is still seen, later. Readers skip voids.
   Only the database decides, so this holds across processes.
4. Retention. Changes are removed only below the store's `floor`, which moves up through
   numbers that are filled and older than the retention; the floor is raised *before* the
   deletes, so a reader that reads its page and then the floor sees any deletion it met: a
   cursor below the floor is 410, never a silent skip.

The age of a hole is read from the database, not from one process's memory: the number was
allocated before the change just above it was written (`at`), or, at the top, before the
counter's last allocation (`at` on the counter).
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from storeengine.core.documents import ACCESS_FIELDS, version
from storeengine.core.errors import BadRequest, Conflict, Gone, StoreError
from storeengine.core.formats import utcnow
from storeengine.core.scope import database_scope
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.matcher import matches
from storeengine.model.schema import StoreSchema
from storeengine.storage.api import StorageAPI

log = logging.getLogger(__name__)

CHANGES, COUNTERS = "_changes", "_change_seqs"
VOID = "void"
PAGE = 1000
_BEFORE_FIELDS = ("_id", "owner", *ACCESS_FIELDS)
_BRIEF = {"seq": 1, "at": 1, "op": 1}
# Listeners hear every change this process appended (the live hub wakes its tailers with them).
Listener = Callable[[str, Doc], None]


def cursor(store: str, seq: int) -> str:
    """Fixed-width hex of the number plus a tag of the store: cursors of one store sort as
    plain strings, and a cursor of another store is recognised."""
    return f"{seq:016x}{_tag(store)}"


def _tag(store: str) -> str:
    """The store's tag, and the database's (core/scope.py): a tenant's cursors are unknown elsewhere."""
    return f"{zlib.crc32((database_scope.get() + store).encode()):08x}"


def parse_cursor(store: str, text: str) -> int:
    """The number in a cursor of this store; 400 for anything else."""
    if len(text) != 24 or text != text.lower() or not all(c in "0123456789abcdef" for c in text):
        raise BadRequest("since: not a change cursor")
    if text[16:] != _tag(store):
        raise BadRequest("since: a cursor of another store")
    return int(text[:16], 16)


def _key(store: str, seq: int) -> str:
    """A change's `_id`: one document per number and store, enforced by the database."""
    return f"{store}:{seq:016x}"


def access_of(doc: Mapping[str, Any] | None) -> Doc | None:
    return None if doc is None else {k: doc.get(k) for k in _BEFORE_FIELDS}


def view(principal: Principal, store: StoreSchema, record: Mapping[str, Any],
         query: Mapping[str, Any] | None = None) -> Doc | None:
    """The change as this reader sees it, by its current rights and the store's current read
    rules on the entity before and after, and (a filtered reader, API.md 14) by whether each of
    them matches `query` (a checked filter): its own op, `enter`, `leave`, or None. Decided in
    memory from the record (which carries the entity before the write), never by a database read.
    The entity is the reader's view of it (properties whose `x-read` they fail left out)."""
    rules, op = store.acl["read"], record["op"]
    before, after = record.get("before"), (None if op == "delete" else record["entity"])
    could = before is not None and acl.can(principal, rules, before) and (query is None or matches(before, query))
    can = after is not None and acl.can(principal, rules, after) and (query is None or matches(after, query))
    if could == can:
        shown = op if could else None
    else:
        shown = ("enter" if op != "create" else op) if can else ("leave" if op != "delete" else op)
    if shown is None:
        return None
    return {"seq": cursor(store.name, record["seq"]), "store": store.name, "op": shown, "_id": record["id"],
            "entity": None if shown == "leave" else acl.visible(principal, store, record["entity"]),
            "at": record["at"], "by": record["by"]}


@dataclass
class Page:
    records: list[Doc]  # changes (voids left out) in seq order
    position: int  # the number up to which every change has been examined
    more: bool  # the feed holds further filled numbers after `position`


class Pending:
    """A write in progress: the number it holds; `commit(after)` once the write succeeded."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.done = False
        self.after: Doc | None = None

    def commit(self, after: Doc | None) -> None:
        self.done, self.after = True, after


class Feed:
    def __init__(self, storage: StorageAPI, *, retention_seconds: float, enabled: bool = True,
                 void_after_seconds: float = 10.0) -> None:
        self.storage = storage
        self.changes = storage.collection(CHANGES)
        self.counters = storage.collection(COUNTERS)
        self.retention = timedelta(seconds=retention_seconds)
        self.void_after = timedelta(seconds=void_after_seconds)
        self.enabled = enabled
        self.listeners: list[Listener] = []
        self._known: dict[str, int] = {}  # a filled prefix seen by this process, per store
        self._local_seq: dict[str, int] = {}  # the counters, when the database is embedded

    async def ensure_indexes(self) -> None:
        await self.changes.ensure_index((("store", 1), ("seq", 1)))
        await self.changes.ensure_index((("store", 1), ("id", 1), ("seq", 1)))
        # A backstop for when no server runs: the maintenance sweep removes expired changes
        # (below the floor) long before the database's TTL monitor would.
        await self.changes.ensure_index((("expireAt", 1),), expire_after=24 * 3600)

    # --- writing ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def writing(self, principal: Principal, store: StoreSchema, op: str,
                      before: Doc | None) -> AsyncIterator[Pending]:
        """Hold a number around one entity write; append its change if the write committed."""
        if not self.enabled:
            yield Pending(0)
            return
        pending = Pending(await self._allocate(store.name))
        try:
            yield pending
        finally:
            if pending.done:
                await self._append(principal, store, op, before, pending)
            else:
                await self._fill_void(store, pending.seq)

    async def _allocate(self, store: str) -> int:
        if self.storage.embedded:
            # One process owns the embedded database, so its memory is as atomic a counter as the
            # database's, and costs no write. (`serve --workers N` shares the embedded database:
            # there `embedded` is False and the counter is the database's, as on MongoDB.)
            if store not in self._local_seq:
                # Go on from the last change kept (the embedded database keeps the feed across
                # restarts, but this counter only in memory): one read of the (store, seq) index.
                counter = await self.counters.find_one({"_id": store}) or {}
                last = await self.changes.find_one({"store": store}, {"seq": 1}, [("seq", -1)]) or {}
                self._local_seq.setdefault(store, max(int(counter.get("seq", 0)), int(last.get("seq", 0))))
            self._local_seq[store] += 1
            return self._local_seq[store]
        for _ in range(3):  # two first upserts of one counter may race on its _id
            with contextlib.suppress(Conflict):
                doc = await self.counters.increment({"_id": store}, {"$inc": {"seq": 1}, "$set": {"at": utcnow()}})
                return int(doc["seq"])
        raise Conflict("Could not number the change; try again")

    async def _append(self, principal: Principal, store: StoreSchema, op: str, before: Doc | None,
                      pending: Pending) -> None:
        entity = pending.after if pending.after is not None else before
        assert entity is not None
        entity = {k: v for k, v in entity.items() if k not in store.hidden}
        # `before`: the stored entity before the write (None for a create), so that a filtered
        # reader's match before the write is decided from the record (API.md 14). Records written
        # before this carried only the access fields: a filter on other fields finds them missing.
        was = None if before is None else {k: v for k, v in before.items() if k not in store.hidden}
        # Never before the version it carries (`updatedAt` may run ahead of the clock by a few ms).
        now = max(utcnow(), entity.get("updatedAt") or utcnow())
        doc: Doc = {"_id": _key(store.name, pending.seq), "store": store.name, "seq": pending.seq, "op": op,
                    "id": entity["_id"], "entity": entity, "before": was, "version": version(entity),
                    "at": now, "by": principal.user_id}
        if not store.history:
            doc["expireAt"] = now + self.retention
        while True:
            try:
                await self.changes.insert(doc)
                break
            except Conflict:  # a reader closed our number as void: we were late; take a new one
                doc["seq"] = await self._allocate(store.name)
                doc["_id"] = _key(store.name, doc["seq"])
        for listener in self.listeners:
            listener(store.name, doc)

    async def _fill_void(self, store: StoreSchema, seq: int) -> bool:
        """Close a number with a placeholder; False if a change took it first."""
        now = utcnow()
        doc: Doc = {"_id": _key(store.name, seq), "store": store.name, "seq": seq, "op": VOID, "at": now}
        if not store.history:
            doc["expireAt"] = now + self.retention
        try:
            await self.changes.insert(doc)
        except Conflict:
            return False
        except StoreError:  # database gone: readers close it once it is old enough
            log.warning("could not close change %s of %s", seq, store.name)
            return False
        return True

    # --- reading ---------------------------------------------------------------------------

    async def read(self, store: StoreSchema, since: int | None, limit: int = PAGE, *, brief: bool = False) -> Page:
        """Up to `limit` numbers after `since` (None: the oldest retained), stopping before the
        first number that is not filled yet. 410 if changes after `since` have expired.
        `brief`: only numbers and times (for positions), not the changes themselves."""
        position = await self.floor(store.name) if since is None else since
        records: list[Doc] = []
        left = limit
        while True:
            # Numbers are dense, so a bounded range holds the page: one range scan of the
            # (store, seq) index.
            where = {"store": store.name, "seq": {"$gt": position, "$lte": position + left + 1}}
            docs = await self.changes.find(where, _BRIEF if brief else None, [("seq", 1)], 0, left + 1)
            # Read after the page: a deletion the page met had raised the floor before it.
            counter = await self.counters.find_one({"_id": store.name}) or {}
            if since is not None and since > self._newest(store.name, counter):
                # Never a silent wait (API.md 10), and never a position this process remembers.
                raise BadRequest("since: a cursor beyond the store's newest change")
            if position < counter.get("floor", 0):
                raise Gone("The cursor is older than the retained changes")
            hole_at: datetime | None = None  # when the number after `position` was allocated, at the latest
            for doc in docs:
                if left == 0:
                    return self._page(store, records, position, True)
                if doc["seq"] != position + 1:
                    hole_at = doc["at"]
                    break
                position, left = doc["seq"], left - 1
                if doc["op"] != VOID:
                    records.append(doc)
            else:
                if position >= counter.get("seq", 0) or left == 0:
                    return self._page(store, records, position, False)
                hole_at = counter.get("at")  # allocated before the counter's last allocation
            if hole_at is None or not await self._close_if_old(store, position + 1, hole_at):
                return self._page(store, records, position, False)

    def _newest(self, store: str, counter: Doc) -> int:
        """The last number handed out (or expired): no cursor of this store lies beyond it."""
        return max(int(counter.get("seq", 0)), int(counter.get("floor", 0)), self._local_seq.get(store, 0))

    def _page(self, store: StoreSchema, records: list[Doc], position: int, more: bool) -> Page:
        self._known[store.name] = max(self._known.get(store.name, 0), position)
        return Page(records, position, more)

    async def _close_if_old(self, store: StoreSchema, seq: int, allocated_before: datetime) -> bool:
        """A number allocated before `allocated_before`, missing for longer than the bound, is
        closed as void (or a late change fills it meanwhile). True if it is filled now."""
        if utcnow() - allocated_before < self.void_after:
            return False
        await self._fill_void(store, seq)
        return True

    async def floor(self, store: str) -> int:
        counter = await self.counters.find_one({"_id": store}) or {}
        return int(counter.get("floor", 0))

    async def watermark(self, store: StoreSchema) -> int:
        """A number up to which every change is in the feed: resuming from it after reading a
        list misses nothing written after the list was read."""
        position = self._known.get(store.name, 0)
        while True:
            try:
                page = await self.read(store, position, PAGE, brief=True)
            except Gone:  # below the floor (expired, or never read here): start from the floor
                position = await self.floor(store.name)
                continue
            position = page.position
            if not page.more:
                return position

    async def list_cursor(self, store: StoreSchema) -> str | None:
        """X-Change-Cursor for a list answer (read before the list it goes with); None without a feed."""
        return cursor(store.name, await self.watermark(store)) if self.enabled else None

    async def history(self, store: StoreSchema, entity_id: ObjectId, *, after: int = 0, limit: int = 0,
                      version: str | None = None, last: bool = False) -> list[Doc]:
        """An entity's changes after number `after`, oldest first (at most `limit`; 0: all), only
        those of one `version` if given; `last`: just its newest change."""
        where: Doc = {"store": store.name, "id": entity_id}
        if after:
            where["seq"] = {"$gt": after}
        if version is not None:
            where["version"] = version
        docs = await self.changes.find(where, None, [("seq", -1 if last else 1)], 0, 1 if last else limit)
        return [d for d in docs if d["op"] != VOID]

    # --- retention -------------------------------------------------------------------------

    async def expire(self, stores: list[StoreSchema]) -> None:
        """Raise each store's floor through filled numbers past retention, then delete below it."""
        for store in stores:
            if not store.history:
                await self._expire_store(store)

    async def _expire_store(self, store: StoreSchema) -> None:
        counter = await self.counters.find_one({"_id": store.name}) or {}
        floor = start = int(counter.get("floor", 0))
        deadline = utcnow() - self.retention
        docs = await self.changes.find({"store": store.name, "seq": {"$gt": floor, "$lte": floor + PAGE}},
                                       {"seq": 1, "at": 1},
                                       [("seq", 1)], 0, PAGE)
        for doc in docs:
            if doc["seq"] != floor + 1:
                await self._close_if_old(store, floor + 1, doc["at"])  # counted on the next tick
                break
            if doc["at"] >= deadline:
                break
            floor = doc["seq"]
        if floor > start:
            await self.counters.update({"_id": store.name}, {"$max": {"floor": floor}}, upsert=True)
            await self.changes.delete({"store": store.name, "seq": {"$lte": floor}})
