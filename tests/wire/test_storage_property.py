"""Property: the embedded database (SQLite) and the MongoDB wire lane (mongoeco) return the same
entities in the same order, for random entities, random filters of the list operators (API.md
section 7, and `$type`, which keyset paging uses) and random sorts.

Entities hold ints, floats, strings, booleans, nulls, missing fields, arrays, nested objects,
ObjectIds and dates. Generation leaves out, on purpose, the cases where mongoeco (not SQLite) is
the odd one out against MongoDB (each is a `test_query_semantics` quirk in
test_storage_wire.py, where SQLite is checked against MongoDB's own answers):

- range operators ($gt $gte $lt $lte) meet values of their own type only: mongoeco has no type
  bracketing (`{n: {$lt: 3}}` would match null, strings, dates...). So the fields they apply to
  hold one type (or are missing), and their literals are of that type; never null.
- null is never compared on a path through an array (`{"items.x": null}`, `$ne`/`$in`/`$nin`
  with null there): mongoeco matches arrays of scalars and misses elements without the field.
- arrays that are sorted on are never empty: mongoeco sorts `[]` as an array (MongoDB: first).
- no arrays inside arrays (MongoDB treats them specially in $elemMatch and sorts).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storeengine.settings import Settings
from storeengine.storage.mongo import Storage
from storeengine.storage.sqlite import SqliteStorage
from tests.lanes import WireServer

# A fixed budget and fixed examples (derandomized) for the lane; STORE_PROPERTY_EXAMPLES=500
# STORE_PROPERTY_RANDOM=1 explores further.
EXAMPLES = int(os.environ.get("STORE_PROPERTY_EXAMPLES", "60"))
RANDOM = os.environ.get("STORE_PROPERTY_RANDOM") == "1"
QUERIES_PER_EXAMPLE = 8

# --- values ------------------------------------------------------------------------------------

BASE = datetime(2024, 1, 1, 12, 0, 0)
DATES = [BASE + timedelta(milliseconds=ms) for ms in (-86_400_000, 0, 1, 999, 3_600_000)]
OIDS = [ObjectId(f"65{n:022x}") for n in (1, 2, 3, 10, 255)]
# Strings that matter: empty, case, accents, a prefix of another, JSON-looking text, and code
# points at the top of Unicode (where the embedded database's tags live: they must stay strings).
STRINGS = ["", "a", "ab", "b", "B", "é", "[1]", "{}", "a b", "\U0010fffd", "\U0010ffffz", "zz"]
INTS = [-3, 0, 1, 2, 3, 7, 2**40]
FLOATS = [-1.5, 0.0, 0.5, 2.0, 2.5, 1e20]

ints = st.sampled_from(INTS)
numbers = st.one_of(ints, st.sampled_from(FLOATS))
strings = st.sampled_from(STRINGS)
dates = st.sampled_from(DATES)
oids = st.sampled_from(OIDS)
bools = st.booleans()
scalars = st.one_of(st.none(), numbers, strings, dates, oids, bools)
# Fields with one type (range operators apply), and what else they may hold (missing: always).
TYPED = {"n": numbers, "s": strings, "d": dates, "o": oids, "b": bools}
SUB = st.fixed_dictionaries({}, optional={"x": ints, "y": strings})
ITEM = st.fixed_dictionaries({}, optional={"x": ints, "y": strings})


MISSING = object()


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value, or MISSING: leave the field out."""
    return st.one_of(st.just(MISSING), values)


@st.composite
def entity(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        **{name: draw(maybe(values)) for name, values in TYPED.items()},
        "mixed": draw(maybe(scalars)),
        "tags": draw(maybe(st.lists(strings, max_size=3))),  # never null: ranges apply to it
        "nums": draw(maybe(st.lists(ints, min_size=1, max_size=3))),  # sorted on: never empty
        "sub": draw(maybe(st.one_of(st.none(), SUB))),
        "items": draw(maybe(st.lists(ITEM, max_size=3))),
    }
    return {k: v for k, v in fields.items() if v is not MISSING}


# --- filters -----------------------------------------------------------------------------------

RANGES = ["$gt", "$gte", "$lt", "$lte"]
PATTERNS = ["^a", "b$", "^$", "A|é", "^\\[", "z+", "^(a|b)+$"]


def range_on(path: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    one = st.builds(lambda op, v: {op: v}, st.sampled_from(RANGES), values)
    two = st.builds(lambda a, b: {"$gt": a, "$lte": b}, values, values)
    return st.builds(lambda cond: {path: cond}, st.one_of(one, two))


def equality_on(path: str, values: st.SearchStrategy[Any], *, null: bool) -> st.SearchStrategy[dict[str, Any]]:
    literal = st.one_of(values, st.none()) if null else values
    lists = st.lists(literal, max_size=3)
    cond = st.one_of(
        literal, st.builds(lambda v: {"$eq": v}, literal), st.builds(lambda v: {"$ne": v}, literal),
        st.builds(lambda vs: {"$in": vs}, lists), st.builds(lambda vs: {"$nin": vs}, lists),
    )
    return st.builds(lambda c: {path: c}, cond)


def common_on(path: str) -> st.SearchStrategy[dict[str, Any]]:
    exists = st.builds(lambda b: {path: {"$exists": b}}, st.booleans())
    regex = st.builds(lambda p: {path: {"$regex": p}}, st.sampled_from(PATTERNS))
    return st.one_of(exists, regex)


def array_ops(path: str, elements: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda n: {path: {"$size": n}}, st.integers(0, 3)),
        st.builds(lambda vs: {path: {"$all": vs}}, st.lists(elements, max_size=2)),
        st.builds(lambda a, b: {path: {"$elemMatch": {"$gte": a, "$lt": b}}}, elements, elements),
    )


