"""Unit tests of storeengine/service.py: the EntityService over an injected storage (the seam),
without HTTP. The write path is read -> check -> change -> compare-and-swap."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from storeengine.core.errors import Conflict, Forbidden, NotFound, PreconditionFailed, Unavailable
from storeengine.model.access import Principal
from storeengine.model.query import parse_list_query
from storeengine.model.schema import Registry, StoreSchema
from storeengine.storage.sqlite import SqliteStorage
from storeengine.storage.sqlite.collection import SqliteCollection
from storeengine.store.service import MAX_RETRIES, EntityService, Page, Summary
from tests.paths import TEST_SCHEMAS

ADMIN = Principal(ObjectId(), roles=frozenset({"admin"}))
ALICE = Principal(ObjectId())
BOB = Principal(ObjectId())


class Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, Any]]] = []

    def publish(self, store: StoreSchema, op: str, entity: Any) -> None:
        self.published.append((store.name, op, dict(entity)))


class Racing:
    """A collection whose next `races` compare-and-swaps lose: another writer changes the entity
    (through the real collection) just before each of them."""

    def __init__(self, owner: SeamStorage, real: SqliteCollection) -> None:
        self.owner, self.real = owner, real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def update_if(self, query: dict[str, Any], update: dict[str, Any]) -> bool:
        if self.owner.races > 0:
            self.owner.races -= 1
            current = await self.real.find_one({"_id": query["_id"]})
            assert current is not None
            later = current["updatedAt"].replace(microsecond=(current["updatedAt"].microsecond + 1000) % 1_000_000)
            await self.real.update({"_id": query["_id"]}, {"$set": {**self.owner.race_set, "updatedAt": later}})
        return await self.real.update_if(query, update)

    async def find(self, query: dict[str, Any], projection: dict[str, Any] | None = None, *args: Any,
                   **kwargs: Any) -> list[dict[str, Any]]:
        return await self.real.find(query, projection if self.owner.projections else None, *args, **kwargs)


class SeamStorage:
    """The real embedded storage, with a racing or failing collection swapped in where asked."""

    def __init__(self) -> None:
        self.real = SqliteStorage(":memory:", name="unit")
        self.races = 0  # how many compare-and-swaps to lose, from now on
        self.race_set: dict[str, Any] = {"body": "concurrent"}  # what the other writer changes
        self.down = False
        self.projections = True  # False: finds return whole documents (jongodb ignores projections)
        self.embedded, self.database_name = True, "unit"

    def collection(self, name: str) -> Any:
        coll = self.real.collection(name)
        if self.down:
            return Down()
        return Racing(self, coll)

    async def ping(self) -> bool:
        return not self.down

    async def close(self) -> None:
        self.real.shut()


class Down:
    def __getattr__(self, name: str) -> Any:
        async def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise Unavailable()
        return unavailable


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[EntityService, SeamStorage, Events, list[str]]]:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    for name in ("notes", "things"):
        (schemas / f"{name}.json").write_text((TEST_SCHEMAS / f"{name}.json").read_text())
    registry = Registry(schemas)
    registry.rescan()
    storage, events, hashed = SeamStorage(), Events(), []

    async def hasher(value: str) -> str:
        hashed.append(value)
        return f"hashed:{value}"

    yield EntityService(registry, storage, hasher, events), storage, events, hashed
    storage.real.shut()


async def test_a_lost_race_runs_the_change_again_on_the_fresh_entity_and_hashes_once(world):
    service, storage, events, hashed = world
    things = service.registry.get("things")
    created = await service.create(ALICE, things, {"name": "a", "pin": "1234"})
    assert hashed == ["1234"]
    storage.races, storage.race_set = 3, {"name": "concurrent"}
    patched = await service.patch(ALICE, things, created["_id"], {"count": 2, "pin": "5678"})
    assert hashed == ["1234", "5678"]  # hashed once, before the compare-and-swap loop
    stored = await storage.real.collection("things").find_one({"_id": created["_id"]})
    assert stored is not None and stored["pin"] == "hashed:5678" and stored["count"] == 2
    assert "pin" not in patched and patched["count"] == 2 and patched["name"] == "concurrent"
    assert storage.races == 0
    assert [op for _, op, _ in events.published] == ["create", "update"]


async def test_a_lost_race_keeps_the_other_writer_s_change(world):
    service, storage, _, _ = world
    notes = service.registry.get("notes")
    created = await service.create(ALICE, notes, {"title": "t"})
    storage.races = 1
    put = await service.put(ALICE, notes, created["_id"], {"title": "u"})
    assert put["title"] == "u" and "body" not in put  # a PUT replaces the body of the fresh copy
    storage.races = 1
    patched = await service.patch(ALICE, notes, created["_id"], {"pinned": True})
    assert patched["body"] == "concurrent" and patched["pinned"] is True  # a PATCH merges into it


async def test_with_if_match_a_lost_race_is_412_and_endless_races_are_409(world):
    service, storage, _, _ = world
    notes = service.registry.get("notes")
    created = await service.create(ALICE, notes, {"title": "t"})
    storage.races = 1
    with pytest.raises(PreconditionFailed):
        await service.patch(ALICE, notes, created["_id"], {"title": "u"}, ["*"])
    storage.races = MAX_RETRIES
    with pytest.raises(Conflict):
        await service.patch(ALICE, notes, created["_id"], {"title": "u"})
    storage.races = MAX_RETRIES
    with pytest.raises(Conflict):
        await service.set_acl(ALICE, notes, created["_id"], {"access": []})


async def test_a_put_keeps_the_stored_hash_of_a_write_only_field(world):
    service, storage, _, hashed = world
    things = service.registry.get("things")
    created = await service.create(ALICE, things, {"name": "a", "pin": "1234"})
    await service.put(ALICE, things, created["_id"], {"name": "b"})
    stored = await storage.real.collection("things").find_one({"_id": created["_id"]})
    assert stored is not None and stored["pin"] == "hashed:1234" and stored["name"] == "b"
    assert hashed == ["1234"]


async def test_lists_are_typed_pages_and_summaries(world):
    service, _, _, _ = world
    notes = service.registry.get("notes")
    mine = [await service.create(ALICE, notes, {"title": f"t{i}"}) for i in range(3)]
    await service.create(BOB, notes, {"title": "bob's"})
    page = await service.list_entities(ALICE, notes, parse_list_query([("limit", "2")], notes))
    assert isinstance(page, Page) and page.items == mine[:2] and page.cursor is None and page.to_json() == mine[:2]
    summary = await service.list_entities(ALICE, notes, parse_list_query([("meta", "true")], notes))
    assert isinstance(summary, Summary)
    assert summary.to_json() == {"total": 3, "first": mine[0], "last": mine[2]}
    everything = await service.list_entities(ADMIN, notes, parse_list_query([("meta", "true")], notes))
    assert isinstance(everything, Summary) and everything.total == 4


async def test_a_list_leaves_out_what_the_database_returned_despite_the_projection(world):
    service, storage, _, _ = world
    things = service.registry.get("things")
    await service.create(ALICE, things, {"name": "a", "pin": "1234"})
    await service.create(ALICE, things, {"name": "b"})
    storage.projections = False
    await storage.real.collection("things").update({}, {"$set": {"_change": {"seq": 1, "op": "create"}}})
    stored = await storage.real.collection("things").find({})
    assert all("_change" in doc for doc in stored) and any("pin" in doc for doc in stored)
    for who in (ALICE, ADMIN):
        page = await service.list_entities(who, things, parse_list_query([], things))
        assert isinstance(page, Page) and [doc["name"] for doc in page.items] == ["a", "b"]
        assert all("_change" not in doc and "pin" not in doc for doc in page.items), page.items


async def test_access_decisions_come_before_any_write(world):
    service, storage, events, _ = world
    notes = service.registry.get("notes")
    created = await service.create(ALICE, notes, {"title": "t"})
    with pytest.raises(NotFound):  # Bob may not read it: 404, not 403
        await service.patch(BOB, notes, created["_id"], {"title": "x"})
    shared = await service.set_acl(ALICE, notes, created["_id"], {"access": [str(BOB.user_id)]})
    assert shared["access"] == [BOB.user_id]
    with pytest.raises(Forbidden):  # now readable and updatable by Bob, but only the owner changes access
        await service.set_acl(BOB, notes, created["_id"], {"access": []})
    with pytest.raises(Forbidden):
        await service.delete(BOB, notes, created["_id"])
    with pytest.raises(Forbidden):
        await service.set_acl(ALICE, notes, created["_id"], {"owner": str(BOB.user_id)})
    assert await service.patch(BOB, notes, created["_id"], {"title": "by bob"})
    assert await service.delete(ALICE, notes, created["_id"]) == created["_id"]
    assert [op for _, op, _ in events.published] == ["create", "update", "update", "delete"]
    assert await storage.real.collection("notes").count({}) == 0


async def test_a_failing_store_raises_and_publishes_nothing(world):
    service, storage, events, _ = world
    notes = service.registry.get("notes")
    hooked: list[Any] = []

    async def hook(*args: Any) -> None:
        hooked.append(args)

    service.write_hooks.append(hook)
    storage.down = True
    with pytest.raises(Unavailable):
        await service.create(ALICE, notes, {"title": "t"})
    with pytest.raises(Unavailable):
        await service.list_entities(ALICE, notes, parse_list_query([], notes))
    assert events.published == [] and hooked == []


async def test_a_slow_store_delays_but_does_not_break_concurrent_writes(world):
    service, storage, _, _ = world
    notes = service.registry.get("notes")
    created = await service.create(ALICE, notes, {"title": "t"})

    real_collection = storage.collection

    class Slow:
        def __init__(self, real: Any) -> None:
            self.real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        async def find_one(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.01)
            return await self.real.find_one(*args, **kwargs)

    storage.collection = lambda name: Slow(real_collection(name))  # type: ignore[method-assign]
    results = await asyncio.gather(*(service.patch(ALICE, notes, created["_id"], {f"k{i}": i}) for i in range(5)))
    final = await service.get(ALICE, notes, created["_id"])
    assert all(final[f"k{i}"] == i for i in range(5))  # no write lost: every one retried on a fresh copy
    assert len({r["updatedAt"] for r in results}) == 5


def _unique_store(service: EntityService, schemas: Path) -> StoreSchema:
    (schemas / "codes.json").write_text('{"type": "object", "properties": {"a": {"type": "string"}, '
                                        '"b": {"type": "string"}}, "x-acl": {"create": ["authenticated"]}, '
                                        '"x-indexes": [{"fields": {"a": 1}, "unique": true}, '
                                        '{"fields": {"b": 1}, "unique": true}]}')
    service.registry.rescan()
    return service.registry.get("codes")


async def test_a_store_s_first_write_waits_for_its_due_indexes(world, tmp_path):
    """Its upkeep makes a (re)loaded store's indexes within a poll interval; a write that comes
    first makes them itself: a duplicate written before a unique index kept it from being made."""
    service, *_ = world
    store = _unique_store(service, tmp_path / "schemas")
    service.indexes.due(store)
    await service.create(ALICE, store, {"a": "x"})
    with pytest.raises(Conflict):
        await service.create(ALICE, store, {"a": "x"})
    assert service.indexes.pending() == [] and service.registry.status()["codes"]["error"] is None


async def test_an_index_that_cannot_be_made_keeps_none_of_the_others_from_being_made(world, tmp_path):
    service, storage, *_ = world
    store = _unique_store(service, tmp_path / "schemas")
    await storage.real.collection("codes").insert_many([{"_id": ObjectId(), "a": "dup"} for _ in range(2)])
    service.indexes.due(store)
    await service.indexes.ready("codes")
    error = service.registry.status()["codes"]["error"]
    assert error is not None and error.startswith("cannot create indexes: "), error
    await service.create(ALICE, store, {"a": "dup", "b": "y"})  # a's index is not there
    with pytest.raises(Conflict):
        await service.create(ALICE, store, {"b": "y"})  # b's is
