"""The in-memory matcher (model/matcher.py) answers exactly as the database answers `?filter=`.

Hypothesis generates entities of the `things` schema and filters of every operator the list
allows (through `query.parse_filter`, as a request would), and compares `matches()` with the
database's own answer to exactly the query the engine sends: the embedded database (SQLite, through
`storage.testing.matches`, the backend's own query compiler).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storeengine.model.matcher import matches
from storeengine.model.query import parse_filter
from storeengine.model.schema import load_file
from storeengine.storage.testing import matches as database_matches
from tests.paths import TEST_SCHEMAS

STORE = load_file(TEST_SCHEMAS / "things.json")
WORDS = ["a", "ab", "abc", "b", "B", "ba", "", "c"]
REFS = ["0123456789abcdef01234567", "76543210fedcba9876543210"]
WHENS = ["2026-01-01T00:00:00.000Z", "2026-02-01T12:30:00.250Z", "2026-03-01T00:00:00.000Z"]
INTS = st.integers(-3, 3)
NUMBERS = st.one_of(INTS, st.sampled_from([-1.5, 0.5, 2.0, 2.5]))
# $regex patterns: plain RE2 that MongoDB's PCRE reads the same way.
PATTERNS = ["^a", "b$", "a.c", "^$", "b", "^(a|b)+$", "[bc]"]

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(WORDS),
    "count": INTS,
    "score": NUMBERS,
    "flag": st.booleans(),
    "ref": st.sampled_from(REFS),
    "when": st.sampled_from(WHENS),
    "tags": st.lists(st.sampled_from(WORDS), max_size=3),
    "nested": st.fixed_dictionaries({}, optional={"a": INTS, "b": st.sampled_from(WORDS)}),
}
ENTITY = st.fixed_dictionaries({}, optional=FIELDS)
# Operands of another type than the field's: type bracketing must keep them apart.
FOREIGN = st.sampled_from([None, 1, 2.5, "b", True, False])


def operand(field: str) -> st.SearchStrategy[Any]:
    own = FIELDS["tags"].map(lambda t: t) if field == "tags" else FIELDS[field]
    if field == "tags":
        own = st.one_of(st.sampled_from(WORDS), FIELDS["tags"])
    if field in ("ref", "when"):  # a string there must be of the field's format (else 400)
        return st.one_of(own, st.sampled_from([None, 1, True]))
    if field == "nested":
        return st.one_of(own, FOREIGN)
    return st.one_of(own, FOREIGN)


def scalar_operand(field: str) -> st.SearchStrategy[Any]:
    """Comparison operands: scalars only (a comparison with an array or document operand compares
    whole BSON values; not generated)."""
    if field == "tags":
        return st.one_of(st.sampled_from(WORDS), FOREIGN).filter(lambda v: v is not None)
    if field == "nested":
        return FOREIGN.filter(lambda v: v is not None)
    return operand(field).filter(lambda v: not isinstance(v, (list, dict)))


def operator(field: str) -> st.SearchStrategy[dict[str, Any]]:
    ops: list[st.SearchStrategy[dict[str, Any]]] = [
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$ne"]), operand(field)),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), scalar_operand(field)),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$in", "$nin"]), st.lists(scalar_operand(field), max_size=3)),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
    ]
    if field in ("name", "tags"):
        ops.append(st.builds(lambda p: {"$regex": p}, st.sampled_from(PATTERNS)))
    if field == "tags":
        ops += [st.builds(lambda n: {"$size": n}, st.integers(0, 3)),
                st.builds(lambda v: {"$all": v}, st.lists(st.sampled_from(WORDS), max_size=2)),
                st.builds(lambda c: {"$elemMatch": c}, st.one_of(
                    st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$gt", "$lte"]), st.sampled_from(WORDS)),
                    st.builds(lambda p: {"$regex": p}, st.sampled_from(PATTERNS))))]
    return st.one_of(*ops)


def condition(field: str) -> st.SearchStrategy[Any]:
    return st.one_of(operand(field), operator(field), operator(field).map(lambda c: {"$not": c}))


def clause() -> st.SearchStrategy[dict[str, Any]]:
    paths = [*FIELDS, "nested.a", "nested.b"]
    like = {"nested.a": "count", "nested.b": "name"}  # sub-fields draw operands like these fields
    return st.sampled_from(paths).flatmap(lambda p: condition(like.get(p, p)).map(lambda c: {p: c}))


FILTER = st.recursive(
    clause(),
    lambda inner: st.builds(lambda op, qs: {op: qs}, st.sampled_from(["$and", "$or", "$nor"]),
                            st.lists(inner, min_size=1, max_size=3)),
    max_leaves=5,
)


def stored(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"_id": ObjectId(), **STORE.to_storage(dict(e))} for e in entities]


def agree(find: Callable[[dict[str, Any]], set[Any]], docs: list[dict[str, Any]], raw: dict[str, Any]) -> None:
    query = parse_filter(json.dumps(raw), STORE)
    expected = find(query)
    got = {d["_id"] for d in docs if matches(d, query)}
    assert got == expected, f"filter {raw}: matcher {got ^ expected} differ"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ENTITY, max_size=8), st.lists(FILTER, min_size=1, max_size=5))
def test_matcher_agrees_with_the_embedded_database(entities, filters):
    docs = stored(entities)
    for raw in filters:
        agree(lambda q: {d["_id"] for d in docs if database_matches(q, d)}, docs, raw)
