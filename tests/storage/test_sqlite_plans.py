"""The embedded database answers the engine's own queries from indexes, never by a scan of the
collection: SQLite's query plans (EXPLAIN QUERY PLAN) for a GET by id, a read of a few ids (an
expansion, a reference check), a feed page, an access rule, a list sorted by `createdAt`, and a
field that holds arrays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from bson import ObjectId

from storeengine.core.formats import utcnow
from storeengine.storage.sqlite import SqliteStorage
from storeengine.storage.sqlite.collection import SqliteCollection
from storeengine.store.indexes import ENGINE_INDEXES

OWNER = ObjectId()


@pytest.fixture
async def items(tmp_path: Path) -> AsyncIterator[SqliteCollection]:
    storage = SqliteStorage(str(tmp_path / "plans.db"), name="plans")
    coll = storage.collection("items")
    for keys in ENGINE_INDEXES:
        await coll.ensure_index(keys)
    now = utcnow()
    await coll.insert_many([{"_id": ObjectId(), "n": n, "owner": OWNER if n % 10 == 0 else ObjectId(),
                             "group": None, "access": [], "branch": [], "createdAt": now + timedelta(seconds=n)}
                            for n in range(2000)])
    yield coll
    storage.shut()


def scans(plan: list[str]) -> bool:
    return any(line.startswith("SCAN") and "json_each" not in line and "VIRTUAL" not in line for line in plan)


async def test_a_get_by_id_is_one_primary_key_search(items: SqliteCollection) -> None:
    plan = await items.explain({"$and": [{"_id": ObjectId()}, {"owner": OWNER}]})
    assert any("SEARCH" in line and "(id=?)" in line for line in plan) and not scans(plan), plan


@pytest.mark.parametrize("count", [2, 30, 100])
async def test_a_read_of_a_few_ids_with_an_access_rule_searches_the_primary_key(items: SqliteCollection,
                                                                                count: int) -> None:
    """An expansion or a reference check: `_id` in a page's ids AND the caller's read filter. SQLite
    (no statistics) would rather walk the `owner` and `access` indexes from ~20 ids on: every entity
    the caller owns, however many, to find a hundred."""
    owned = [doc["_id"] for doc in await items.find({"owner": OWNER}, {"_id": 1}, [("_id", 1)])]
    query = {"_id": {"$in": owned[:count]}, "$or": [{"owner": OWNER}, {"access": {"$in": [OWNER]}}]}
    plan = await items.explain(query)
    assert plan[0].startswith("SEARCH") and "(id=?)" in plan[0] and not scans(plan), plan
    assert len(await items.find(query)) == count
    rows, _, _ = await items.find_answer(query, None, 0, count, ["_id"])
    assert len(rows) == count


async def test_an_owner_rule_is_an_index_search(items: SqliteCollection) -> None:
    plan = await items.explain({"owner": OWNER}, [("_id", 1)])
    assert not scans(plan), plan
    assert len(await items.find({"owner": OWNER})) == 200


async def test_a_list_by_created_at_walks_its_index_without_sorting(items: SqliteCollection) -> None:
    plan = await items.explain({"createdAt": {"$gte": utcnow()}}, [("createdAt", -1)])
    assert not scans(plan) and not any("TEMP B-TREE" in line for line in plan), plan


async def test_a_feed_page_is_one_range_of_the_store_seq_index(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "feed.db"), name="feed")
    try:
        changes = storage.collection("_changes")
        await changes.ensure_index((("store", 1), ("seq", 1)))
        await changes.insert_many([{"_id": f"s:{n}", "store": "s", "seq": n, "op": "create"} for n in range(1, 500)])
        plan = await changes.explain({"store": "s", "seq": {"$gt": 10, "$lte": 20}}, [("seq", 1)])
        assert not scans(plan) and not any("TEMP B-TREE" in line for line in plan), plan
        found = await changes.find({"store": "s", "seq": {"$gt": 10, "$lte": 20}}, {"seq": 1}, [("seq", 1)])
        assert [d["seq"] for d in found] == list(range(11, 21))
    finally:
        storage.shut()


async def test_a_field_that_holds_arrays_is_matched_through_its_index_and_its_array_index(
        items: SqliteCollection) -> None:
    """`access` holds arrays: a member is found through the partial index of the documents whose
    `access` is an array (SQLite has no multikey index: those documents are then all examined)."""
    await items.insert({"_id": 1, "access": [OWNER], "owner": None})
    plan = await items.explain({"access": OWNER})
    assert "MULTI-INDEX OR" in plan, plan
    assert [d["_id"] for d in await items.find({"access": OWNER})] == [1]


async def test_a_non_admin_s_list_is_served_by_indexes(items: SqliteCollection) -> None:
    """The default read rules (owner, group, access, branch) of a user who owns a tenth of the
    store and is listed in one entity's `access`: the owner and group indexes, and the partial
    indexes of non-empty `access` / `branch` lists; never a walk of the whole store."""
    from storeengine.model import access as acl
    from storeengine.model.schema import DEFAULT_ACL

    group = ObjectId()
    shared = {"_id": 2, "access": [OWNER], "branch": [], "owner": ObjectId(), "group": None}
    await items.insert(shared)
    where = acl.restrict({}, acl.Principal(OWNER, (group,)), DEFAULT_ACL["read"])
    plan = await items.explain(where, [("_id", 1)])
    assert "MULTI-INDEX OR" in plan and not scans(plan), plan
    found = await items.find(where, {"_id": 1}, [("_id", 1)])
    assert len(found) == 201 and found[0]["_id"] == 2
