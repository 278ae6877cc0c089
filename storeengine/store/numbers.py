"""The numbers of the change feed: a dense sequence per store (feed.py, step 1).

On MongoDB the counter is one document per store in `_change_seqs`, moved by an atomic
`find_one_and_update` + `$inc`. Writers that ask for a number while an increment is on its way
share the next one (`$inc: n` hands out n numbers): under load a write costs a fraction of that
round trip. A group's numbers are allocated after every member asked, so each number still comes
after the read its write builds on, and the counter's `at` (the time of its last allocation)
still bounds the age of every number below it.

On the embedded database, which one process owns, the counter lives in that process's memory. It
starts above every number found in the data (feed.py, G): numbers below that start that are not
filled are holes of a previous run, dead for sure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from storeengine.core.errors import Conflict
from storeengine.core.formats import utcnow
from storeengine.core.types import Doc
from storeengine.model.schema import StoreSchema
from storeengine.storage.api import StorageAPI
from storeengine.store.carried import FIELD, SEQ

CHANGES, COUNTERS = "_changes", "_change_seqs"
# What to do with a number handed to a writer that was cancelled meanwhile (the feed voids it).
Lost = Callable[[StoreSchema, int], Awaitable[object]]


class Numbers:
    def __init__(self, storage: StorageAPI, lost: Lost) -> None:
        self.storage, self.lost = storage, lost
        self.counters = storage.collection(COUNTERS)
        self.changes = storage.collection(CHANGES)
        self._local: dict[str, int] = {}  # embedded: the counters
        self._dead_below: dict[str, int] = {}  # embedded: the top at start-up
        self._waiting: dict[str, list[tuple[asyncio.Future[int], StoreSchema]]] = {}
        self._leaders: dict[str, asyncio.Task[None]] = {}

    async def next(self, store: StoreSchema) -> int:
        """The next number of `store`."""
        if self.storage.embedded:
            if store.name not in self._local:
                await self._start_local(store.name)
            self._local[store.name] += 1
            return self._local[store.name]
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(store.name, []).append((future, store))
        if store.name not in self._leaders:
            self._leaders[store.name] = asyncio.create_task(self._hand_out(store.name))
        return await future

    async def _hand_out(self, name: str) -> None:
        """Increment once for everyone waiting, hand the numbers out in order; again while some wait."""
        try:
            while group := self._waiting.pop(name, []):
                group = [(future, store) for future, store in group if not future.cancelled()]
                if not group:
                    continue
                try:
                    top = await self._increment(name, len(group))
                except asyncio.CancelledError:
                    for future, _ in group:
                        future.cancel()
                    raise
                except BaseException as exc:  # every waiter gets the failure (the leader carries on)
                    for future, _ in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for index, (future, store) in enumerate(group):
                    seq = top - len(group) + 1 + index
                    if future.cancelled():  # its writer is gone: close the number at once
                        await self.lost(store, seq)
                    else:
                        future.set_result(seq)
        finally:
            del self._leaders[name]

    async def _increment(self, name: str, count: int) -> int:
        for _ in range(3):  # two first upserts of one counter may race on its _id
            with contextlib.suppress(Conflict):
                doc = await self.counters.increment({"_id": name}, {"$inc": {"seq": count}, "$set": {"at": utcnow()}})
                return int(doc["seq"])
        raise Conflict("Could not number the change; try again")

    async def _start_local(self, name: str) -> None:
        """The embedded counter starts above every number in the data (feed.py, G)."""
        counter = await self.counter(name)
        kept = await self.changes.find({"store": name}, {"seq": 1}, [("seq", -1)], 0, 1)
        held = await self.storage.collection(name).find({SEQ: {"$gt": 0}}, {FIELD: 1}, [(SEQ, -1)], 0, 1)
        top = max([int(counter.get("seq", 0)), *(d["seq"] for d in kept), *(d[FIELD]["seq"] for d in held)])
        self._local.setdefault(name, top)
        self._dead_below.setdefault(name, top)

    async def top(self, name: str, counter: Mapping[str, Any]) -> int:
        """The highest number allocated so far (numbers above it are not holes)."""
        if self.storage.embedded:
            if name not in self._local:
                await self._start_local(name)
            return self._local[name]
        return int(counter.get("seq", 0))

    def dead_below(self, name: str) -> int:
        """Embedded: numbers up to this one that are not filled belong to a previous run (0 otherwise)."""
        return self._dead_below.get(name, 0)

    async def counter(self, name: str) -> Doc:
        return await self.counters.find_one({"_id": name}) or {}
