"""API.md 9, "the feed matches the data", by fault injection in-process: for every kind of write,
the process dies at each of its database calls (just before the call is sent, or just after it
was applied; by an exception nothing catches, or by a cancellation), a new process recovers (the
maintenance loop's `settle`), and replaying the store's feed gives exactly the stored entities, each
at its stored `updatedAt`, with no hole left. See the argument in storeengine/store/feed.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from storeengine.core.documents import version
from storeengine.core.errors import Unavailable
from storeengine.core.types import Doc
from storeengine.model.access import SYSTEM
from storeengine.model.schema import Registry, StoreSchema
from storeengine.storage.sqlite import SqliteStorage
from storeengine.store import carried, history
from storeengine.store.feed import Feed
from storeengine.store.service import EntityService

DIARY = {"type": "object", "properties": {"text": {"type": "string"}, "mood": {"type": "integer"}},
         "additionalProperties": False, "x-history": True}
# The recovering process's bound on a hole's age (the dying one keeps the default 10 s): every hole
# the dead writer left is old enough at once, instead of after a sleep.
VOID_AFTER = 0.0


class Died(BaseException):
    """The process ended here: nothing in the engine catches it (like SIGKILL, it is not an Exception)."""


class Crashable:
    """The storage seam over a shared database, for one process whose `die_at`-th database call
    fails: before it is sent (`after` False) or once it was applied (`after` True). `how`: "died"
    (an exception nothing catches) or "cancelled", after which every call of this process fails (a
    dead process sends nothing), or "error" (the call raises 503, as a timeout would, and the
    process goes on: the write did or did not land, and the writer cannot tell)."""

    def __init__(self, real: SqliteStorage, die_at: int | None = None, *, after: bool = False,
                 how: str = "died") -> None:
        self.real, self.embedded, self.database_name = real, real.embedded, real.database_name
        self.die_at, self.after, self.how = die_at, after, how
        self.calls: list[str] = []
        self.dead = False

    def collection(self, name: str) -> Any:
        return CrashableCollection(self, name)

    async def ping(self) -> bool:
        return not self.dead

    async def close(self) -> None:
        return None

    def die(self) -> BaseException:
        if self.how == "error":
            return Unavailable()
        self.dead = True
        return asyncio.CancelledError() if self.how == "cancelled" else Died()


class CrashableCollection:
    def __init__(self, owner: Crashable, name: str) -> None:
        self.owner, self.name = owner, name

    def __getattr__(self, method: str) -> Any:
        real = getattr(self.owner.real.collection(self.name), method)

        async def call(*args: Any, **kwargs: Any) -> Any:
            owner = self.owner
            if owner.dead:
                raise Died()
            index = len(owner.calls)
            owner.calls.append(f"{self.name}.{method}")
            if index == owner.die_at and not owner.after:
                raise owner.die()
            result = await real(*args, **kwargs)
            if index == owner.die_at and owner.after:
                raise owner.die()
            return result

        return call


@dataclass
class World:
    """One database, a store `diary` (with history, so restore can be tried) and a few entities."""

    real: SqliteStorage
    registry: Registry
    store: StoreSchema
    ids: list[ObjectId]
    first_version: str
    written: list[tuple[str, Any, str]]  # (op, _id, version) of every acknowledged write, in order
    deleted_version: str = ""

    def service(self, storage: Any, void_after: float = 10.0) -> EntityService:
        async def hasher(value: str) -> str:
            return f"hashed:{value}"

        feed = Feed(storage, retention_seconds=3600, void_after_seconds=void_after)
        return EntityService(self.registry, storage, hasher, feed=feed)


async def make_world(tmp_path: Path, embedded: bool) -> World:
    folder = tmp_path / "schemas"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "diary.json").write_text(json.dumps(DIARY))
    registry = Registry(folder)
    registry.rescan()
    # A database of its own per world (in memory: a world per fault point); `embedded` False numbers
    # with the database's counter, as processes sharing MongoDB or a data folder do.
    real = SqliteStorage(":memory:", name=f"crash-{ObjectId()}", embedded=embedded)
    store = registry.get("diary")
    service = World(real, registry, store, [], "", []).service(real)
    await service.ensure_indexes(store)
    await service.feed.ensure_indexes()
    created = [await service.create(SYSTEM, store, {"text": f"entry {n}", "mood": n}) for n in range(3)]
    patched = await service.patch(SYSTEM, store, created[0]["_id"], {"text": "edited"})
    await service.delete(SYSTEM, store, created[2]["_id"])  # a deleted entity, for the restore that re-creates it
    written = [*(("create", c["_id"], version(c)) for c in created), ("update", patched["_id"], version(patched)),
               ("delete", created[2]["_id"], version(created[2]))]
    return World(real, registry, store, [c["_id"] for c in created], version(created[0]), written)


Write = Callable[[EntityService, World], Awaitable[Any]]
WRITES: dict[str, Write] = {
    "create": lambda s, w: s.create(SYSTEM, w.store, {"text": "new", "mood": 7}),
    "patch": lambda s, w: s.patch(SYSTEM, w.store, w.ids[0], {"mood": None, "text": "patched"}),
    "put": lambda s, w: s.put(SYSTEM, w.store, w.ids[1], {"text": "replaced"}),
    "acl": lambda s, w: s.set_acl(SYSTEM, w.store, w.ids[1], {"access": [str(ObjectId())]}),
    "delete": lambda s, w: s.delete(SYSTEM, w.store, w.ids[0]),
    "restore": lambda s, w: history.restore(s, SYSTEM, w.store, w.ids[0], {"version": w.first_version}),
    "recreate": lambda s, w: history.restore(s, SYSTEM, w.store, w.ids[2], {"version": w.deleted_version}),
}


async def deleted_version(service: EntityService, world: World) -> str:
    records = await service.feed.history(world.store, world.ids[2])
    return str(records[0]["version"])


async def replay(feed: Feed, store: StoreSchema) -> tuple[dict[Any, Doc], list[tuple[str, Any, str]], int]:
    """The store's feed from its first change: create/update -> the entity, delete -> gone; with
    the (op, _id, version) of each change, and the position reached."""
    state: dict[Any, Doc] = {}
    changes: list[tuple[str, Any, str]] = []
    position, more = 0, True
    while more:
        page = await feed.read(store, position, 2)  # small pages: page edges get crossed too
        for record in page.records:
            changes.append((record["op"], record["id"], record["version"]))
            if record["op"] == "delete":
                state.pop(record["id"], None)
            else:
                state[record["id"]] = record["entity"]
        more = page.more or page.position > position
        position = page.position
    return state, changes, position


async def stored(world: World) -> dict[Any, Doc]:
    docs = await world.real.collection(world.store.name).find({})
    return {d["_id"]: carried.public(world.store, d) for d in docs}


async def recover_and_check(world: World, label: str) -> None:
    """A new process recovers (its maintenance loop's settle, nothing else), then the data must be
    what replaying the feed gives, and the replay must find nothing left to finish."""
    service = world.service(world.real, void_after=VOID_AFTER)
    await service.feed.settle(world.registry.all())
    data = await stored(world)
    state, changes, position = await replay(service.feed, world.store)
    assert state == data, f"{label}: the replay differs from the data"
    assert await stored(world) == data, f"{label}: settle left work for the replay"
    # Every acknowledged write has its change, in order; the write cut off has one at most.
    assert changes[:len(world.written)] == world.written, f"{label}: acknowledged changes missing: {changes}"
    assert len(changes) - len(world.written) in (0, 1), f"{label}: extra changes: {changes}"
    for doc in (await world.real.collection(world.store.name).find({})):
        assert not carried.is_tombstone(doc), f"{label}: a tombstone is left"
    counter = await world.real.collection("_change_seqs").find_one({"_id": world.store.name}) or {}
    top = await service.feed.numbers.top(world.store.name, counter)
    assert position == top, f"{label}: the feed stops at {position}, below its top {top} (a hole is left)"


async def run_write(world: World, name: str, storage: Any) -> None:
    service = world.service(storage)
    if name == "recreate":
        world.deleted_version = await deleted_version(world.service(world.real), world)
    await WRITES[name](service, world)


@pytest.mark.parametrize("embedded", [False, True], ids=["shared-database", "embedded"])
@pytest.mark.parametrize("name", list(WRITES))
async def test_a_write_cut_off_at_any_step_leaves_the_feed_matching_the_data(tmp_path: Path, name: str,
                                                                            embedded: bool) -> None:
    # A dry run counts the steps (database calls) of the write.
    world = await make_world(tmp_path, embedded)
    probe = Crashable(world.real)
    await run_write(world, name, probe)
    await recover_and_check(world, f"{name}, no crash")
    steps = probe.calls
    await world.real.close()
    assert steps, name
    for index, step in enumerate(steps):
        for after in (False, True):
            for how in ("died", "cancelled", "error"):
                world = await make_world(tmp_path, embedded)
                label = (f"{name}: {how} {'after' if after else 'before'} step {index + 1}/{len(steps)} ({step}); "
                         f"steps {steps}")
                dying = Crashable(world.real, index, after=after, how=how)
                with pytest.raises((Died, asyncio.CancelledError, Unavailable)):
                    await run_write(world, name, dying)
                await recover_and_check(world, label)
                await world.real.close()


async def test_a_create_is_a_number_and_an_insert_and_an_update_keeps_the_change_it_replaces(tmp_path: Path) -> None:
    """The round trips of each write on a shared database (feed.py, H): the change costs a create
    no write of its own."""
    steps = {}
    for name in ("create", "patch", "delete"):
        world = await make_world(tmp_path / name, embedded=False)
        probe = Crashable(world.real)
        await run_write(world, name, probe)
        steps[name] = probe.calls
        await world.real.close()
    # (an update's kept record and its number are asked for in parallel: sent in this order)
    assert steps == {
        "create": ["_change_seqs.increment", "diary.insert"],
        "patch": ["diary.find_one", "_changes.insert", "_change_seqs.increment", "diary.update_if"],
        "delete": ["diary.find_one", "_changes.insert", "_change_seqs.increment", "diary.update_if",
                   "_changes.insert", "diary.delete"],
    }
