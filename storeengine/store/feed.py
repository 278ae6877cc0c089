"""The change feed: every write appends one change to its store's feed, kept in the database.

Why a reader never skips a change (the first argument; steps 1, 2 and 4 still hold):

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

What that argument missed: a process that dies between its entity write and its change insert
leaves the entity changed and its change missing for ever (the hole becomes a void). Why the
feed matches the data after a crash at any moment (the argument now; it replaces the insert
after the write, and keeps 1, 2 and 4):

A. The change travels with the entity. A write takes its number N (1), then writes the entity
   *carrying* its change: `_change: {seq, op, at, by, before}` goes into the entity's own
   document in the same write (MongoDB is atomic per document, and so is every backend of the
   seam). The entity write is the commit of its change: before it N is a hole, after it N is
   filled (the entity carries it). There is no third state, wherever a crash falls; the record
   of the change is a pure function of the document (carried.py), so anyone holding the
   document can write it.
B. The feed is read from two places: `_changes` (records kept there) and the store's own
   collection (the entities carrying a number, by the `_change.seq` index). A number is filled
   when either holds it. Readers still stop at the first hole (2), and read `_changes` first,
   then the entities: a change that moves from the entity to `_changes` between the two reads
   (C) looks like a hole (the reader stops and reads again later), never like a skip.
C. A change is kept before it is overwritten. A write that replaces an entity first inserts the
   record of the change the entity carries into `_changes` (derived from the copy it read,
   which is what the entity holds, since every write is a compare-and-swap on `updatedAt` and
   `_change.seq`), then swaps. So a number never leaves its entity before it is in `_changes`:
   once filled, filled for good. (That insert runs in parallel with taking the number.)
D. A delete leaves no entity to carry its change, so it is a tombstone first: the
   compare-and-swap sets `_change` to the delete (body unchanged), then the delete's record goes
   into `_changes`, then that tombstone is removed (`_id` and `_change.seq` both match). The order
   matters: removing before the record would leave nothing to complete from. A tombstone is a
   write not yet finished: readers treat its number as a hole and finish it themselves (record,
   removal), and so does a writer that reads it (then answers 404). The compare-and-swap decided
   the delete, so finishing it is the writer's own outcome, whoever does it.
E. Holes. A hole is a write between its number and its entity write (A). The writer voids its
   own number when the write surely did not happen (a lost compare-and-swap, a duplicate key, a
   value refused before sending). After any other failure (crash, timeout, cancellation) it may
   have landed, so the writer leaves the hole: a reader finds the entity if it landed (B), or
   voids the number once it is older than `void_after`, as in 3.
F. A void never hides a write that lands after it. The writer does not send its entity write
   once half of `void_after` has passed since its number (it voids it and takes another), and a
   write that comes back after that point looks whether its number was voided; if so it
   renumbers the entity (a new number; compare-and-swap on the old one) before answering. For a
   write that lands after its writer died, a reader that voids a number notes it in
   `_change_rechecks` first, and the maintenance loop looks for an entity carrying that number for
   `recheck_seconds` (10 minutes) and renumbers it; so does anyone who meets a number that is both
   void and carried. The new number is above every reader's position, so the change is seen,
   later, as in 3.
G. Recovery. Nothing the feed needs is kept in a process's memory. After a crash what remains is
   holes (voided after `void_after`; at once on the embedded database, which one process owns:
   every hole below its top at start-up is dead) and tombstones (finished by whoever meets them).
   The maintenance loop walks every store to its top every `settle_seconds`, so within 15 s of a
   restart replaying the feed gives exactly the stored entities. It also records how far every
   number is filled (`settled` on the counter), so a process starts its walks there.
H. Cost. A create is a number and an insert: its change costs no write of its own (the old
   design: a number, the insert and the change). An update adds the kept record of the change it
   replaces, in parallel with its number. A delete is the number (with the kept record), the
   tombstone, its record and the removal. Writers asking for a number while an increment is on
   its way share the next one (numbers.py), so under load a number costs a fraction of a round trip.

The age of a hole is read from the database, not from one process's memory: the number was
allocated before the change just above it was written (`at`), or, at the top, before the
counter's last allocation (`at` on the counter).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from storeengine.core.errors import BadRequest, Conflict, Gone, StoreError
from storeengine.core.formats import utcnow
from storeengine.core.scope import database_scope
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.matcher import matches
from storeengine.model.schema import StoreSchema
from storeengine.storage.api import CollectionAPI, StorageAPI
from storeengine.store import carried
from storeengine.store.carried import FIELD, SEQ, TOMBSTONE, VOID, access_of, key
from storeengine.store.numbers import CHANGES, Numbers

__all__ = ["PAGE", "Feed", "Page", "access_of", "cursor", "parse_cursor", "view"]

log = logging.getLogger(__name__)

RECHECKS = "_change_rechecks"
PAGE = 1000
_BRIEF = {"seq": 1, "at": 1, "op": 1}
_CARRIED_BRIEF = {FIELD: 1}
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
    records: list[Doc]  # changes (voids left out; brief pages keep them) in seq order
    position: int  # the number up to which every change has been examined
    more: bool  # the feed holds further filled numbers after `position`


class Feed:
    """The feed of every store: numbers, reading (B), finishing what writes left (C, D, F),
    recovery (G) and retention (4). Writes go through `writes.Writes`."""

    def __init__(self, storage: StorageAPI, *, retention_seconds: float, enabled: bool = True,
                 void_after_seconds: float = 10.0, recheck_seconds: float = 600.0) -> None:
        self.storage = storage
        self.numbers = Numbers(storage, lambda store, seq: self.void(store, seq, sure=True))
        self.changes = storage.collection(CHANGES)
        self.counters = self.numbers.counters
        self.rechecks = storage.collection(RECHECKS)
        self.retention = timedelta(seconds=retention_seconds)
        self.void_after = timedelta(seconds=void_after_seconds)
        self.recheck_window = timedelta(seconds=recheck_seconds)
        # How often the maintenance loop walks every store (G): holes are voided `void_after` after
        # their number, so a replay matches the data within void_after + settle_seconds (< 15 s).
        self.settle_seconds = min(2.0, void_after_seconds / 5)
        self.enabled = enabled
        self.listeners: list[Listener] = []
        self._known: dict[str, int] = {}  # a filled prefix seen by this process, per store
        self._settled: dict[str, int] = {}  # the `settled` this process wrote, per store
        self._watermarks: dict[str, asyncio.Task[int]] = {}  # per store: the read lists arriving now share

    @property
    def send_deadline(self) -> float:
        """Seconds after its number past which a writer no longer sends its entity write (F)."""
        return self.void_after.total_seconds() / 2

    async def ensure_indexes(self) -> None:
        await self.changes.ensure_index((("store", 1), ("seq", 1)))
        await self.changes.ensure_index((("store", 1), ("id", 1), ("seq", 1)))
        # A backstop for when no server runs: the maintenance sweep removes expired changes
        # (below the floor) long before the database's TTL monitor would.
        await self.changes.ensure_index((("expireAt", 1),), expire_after=24 * 3600)

    def entities(self, store: StoreSchema) -> CollectionAPI:
        return self.storage.collection(store.name)

    def retention_of(self, store: StoreSchema) -> timedelta | None:
        return None if store.history else self.retention

    def tell(self, store: StoreSchema, record: Doc) -> None:
        for listener in self.listeners:
            listener(store.name, record)

    # --- finishing what a write left (C, D, F) -----------------------------------------------

    async def materialize(self, store: StoreSchema, doc: Doc) -> Doc | None:
        """The record of the change `doc` carries, into `_changes` (a duplicate: it is there
        already). None if that number was voided (the write landed late): the entity is
        renumbered instead (F)."""
        record = carried.record(store, doc, self.retention_of(store))
        try:
            await self.changes.insert(record)
            return record
        except Conflict:
            pass
        found = await self.changes.find_one({"_id": record["_id"]}, {"op": 1})
        if found is None or found["op"] != VOID:
            return record
        await self.renumber(store, doc)
        return None

    async def renumber(self, store: StoreSchema, doc: Doc) -> Doc | None:
        """F: the change `doc` carries under a new number (compare-and-swap on the old one). None if
        the entity no longer carries the old number (renumbered or replaced by someone else)."""
        seq = await self.numbers.next(store)
        moved = carried.renumbered(doc, seq)
        if await self.entities(store).update_if({"_id": doc["_id"], SEQ: doc[FIELD]["seq"]},
                                                {"$set": {FIELD: moved[FIELD]}}):
            log.warning("change %s of %s landed after its number was voided: renumbered %s",
                        doc[FIELD]["seq"], store.name, seq)
            if not carried.is_tombstone(moved):
                self.tell(store, carried.record(store, moved, self.retention_of(store)))
            return moved
        await self.void(store, seq, sure=True)
        return None

    async def finish_delete(self, store: StoreSchema, tombstone: Doc) -> None:
        """D: a tombstone's record into `_changes`, then the removal of that tombstone."""
        while (record := await self.materialize(store, tombstone)) is None:  # renumbered: finish it so
            found = await self.entities(store).find_one({"_id": tombstone["_id"]}, _hide(store))
            if found is None or not carried.is_tombstone(found):
                return
            tombstone = found
        await self.entities(store).delete({"_id": tombstone["_id"], SEQ: record["seq"]})
        self.tell(store, record)

    async def void(self, store: StoreSchema, seq: int, *, sure: bool) -> bool:
        """Close a number with a void; False if something filled it first. A reader's void (`sure`
        False: the write may still land) is noted in `_change_rechecks` first (F)."""
        now = utcnow()
        doc: Doc = {"_id": key(store.name, seq), "store": store.name, "seq": seq, "op": VOID, "at": now}
        if not store.history:
            doc["expireAt"] = now + self.retention
        try:
            if not sure:
                with contextlib.suppress(Conflict):
                    await self.rechecks.insert({"_id": doc["_id"], "store": store.name, "seq": seq, "at": now})
            await self.changes.insert(doc)
        except Conflict:
            return False
        except StoreError:  # database gone: readers close it once it is old enough
            log.warning("could not close change %s of %s", seq, store.name)
            return False
        return True

    # --- reading (B) ------------------------------------------------------------------------

    async def read(self, store: StoreSchema, since: int | None, limit: int = PAGE, *, brief: bool = False) -> Page:
        """Up to `limit` numbers after `since` (None: the oldest retained), stopping before the
        first number that is not filled yet. 410 if changes after `since` have expired.
        `brief`: only numbers, times and ops (for positions), voids included."""
        position = await self.floor(store.name) if since is None else since
        records: list[Doc] = []
        left = limit
        while True:
            # Numbers are dense, so a bounded range holds the page: `_changes` first, then the
            # entities (B), then the counter (a deletion the page met had raised the floor before it).
            span = {"$gt": position, "$lte": position + left + 1}
            kept = {d["seq"]: d for d in await self.changes.find({"store": store.name, "seq": span},
                                                                  _BRIEF if brief else None, [("seq", 1)])}
            held = {d[FIELD]["seq"]: d for d in await self.entities(store).find(
                {SEQ: span}, _CARRIED_BRIEF if brief else _hide(store), [(SEQ, 1)])}
            counter = await self.numbers.counter(store.name)
            if since is not None and since > max(await self.numbers.top(store.name, counter),
                                                 int(counter.get("floor", 0))):
                # Never a silent wait (API.md 10), and never a position this process remembers.
                raise BadRequest("since: a cursor beyond the store's newest change")
            if position < counter.get("floor", 0):
                raise Gone("The cursor is older than the retained changes")
            seq = position + 1
            while (filled := _filled(kept.get(seq), held.get(seq))) is not None:
                if left == 0:
                    return self._page(store, records, position, True)
                record = filled if filled is not held.get(seq) else (
                    carried.brief(filled) if brief else carried.record(store, filled, self.retention_of(store)))
                if brief or record["op"] != VOID:
                    records.append(record)
                position, left, seq = seq, left - 1, seq + 1
            if not await self._unblock(store, seq, kept, held, counter):
                return self._page(store, records, position, False)

    async def _unblock(self, store: StoreSchema, seq: int, kept: dict[int, Doc], held: dict[int, Doc],
                       counter: Mapping[str, Any]) -> bool:
        """`seq` is not plainly filled: finish a tombstone, renumber a late change, or void an old
        hole. True if the reader should read again from there."""
        found = held.get(seq)
        if found is not None:
            full = await self.entities(store).find_one({"_id": found["_id"], SEQ: seq}, _hide(store))
            if full is not None and carried.is_tombstone(full):
                await self.finish_delete(store, full)  # D
            elif full is not None:
                await self.renumber(store, full)  # void and carried: landed late (F)
            return True
        if seq > await self.numbers.top(store.name, counter):
            return False  # nothing allocated there yet
        if seq <= self.numbers.dead_below(store.name):  # the embedded database's previous run (G)
            await self.void(store, seq, sure=True)
            return True
        above = [d for s, d in sorted((kept | held).items()) if s > seq]
        allocated_before = (above[0][FIELD]["at"] if FIELD in above[0] else above[0]["at"]) if above else \
            counter.get("at")  # the number was allocated before the next one was written, or the last allocation
        return await self._close_if_old(store, seq, allocated_before)

    def _page(self, store: StoreSchema, records: list[Doc], position: int, more: bool) -> Page:
        self._known[store.name] = max(self._known.get(store.name, 0), position)
        return Page(records, position, more)

    async def _close_if_old(self, store: StoreSchema, seq: int, allocated_before: datetime | None) -> bool:
        """A number allocated before `allocated_before`, missing for longer than the bound, is
        closed as void (or a late change fills it meanwhile). True if it is filled now."""
        if allocated_before is None or utcnow() - allocated_before < self.void_after:
            return False
        await self.void(store, seq, sure=False)
        return True

    async def floor(self, store: str) -> int:
        return int((await self.numbers.counter(store)).get("floor", 0))

    async def watermark(self, store: StoreSchema) -> int:
        """A number up to which every change is in the feed: resuming from it after reading a
        list misses nothing written after the list was read."""
        counter = await self.numbers.counter(store.name)
        position = max(self._known.get(store.name, 0), int(counter.get("settled", 0)), int(counter.get("floor", 0)))
        if position >= await self.numbers.top(store.name, counter):
            return self._page(store, [], position, False).position  # nothing newer: no read
        while True:
            try:
                page = await self.read(store, position, PAGE, brief=True)
            except Gone:  # below the floor (expired meanwhile): start from the floor
                position = await self.floor(store.name)
                continue
            position = page.position
            if not page.more:
                return position

    async def list_cursor(self, store: StoreSchema) -> str | None:
        """X-Change-Cursor for a list answer (read before the list it goes with); None without a feed."""
        return cursor(store.name, await self._shared_watermark(store)) if self.enabled else None

    async def _shared_watermark(self, store: StoreSchema) -> int:
        """The watermark, one read for every list that arrives while it is on its way (32 lists of
        1,000 in flight made 32 counter reads). It began before they arrived, so it was read before
        each of their lists: resuming from it still misses nothing (API.md 10: a change a list
        already shows may come again)."""
        pending = self._watermarks.get(store.name)
        if pending is None:
            pending = asyncio.ensure_future(self.watermark(store))
            self._watermarks[store.name] = pending
            pending.add_done_callback(functools.partial(self._watermark_done, store.name))
        return await asyncio.shield(pending)  # a cancelled list leaves the read to the others

    def _watermark_done(self, name: str, task: asyncio.Task[int]) -> None:
        if self._watermarks.get(name) is task:
            del self._watermarks[name]
        if not task.cancelled():
            task.exception()  # retrieved here too: every list waiting on it may have been cancelled

    async def history(self, store: StoreSchema, entity_id: ObjectId, *, after: int = 0, limit: int = 0,
                      version: str | None = None, last: bool = False) -> list[Doc]:
        """An entity's changes after number `after`, oldest first (at most `limit`; 0: all), only
        those of one `version` if given; `last`: just its newest change. They are the kept records
        and the change the entity carries (B)."""
        current = await self.entities(store).find_one({"_id": entity_id}, _hide(store))
        if current is not None and carried.is_tombstone(current):
            await self.finish_delete(store, current)  # D: its record is kept, the entity gone
            current = None
        where: Doc = {"store": store.name, "id": entity_id}
        if after:
            where["seq"] = {"$gt": after}
        if version is not None:
            where["version"] = version
        docs = await self.changes.find(where, None, [("seq", -1 if last else 1)], 0, 1 if last else limit)
        records = {d["seq"]: d for d in docs if d["op"] != VOID}
        seq = None if current is None else carried.seq_of(current)
        if current is not None and seq is not None and seq > after and seq not in records:
            carrying = carried.record(store, current, self.retention_of(store))
            if version is None or carrying["version"] == version:
                records[seq] = carrying
        ordered = [records[n] for n in sorted(records, reverse=last)]
        return ordered[:1] if last else ordered[:limit] if limit else ordered

    # --- upkeep: recovery (G) and retention (4) ----------------------------------------------

    async def settle(self, stores: list[StoreSchema]) -> None:
        """Walk every store to its top (finishing tombstones, voiding old holes on the way), note
        how far every number is filled, and look again at recent voids (F)."""
        for store in stores:
            position = await self.watermark(store)
            if position > self._settled.get(store.name, 0):
                # Only ever raised; only on a counter that exists (the embedded one may not).
                await self.counters.update({"_id": store.name, "$or": [{"settled": {"$lt": position}},
                                                                       {"settled": {"$exists": False}}]},
                                           {"$set": {"settled": position}})
                self._settled[store.name] = position
        await self._recheck(stores)

    async def _recheck(self, stores: list[StoreSchema]) -> None:
        """F: an entity that carries a number a reader voided (its write landed late, its writer
        died) is renumbered; a note is dropped once the number is a change or past the window."""
        by_name = {s.name: s for s in stores}
        for note in await self.rechecks.find({}):
            store = by_name.get(note["store"])
            if store is None:
                continue
            found = await self.changes.find_one({"_id": note["_id"]}, {"op": 1})
            late = await self.entities(store).find_one({SEQ: note["seq"]}, _hide(store))
            if late is not None and found is not None and found["op"] == VOID:
                await self.renumber(store, late)
            elif (found is not None and found["op"] != VOID) or utcnow() - note["at"] > self.recheck_window:
                await self.rechecks.delete({"_id": note["_id"]})

    async def expire(self, stores: list[StoreSchema]) -> None:
        """Raise each store's floor through filled numbers past retention, then delete below it."""
        for store in stores:
            if not store.history:
                await self._expire_store(store)

    async def _expire_store(self, store: StoreSchema) -> None:
        floor = start = await self.floor(store.name)
        deadline = utcnow() - self.retention
        try:
            # The oldest number first: while it is within retention the page below would stop at it
            # anyway, and reading the page (up to PAGE entities, every few seconds, in every process)
            # cost a list of 1,000's worth of database work each time.
            oldest = await self.read(store, floor, 1, brief=True)  # closes an old hole there on the way
            if not oldest.records or oldest.records[0]["at"] >= deadline:
                return
            page = await self.read(store, floor, PAGE, brief=True)  # closes old holes on the way
        except Gone:  # another process raised the floor meanwhile
            return
        for record in page.records:
            if record["at"] >= deadline:
                break
            floor = record["seq"]
        if floor > start:
            await self.counters.update({"_id": store.name}, {"$max": {"floor": floor}}, upsert=True)
            await self.changes.delete({"store": store.name, "seq": {"$lte": floor}})


def _filled(kept: Doc | None, held: Doc | None) -> Doc | None:
    """What fills a number plainly (a kept record or void, else a carried change), or None when it
    is a hole, a tombstone, or both void and carried (a late landing)."""
    if held is not None and (held[FIELD]["op"] == TOMBSTONE or (kept is not None and kept["op"] == VOID)):
        return None
    return kept if kept is not None else held


def _hide(store: StoreSchema) -> dict[str, int] | None:
    return {f: 0 for f in store.hidden} if store.hidden else None
