"""One conformance suite for the storage seam (the idea of Kinto's `storage/testing.py`).

`StorageConformance` holds tests of every seam operation and of the query, update, projection
and sort semantics the engine relies on, with MongoDB's answers as the expectations. A test
module runs it against a backend by subclassing it and providing a `storage` fixture (a fresh,
empty StorageAPI): tests/storage/test_sqlite.py (the embedded database) and
tests/wire/test_storage_wire.py (MongoDB's wire protocol). A backend known to differ from
MongoDB on a query case lists it in `query_quirks` (case name -> how it differs): the case must
then differ there (so a fixed backend is noticed); whole tests it fails are marked where it runs.

`matches(query, doc)` answers whether one document matches a query, with the embedded
database's compiler (unit tests use it as a MongoDB matcher).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from bson import ObjectId

from storeengine.core.errors import BadRequest, Conflict, StoreError
from storeengine.storage.api import CollectionAPI, StorageAPI
from storeengine.storage.sqlite import codec, functions, schema
from storeengine.storage.sqlite.compiler import compile_where

Doc = dict[str, Any]
T0 = datetime(2024, 5, 6, 7, 8, 9, 123000)
OIDS = [ObjectId(f"{n:024x}") for n in range(1, 6)]


def matches(query: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """Does `doc` match `query`? (The embedded database's semantics, i.e. MongoDB's.)"""
    conn = sqlite3.connect(":memory:")
    try:
        functions.register(conn)
        schema.create_table(conn, "m")
        seen = codec.Shapes()
        doc = {"_id": doc.get("_id", 0), **doc}
        conn.execute(f"INSERT INTO {schema.table('m')} (id, doc) VALUES (?, ?)",
                     (codec.encode_value(doc["_id"]), codec.encode(doc, seen)))
        where, params = compile_where(query, seen.may_be_array)
        return bool(conn.execute(f"SELECT count(*) FROM {schema.table('m')} WHERE {where}", params).fetchone()[0])
    finally:
        conn.close()


@contextlib.contextmanager
def raises(kind: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except kind:
        return
    raise AssertionError(f"{kind.__name__} not raised")


async def ids(coll: CollectionAPI, query: Mapping[str, Any], sort: list[tuple[str, int]] | None = None) -> list[Any]:
    return [d["_id"] for d in await coll.find(query, {"_id": 1}, sort or [("_id", 1)])]


# MongoDB's own null/missing/array cases (jstests/core/null_query_semantics.js), plus type classes.
DOCS: list[Doc] = [
    {"_id": "a_empty_subobject", "a": {}},
    {"_id": "a_null", "a": None},
    {"_id": "a_number", "a": 4},
    {"_id": "a_subobject_b_not_null", "a": {"b": "hi"}},
    {"_id": "a_subobject_b_null", "a": {"b": None}},
    {"_id": "no_a"},
    {"_id": "a_double_array", "a": [[]]},
    {"_id": "a_empty_array", "a": []},
    {"_id": "a_object_array_no_b_nulls", "a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
    {"_id": "a_object_array_some_b_nulls", "a": [{"b": None}, {"b": 3}, {"b": None}]},
    {"_id": "a_object_array_some_b_missing", "a": [{"b": 3}, {}]},
    {"_id": "a_value_array_all_nulls", "a": [None, None]},
    {"_id": "a_value_array_no_nulls", "a": [1, "string", 4]},
    {"_id": "a_value_array_with_null", "a": [1, "string", None, 4]},
    {"_id": "a_string", "a": "5"},
    {"_id": "a_true", "a": True},
    {"_id": "a_false", "a": False},
    {"_id": "a_float", "a": 4.5},
    {"_id": "a_date", "a": T0},
    {"_id": "a_oid", "a": OIDS[0]},
]
A_ARRAYS = [d["_id"] for d in DOCS if isinstance(d.get("a"), list)]
NOT_ARRAYS = [d["_id"] for d in DOCS if not isinstance(d.get("a"), list)]

# (query, the _ids MongoDB returns); names are sorted, as `ids` sorts by _id.
QUERIES: list[tuple[str, Doc, list[str]]] = [
    ("eq_null", {"a": None}, ["a_null", "a_value_array_all_nulls", "a_value_array_with_null", "no_a"]),
    ("ne_null", {"a": {"$ne": None}},
     sorted(set(d["_id"] for d in DOCS) - {"a_null", "a_value_array_all_nulls", "a_value_array_with_null", "no_a"})),
    ("in_null", {"a": {"$in": [None, 4]}},
     ["a_null", "a_number", "a_value_array_all_nulls", "a_value_array_no_nulls", "a_value_array_with_null", "no_a"]),
    ("exists_false", {"a": {"$exists": False}}, ["no_a"]),
    ("dotted_eq_null", {"a.b": None},
     ["a_date", "a_empty_subobject", "a_false", "a_float", "a_null", "a_number", "a_object_array_some_b_missing",
      "a_object_array_some_b_nulls", "a_oid", "a_string", "a_subobject_b_null", "a_true", "no_a"]),
    ("dotted_ne_null", {"a.b": {"$ne": None}},
     ["a_double_array", "a_empty_array", "a_object_array_no_b_nulls", "a_subobject_b_not_null",
      "a_value_array_all_nulls", "a_value_array_no_nulls", "a_value_array_with_null"]),
    ("dotted_exists", {"a.b": {"$exists": True}},
     ["a_object_array_no_b_nulls", "a_object_array_some_b_missing", "a_object_array_some_b_nulls",
      "a_subobject_b_not_null", "a_subobject_b_null"]),
    ("dotted_value", {"a.b": 3},
     ["a_object_array_no_b_nulls", "a_object_array_some_b_missing", "a_object_array_some_b_nulls"]),
    ("gt_number_is_type_bracketed", {"a": {"$gt": 3}},
     ["a_float", "a_number", "a_value_array_no_nulls", "a_value_array_with_null"]),
    ("lt_string_is_type_bracketed", {"a": {"$lt": "z"}},
     ["a_string", "a_value_array_no_nulls", "a_value_array_with_null"]),
    ("gte_null_is_eq_null", {"a": {"$gte": None}}, ["a_null", "a_value_array_all_nulls", "a_value_array_with_null",
                                                     "no_a"]),
    ("gt_null_is_nothing", {"a": {"$gt": None}}, []),
    ("gt_false_is_booleans_only", {"a": {"$gt": False}}, ["a_true"]),
    ("lte_date", {"a": {"$lte": T0}}, ["a_date"]),
    ("gt_objectid", {"a": {"$gte": OIDS[0]}}, ["a_oid"]),
    ("number_equals_across_int_and_float", {"a": 4.0}, ["a_number", "a_value_array_no_nulls",
                                                         "a_value_array_with_null"]),
    ("bool_is_not_a_number", {"a": 1}, ["a_value_array_no_nulls", "a_value_array_with_null"]),
    ("true_is_not_one", {"a": True}, ["a_true"]),
    ("scalar_matches_an_element", {"a": "string"}, ["a_value_array_no_nulls", "a_value_array_with_null"]),
    ("whole_array_equality", {"a": [1, "string", 4]}, ["a_value_array_no_nulls"]),
    ("empty_array_equality", {"a": []}, ["a_double_array", "a_empty_array"]),
    ("object_equality", {"a": {"b": None}}, ["a_object_array_some_b_nulls", "a_subobject_b_null"]),
    ("size", {"a": {"$size": 3}}, ["a_object_array_no_b_nulls", "a_object_array_some_b_nulls",
                                    "a_value_array_no_nulls"]),
    ("size_zero", {"a": {"$size": 0}}, ["a_empty_array"]),
    ("all", {"a": {"$all": [1, 4]}}, ["a_value_array_no_nulls", "a_value_array_with_null"]),
    ("all_empty_matches_nothing", {"a": {"$all": []}}, []),
    ("in_empty_matches_nothing", {"a": {"$in": []}}, []),
    ("nin", {"a": {"$nin": [None, 4, "5"]}},
     sorted(set(d["_id"] for d in DOCS) - {"a_null", "a_value_array_all_nulls", "a_value_array_with_null", "no_a",
                                          "a_number", "a_value_array_no_nulls", "a_string"})),
    ("elem_match_value", {"a": {"$elemMatch": {"$gte": 2, "$lt": 5}}},
     ["a_value_array_no_nulls", "a_value_array_with_null"]),
    ("elem_match_needs_one_element", {"a": {"$elemMatch": {"$gt": 1, "$lt": 4}}}, []),
    ("without_elem_match_elements_may_differ", {"a": {"$gt": 1, "$lt": 4}},
     ["a_value_array_no_nulls", "a_value_array_with_null"]),
    ("elem_match_object", {"a": {"$elemMatch": {"b": 3}}},
     ["a_object_array_no_b_nulls", "a_object_array_some_b_missing", "a_object_array_some_b_nulls"]),
    ("elem_match_object_ne_null", {"a": {"$elemMatch": {"b": {"$ne": None}}}},
     ["a_object_array_no_b_nulls", "a_object_array_some_b_missing", "a_object_array_some_b_nulls"]),
    ("elem_match_eq_null", {"a": {"$elemMatch": {"$eq": None}}}, ["a_value_array_all_nulls",
                                                                   "a_value_array_with_null"]),
    ("not", {"a": {"$not": {"$gt": 3}}},
     sorted(set(d["_id"] for d in DOCS) - {"a_float", "a_number", "a_value_array_no_nulls",
                                          "a_value_array_with_null"})),
    ("regex", {"a": {"$regex": "^str"}}, ["a_value_array_no_nulls", "a_value_array_with_null"]),
    ("regex_is_strings_only", {"a": {"$regex": "5"}}, ["a_string"]),
    ("or", {"$or": [{"a": 4}, {"a": "5"}]}, ["a_number", "a_string", "a_value_array_no_nulls",
                                            "a_value_array_with_null"]),
    ("nor", {"$nor": [{"a": {"$exists": True}}, {"a": None}]}, []),
    ("and", {"$and": [{"a": {"$exists": True}}, {"a": {"$size": 2}}]}, ["a_object_array_some_b_missing",
                                                                         "a_value_array_all_nulls"]),
    ("id_in", {"_id": {"$in": ["a_null", "no_a", "zzz"]}}, ["a_null", "no_a"]),
    ("id_range", {"_id": {"$gt": "a_value", "$lt": "a_z"}}, ["a_value_array_all_nulls", "a_value_array_no_nulls",
                                                             "a_value_array_with_null"]),
]

# Sorting across types: MongoDB's order (an empty array first, null and missing equal, numbers,
# strings, objects, arrays by their smallest element ascending and largest descending, ObjectIds,
# booleans, dates), ties broken by _id.
SORT_DOCS: list[Doc] = [
    {"_id": 1, "v": "b"}, {"_id": 2, "v": 3}, {"_id": 3}, {"_id": 4, "v": None}, {"_id": 5, "v": T0},
    {"_id": 6, "v": True}, {"_id": 7, "v": False}, {"_id": 8, "v": OIDS[1]}, {"_id": 9, "v": {"x": 1}},
    {"_id": 10, "v": 2.5}, {"_id": 11, "v": [7, 1]}, {"_id": 12, "v": []}, {"_id": 13, "v": "a"},
    {"_id": 14, "v": -1}, {"_id": 15, "v": ["z", 9]}, {"_id": 16, "v": {"x": 0, "y": 1}},
]
SORT_ASCENDING = [12, 3, 4, 14, 11, 10, 2, 15, 13, 1, 16, 9, 8, 7, 6, 5]
SORT_DESCENDING = [5, 6, 7, 8, 9, 16, 15, 1, 13, 11, 2, 10, 14, 3, 4, 12]


class StorageConformance:
    """Subclass as `Test...` and give a `storage` fixture: an empty StorageAPI."""

    query_quirks: ClassVar[dict[str, str]] = {}  # QUERIES case -> how this backend differs from MongoDB

    # --- inserting and reading ---------------------------------------------------------------

    async def test_insert_then_find_one_by_id(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        doc: Doc = {"_id": ObjectId(), "name": "a", "n": 1}
        await coll.insert(doc)
        assert await coll.find_one({"_id": doc["_id"]}) == doc
        assert await coll.find_one({"_id": ObjectId()}) is None

    async def test_insert_gives_a_document_without_id_an_objectid(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        doc: Doc = {"name": "a"}
        await coll.insert(doc)
        assert isinstance(doc["_id"], ObjectId)
        assert await coll.find_one({"name": "a"}) == doc

    async def test_a_duplicate_id_is_a_conflict(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        await coll.insert({"_id": 1, "n": 1})
        with raises(Conflict):
            await coll.insert({"_id": 1, "n": 2})
        assert await coll.find_one({"_id": 1}) == {"_id": 1, "n": 1}

    async def test_every_value_type_comes_back_as_it_went_in(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        doc: Doc = {
            "_id": ObjectId(), "int": 2**63 - 1, "neg": -(2**63), "float": 0.1, "whole_float": 2.0, "t": True,
            "f": False, "none": None, "empty": "", "text": "héllo \u2603 \U0001f600", "zero": 0,
            "top_of_unicode": "\U0010fffd\U0010ffff tags are plain text here", "nested": {"a": [1, {"b": [None]}]},
            "oid": OIDS[2], "when": T0, "list": [], "obj": {},
        }
        await coll.insert(doc)
        found = await coll.find_one({"_id": doc["_id"]})
        assert found == doc
        assert found is not None and type(found["whole_float"]) is float  # 2.0 stays a float
        assert isinstance(found["int"], int) and not isinstance(found["int"], bool | float)
        assert type(found["t"]) is bool and isinstance(found["when"], datetime)

    async def test_dates_keep_milliseconds(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        await coll.insert({"_id": 1, "at": datetime(2024, 1, 2, 3, 4, 5, 678901)})
        found = await coll.find_one({"_id": 1})
        assert found == {"_id": 1, "at": datetime(2024, 1, 2, 3, 4, 5, 678000)}

    async def test_an_integer_beyond_64_bits_is_refused(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        with raises(BadRequest):
            await coll.insert({"_id": 1, "n": 2**63})
        assert await coll.count({}) == 0

    async def test_reading_a_collection_never_written_is_empty(self, storage: StorageAPI) -> None:
        coll = storage.collection("nothing_here")
        assert await coll.find({"a": 1}) == []
        assert await coll.find_one({}) is None
        assert await coll.count({"a": {"$gt": 1}}) == 0
        assert await coll.delete({"a": 1}) == 0
        assert await coll.find_one_and_delete({"a": 1}) is None

    async def test_find_sorts_skips_and_limits(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        for n in range(10):
            await coll.insert({"_id": n, "n": n % 3, "m": n})
        assert await ids(coll, {}, [("n", 1), ("m", -1)]) == [9, 6, 3, 0, 7, 4, 1, 8, 5, 2]
        page = await coll.find({}, {"_id": 1}, [("m", -1)], skip=2, limit=3)
        assert [d["_id"] for d in page] == [7, 6, 5]
        assert (await coll.find_one({"n": 1}, None, [("m", -1)]) or {}).get("_id") == 7
        assert await coll.count({"n": 1}) == 3

    async def test_projections(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        await coll.insert({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [{"c": 4, "x": 5}, {"x": 6}, 7]})
        assert await coll.find_one({}, {"a": 1}) == {"_id": 1, "a": 1}
        assert await coll.find_one({}, {"a": 1, "_id": 0}) == {"a": 1}
        assert await coll.find_one({}, {"b.c": 1}) == {"_id": 1, "b": {"c": 2}}
        assert await coll.find_one({}, {"e.c": 1}) == {"_id": 1, "e": [{"c": 4}, {}]}
        assert await coll.find_one({}, {"b.zz": 1}) == {"_id": 1, "b": {}}
        assert await coll.find_one({}, {"a": 0, "b.d": 0}) == {"_id": 1, "b": {"c": 2},
                                                                "e": [{"c": 4, "x": 5}, {"x": 6}, 7]}
        assert await coll.find_one({}, {"_id": 0, "e": 0, "b": 0}) == {"a": 1}

    # --- query semantics ----------------------------------------------------------------------------

    async def _docs(self, storage: StorageAPI) -> CollectionAPI:
        coll = storage.collection("semantics")
        for doc in DOCS:
            await coll.insert(dict(doc))
        return coll

    async def test_query_semantics(self, storage: StorageAPI) -> None:
        coll = await self._docs(storage)
        wrong = {}
        for name, query, expected in QUERIES:
            found = await ids(coll, query)
            if found != sorted(expected):
                wrong[name] = {"query": query, "missing": sorted(set(expected) - set(found)),
                               "extra": sorted(set(found) - set(expected))}
        unexpected = {name: diff for name, diff in wrong.items() if name not in self.query_quirks}
        assert not unexpected, unexpected
        fixed = set(self.query_quirks) - set(wrong)
        assert not fixed, f"listed as quirks but right now: {sorted(fixed)}"

    async def test_queries_count_what_they_find(self, storage: StorageAPI) -> None:
        coll = await self._docs(storage)
        for name, query, expected in QUERIES:
            if name not in self.query_quirks:
                assert await coll.count(query) == len(expected), name

    async def test_sort_order_across_types(self, storage: StorageAPI) -> None:
        coll = storage.collection("sorting")
        for doc in SORT_DOCS:
            await coll.insert(dict(doc))
        assert await ids(coll, {}, [("v", 1), ("_id", 1)]) == SORT_ASCENDING
        assert await ids(coll, {}, [("v", -1), ("_id", 1)]) == SORT_DESCENDING

    async def test_sort_on_a_sub_field(self, storage: StorageAPI) -> None:
        coll = storage.collection("sorting")
        for n, value in enumerate([{"x": 2}, {"x": "a"}, {}, {"x": -1.5}, None]):
            await coll.insert({"_id": n, "o": value})
        assert await ids(coll, {}, [("o.x", 1), ("_id", 1)]) == [2, 4, 3, 0, 1]
        assert await ids(coll, {}, [("o.x", -1), ("_id", 1)]) == [1, 0, 3, 2, 4]

    # --- writes ----------------------------------------------------------------------------------------

    async def test_update_if_is_a_compare_and_swap(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        await coll.insert({"_id": 1, "v": 1, "body": "a", "gone": True})
        assert await coll.update_if({"_id": 1, "v": 1}, {"$set": {"v": 2, "body": "b", "sub.x": 1},
                                                         "$unset": {"gone": ""}})
        assert not await coll.update_if({"_id": 1, "v": 1}, {"$set": {"v": 3}})
        assert await coll.find_one({"_id": 1}) == {"_id": 1, "v": 2, "body": "b", "sub": {"x": 1}}

    async def test_update_many_and_upsert(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        for n in range(3):
            await coll.insert({"_id": n, "g": "x"})
        assert await coll.update({"g": "x"}, {"$set": {"seen": True}}) == 3
        assert await coll.count({"seen": True}) == 3
        assert await coll.update({"_id": "new"}, {"$max": {"floor": 5}}, upsert=True) == 0
        assert await coll.update({"_id": "new"}, {"$max": {"floor": 3}}, upsert=True) == 1
        assert await coll.find_one({"_id": "new"}) == {"_id": "new", "floor": 5}
        await coll.update({"_id": "new"}, {"$max": {"floor": 9}})
        assert (await coll.find_one({"_id": "new"}) or {}).get("floor") == 9

    async def test_push_and_pull_with_a_condition(self, storage: StorageAPI) -> None:
        coll = storage.collection("users")
        old, new = T0 - timedelta(days=1), T0 + timedelta(days=1)
        await coll.insert({"_id": 1, "_auth": {"revoked": [{"jti": "a", "expiresAt": old},
                                                           {"jti": "b", "expiresAt": new}]}})
        await coll.update({"_id": 1}, {"$pull": {"_auth.revoked": {"expiresAt": {"$lt": T0}}}})
        await coll.update({"_id": 1}, {"$push": {"_auth.revoked": {"jti": "c", "expiresAt": new}}})
        found = await coll.find_one({"_id": 1})
        assert found == {"_id": 1, "_auth": {"revoked": [{"jti": "b", "expiresAt": new},
                                                         {"jti": "c", "expiresAt": new}]}}
        await coll.update({"_id": 2}, {"$push": {"list": 1}}, upsert=True)
        assert await coll.find_one({"_id": 2}) == {"_id": 2, "list": [1]}

    async def test_increment_creates_then_counts_and_returns_the_document_after(self, storage: StorageAPI) -> None:
        coll = storage.collection("counters")
        first = await coll.increment({"_id": "x"}, {"$inc": {"seq": 1}, "$setOnInsert": {"at": T0}})
        assert first == {"_id": "x", "seq": 1, "at": T0}
        later = T0 + timedelta(seconds=1)
        second = await coll.increment({"_id": "x"}, {"$inc": {"seq": 1}, "$setOnInsert": {"at": later}})
        assert second == {"_id": "x", "seq": 2, "at": T0}
        third = await coll.increment({"_id": "x"}, {"$inc": {"seq": 5}, "$set": {"at": later}})
        assert third == {"_id": "x", "seq": 7, "at": later}

    async def test_increment_of_a_field_the_counter_lacks_or_holds_as_another_type(self, storage: StorageAPI) -> None:
        coll = storage.collection("counters")
        await coll.increment({"_id": "x"}, {"$inc": {"seq": 2}, "$set": {"at": T0}})
        # a field it does not hold yet starts at 0, as MongoDB's $inc does; the others stay
        assert await coll.increment({"_id": "x"}, {"$inc": {"other": 3}}) == {"_id": "x", "seq": 2, "at": T0,
                                                                                 "other": 3}
        await coll.update({"_id": "x"}, {"$set": {"seq": 2.5}})
        assert (await coll.increment({"_id": "x"}, {"$inc": {"seq": 1}}))["seq"] == 3.5  # a double stays one
        await coll.update({"_id": "x"}, {"$set": {"seq": "two"}})
        with raises(StoreError):  # $inc of a string: refused, nothing changed
            await coll.increment({"_id": "x"}, {"$inc": {"seq": 1}})
        assert (await coll.find_one({"_id": "x"}) or {})["seq"] == "two"

    async def test_increments_in_parallel_are_atomic(self, storage: StorageAPI) -> None:
        import asyncio

        coll = storage.collection("counters")
        await coll.increment({"_id": "x"}, {"$inc": {"seq": 1}})
        found = await asyncio.gather(*(coll.increment({"_id": "x"}, {"$inc": {"seq": 1}}) for _ in range(30)))
        assert sorted(d["seq"] for d in found) == list(range(2, 32))

    async def test_delete_and_find_one_and_delete(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        for n in range(5):
            await coll.insert({"_id": n, "even": n % 2 == 0})
        assert await coll.delete({"even": True}) == 3
        assert await coll.find_one_and_delete({"_id": 1}) == {"_id": 1, "even": False}
        assert await coll.find_one_and_delete({"_id": 1}) is None
        assert await ids(coll, {}) == [3]

    # --- indexes ------------------------------------------------------------------------------------------

    async def test_a_unique_index_refuses_duplicates_but_not_documents_without_the_field(
            self, storage: StorageAPI) -> None:
        coll = storage.collection("keys")
        await coll.ensure_index([("hash", 1)], unique=True)
        await coll.ensure_index([("hash", 1)], unique=True)  # idempotent
        await coll.insert({"_id": 1, "hash": "h"})
        with raises(Conflict):
            await coll.insert({"_id": 2, "hash": "h"})
        await coll.insert({"_id": 3})
        await coll.insert({"_id": 4})  # two documents without the field do not collide
        await coll.insert({"_id": 5, "hash": "other"})
        with raises(Conflict):
            await coll.update_if({"_id": 5}, {"$set": {"hash": "h"}})
        assert await ids(coll, {}) == [1, 3, 4, 5]

    async def test_a_unique_index_compares_as_mongodb_does(self, storage: StorageAPI) -> None:
        coll = storage.collection("keys")
        await coll.ensure_index([("k", 1)], unique=True)
        await coll.insert({"_id": 1, "k": 1})
        with raises(Conflict):
            await coll.insert({"_id": 2, "k": 1.0})  # 1 == 1.0
        await coll.insert({"_id": 3, "k": "1"})
        await coll.insert({"_id": 4, "k": True})
        await coll.insert({"_id": 5, "k": None})
        with raises(Conflict):
            await coll.insert({"_id": 6, "k": None})  # null exists: it is indexed, and collides

    async def test_a_compound_unique_index(self, storage: StorageAPI) -> None:
        coll = storage.collection("keys")
        await coll.ensure_index([("a", 1), ("b", 1)], unique=True)
        await coll.insert({"_id": 1, "a": 1, "b": 1})
        await coll.insert({"_id": 2, "a": 1, "b": 2})
        with raises(Conflict):
            await coll.insert({"_id": 3, "a": 1, "b": 1})

    async def test_indexes_of_every_kind_leave_the_answers_unchanged(self, storage: StorageAPI) -> None:
        coll = await self._docs(storage)
        await coll.ensure_index([("a", 1)])
        await coll.ensure_index([("a.b", 1)])
        await coll.ensure_index([("a", 1), ("_id", -1)])
        for name, query, expected in QUERIES:
            if name not in self.query_quirks:
                assert await ids(coll, query) == sorted(expected), name

    async def test_errors_are_store_errors(self, storage: StorageAPI) -> None:
        coll = storage.collection("items")
        await coll.insert({"_id": 1})
        for attempt in (coll.insert({"_id": 1}), coll.insert({"_id": 2, "n": 2**64})):
            try:
                await attempt
            except StoreError:
                continue
            raise AssertionError("a StoreError was expected")