# `$type` is not a filter operator of the contract: keyset paging resumes with it (model/keyset.py).
TYPE_NAMES = ["number", "string", "object", "objectId", "bool", "date"]


def type_on(path: str) -> st.SearchStrategy[dict[str, Any]]:
    names = st.one_of(st.sampled_from(TYPE_NAMES), st.lists(st.sampled_from(TYPE_NAMES), min_size=1, max_size=3))
    return st.builds(lambda t: {path: {"$type": t}}, names)


ITEM_QUERY = st.one_of(
    st.builds(lambda v: {"x": v}, ints), st.builds(lambda v: {"y": v}, strings),
    st.builds(lambda a, b: {"x": {"$gte": a}, "y": {"$ne": b}}, ints, strings),
    st.builds(lambda p: {"y": {"$regex": p}}, st.sampled_from(PATTERNS)),
)

LEAVES = st.one_of(
    *(range_on(name, values) for name, values in TYPED.items()),
    *(equality_on(name, values, null=True) for name, values in TYPED.items()),
    equality_on("mixed", scalars, null=True),
    *(common_on(name) for name in ("n", "s", "mixed", "tags", "nums", "sub", "items", "sub.x", "items.y")),
    equality_on("tags", strings, null=True), array_ops("tags", strings), range_on("tags", strings),
    equality_on("nums", ints, null=False), array_ops("nums", ints), range_on("nums", ints),
    equality_on("sub.x", ints, null=True), range_on("sub.x", ints), equality_on("sub.y", strings, null=True),
    equality_on("sub", SUB, null=True),
    equality_on("items.x", ints, null=False), range_on("items.x", ints), equality_on("items.y", strings, null=False),
    st.builds(lambda q: {"items": {"$elemMatch": q}}, ITEM_QUERY),
    array_ops("items", ITEM).filter(lambda q: "$elemMatch" not in q["items"]),
    *(type_on(name) for name in ("mixed", "tags", "nums", "sub", "sub.x", "items", "items.y")),
)


def negated(leaf: dict[str, Any]) -> dict[str, Any] | None:
    """`{$not: ...}` around a leaf's operator object (None when the leaf is a plain value)."""
    (path, cond), = leaf.items()
    if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
        return {path: {"$not": cond}}
    return None


FILTERS = st.recursive(
    st.one_of(LEAVES, LEAVES.map(negated).filter(lambda q: q is not None)),
    lambda inner: st.one_of(
        st.builds(lambda qs: {"$and": qs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda qs: {"$or": qs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda qs: {"$nor": qs}, st.lists(inner, min_size=1, max_size=2)),
    ),
    max_leaves=4,
)
SORT_FIELDS = ["n", "s", "d", "o", "b", "mixed", "nums", "sub", "sub.x"]
SORTS = st.lists(st.tuples(st.sampled_from(SORT_FIELDS), st.sampled_from([1, -1])), max_size=2,
                 unique_by=lambda key: key[0]).map(lambda keys: [*keys, ("_id", 1)])
QUERY = st.tuples(FILTERS, SORTS, st.integers(0, 3), st.sampled_from([0, 0, 2, 5]))


# --- the property ------------------------------------------------------------------------------

class Lanes:
    """One event loop, the embedded database in memory and a database on the wire server."""

    def __init__(self, uri: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.sqlite = SqliteStorage(":memory:", name="property")
        self.wire = self.run(self._connect(uri))
        self.round = 0

    async def _connect(self, uri: str) -> Storage:
        return Storage.connect(Settings(mongodb_uri=uri, database=f"prop_{uuid.uuid4().hex[:10]}"))

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.wire.client.drop_database(self.wire.database_name))
        self.run(self.wire.close())
        self.sqlite.shut()
        self.loop.close()


@pytest.fixture(scope="module")
def lanes(wire_server: WireServer) -> Iterator[Lanes]:
    lanes = Lanes(wire_server.uri)
    yield lanes
    lanes.close()


async def _compare(lanes: Lanes, entities: list[dict[str, Any]], queries: list[Any]) -> None:
    lanes.round += 1
    name = f"round{lanes.round}"
    here, there = lanes.sqlite.collection(name), lanes.wire.collection(name)
    for n, doc in enumerate(entities):
        doc = {"_id": ObjectId(f"{lanes.round:08x}{n:016x}"), **doc}
        await here.insert(dict(doc))
        await there.insert(dict(doc))
    for query, sort, skip, limit in queries:
        expected = [d["_id"] for d in await there.find(query, {"_id": 1}, sort, skip, limit)]
        found = [d["_id"] for d in await here.find(query, {"_id": 1}, sort, skip, limit)]
        assert found == expected, {"filter": query, "sort": sort, "skip": skip, "limit": limit,
                                   "sqlite": found, "wire": expected}
        assert await here.count(query) == await there.count(query), query


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(entities=st.lists(entity(), min_size=1, max_size=12),
       queries=st.lists(QUERY, min_size=1, max_size=QUERIES_PER_EXAMPLE))
def test_sqlite_and_the_wire_lane_return_the_same_entities_in_the_same_order(
        lanes: Lanes, entities: list[dict[str, Any]], queries: list[Any]) -> None:
    lanes.run(_compare(lanes, entities, queries))
