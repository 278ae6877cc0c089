"""storeengine.model.query: list parameters -> a typed query, and the `filter` whitelist (API.md section 7)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from bson import ObjectId

from storeengine.core.errors import BadRequest
from storeengine.model.query import ListQuery, parse_filter, parse_list_query
from storeengine.model.schema import StoreSchema, compile_schema
from tests.paths import TEST_SCHEMAS

THINGS = compile_schema("things", json.loads((TEST_SCHEMAS / "things.json").read_text()))
USERS_FILE = resources.files("storeengine.model.builtin").joinpath("users.json")
USERS = compile_schema("users", json.loads(USERS_FILE.read_text()), builtin=True)
REF, REF2 = "0123456789abcdef01234567", "76543210fedcba9876543210"
MOMENT = datetime(2026, 1, 2, 3, 4, 5, 678000)  # naive UTC
EPOCH = datetime(1970, 1, 1)


def parse(params: dict[str, str] | list[tuple[str, str]], store: StoreSchema = THINGS) -> ListQuery:
    pairs = list(params.items()) if isinstance(params, dict) else params
    return parse_list_query(pairs, store)


def utc(value: Any) -> Any:
    """Datetimes anywhere in a structure as naive UTC, so either representation compares equal."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return {k: utc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [utc(v) for v in value]
    return value


def clauses(query: dict[str, Any]) -> list[dict[str, Any]]:
    """The conjuncts of a filter: the items of a top-level $and, or its single-field parts."""
    if set(query) == {"$and"}:
        return [c for part in query["$and"] for c in clauses(part)]
    return [{k: v} for k, v in query.items()]


def refused(call: Any, match: str) -> BadRequest:
    with pytest.raises(BadRequest, match=match) as info:
        call()
    assert info.value.status == 400 and info.value.fields is None
    return info.value


# --- defaults, offset, limit, only, meta -------------------------------------------------------

def test_defaults():
    q = parse({})
    assert (q.offset, q.limit, q.meta, q.projection, q.filter) == (0, 10000, False, None, {})
    assert list(q.sort) == [("_id", 1)]


@pytest.mark.parametrize("params,offset,limit", [
    ({"offset": "0"}, 0, 10000), ({"offset": "25"}, 25, 10000), ({"limit": "1"}, 0, 1),
    ({"limit": "10000"}, 0, 10000), ({"offset": "3", "limit": "7"}, 3, 7),
])
def test_offset_and_limit_are_parsed(params, offset, limit):
    q = parse(params)
    assert (q.offset, q.limit) == (offset, limit)


@pytest.mark.parametrize("key,value", [
    ("limit", "0"), ("limit", "10001"), ("limit", "-1"), ("limit", "abc"), ("limit", "1.5"), ("limit", ""),
    ("offset", "-1"), ("offset", "abc"), ("offset", "2.0"), ("offset", "1.5"), ("offset", ""),
])
def test_bad_offset_or_limit(key, value):
    refused(lambda: parse({key: value}), key)


@pytest.mark.parametrize("only,projection", [
    ("name", {"_id": 1, "name": 1}),
    ("name,nested.a", {"_id": 1, "name": 1, "nested.a": 1}),
    ("createdAt,owner", {"_id": 1, "createdAt": 1, "owner": 1}),
    ("_id", {"_id": 1}),
])
def test_only_is_a_projection_that_keeps_id(only, projection):
    assert parse({"only": only}).projection == projection


@pytest.mark.parametrize("only,match", [
    ("nope", "nope"), ("pin", "pin"), ("name,pin", "pin"), ("pin.x", "pin"), ("Name", "Name"), ("", "only"),
    ("name,", "only"), ("nested.$a", r"nested\.\$a"), ("$where", r"\$where"),
    # a path and its sub-path: one answer, 400 (MongoDB refuses such a projection)
    ("nested,nested.a", "nested.*sub-fields"), ("nested.a,nested", "nested.*sub-fields"),
])
def test_only_refuses_unknown_or_write_only_fields(only, match):
    refused(lambda: parse({"only": only}), match)


@pytest.mark.parametrize("params,meta", [({"meta": "true"}, True), ({"meta": "false"}, False),
                                         ({"meta": "false", "offset": "1", "limit": "2"}, False)])
def test_meta(params, meta):
    assert parse(params).meta is meta


@pytest.mark.parametrize("params,match", [
    ({"meta": "true", "offset": "0"}, "offset"), ({"meta": "true", "limit": "5"}, "limit"),
    ({"meta": "true", "offset": "1", "limit": "1"}, "offset|limit"), ({"meta": "yes"}, "meta"), ({"meta": ""}, "meta"),
])
def test_meta_refusals(params, match):
    refused(lambda: parse(params), match)


# --- from / to -----------------------------------------------------------------------------------

TIME_FORMS = [
    ("2026-01-02T03:04", MOMENT.replace(second=0, microsecond=0)),
    ("2026-01-02T03:04Z", MOMENT.replace(second=0, microsecond=0)),
    ("2026-01-02T04:04+01:00", MOMENT.replace(second=0, microsecond=0)),
    ("2026-01-02T03:04:05", MOMENT.replace(microsecond=0)),
    ("2026-01-02T03:04:05Z", MOMENT.replace(microsecond=0)),
    ("2026-01-01T21:34:05-05:30", MOMENT.replace(microsecond=0)),
    ("2026-01-02T03:04:05.678", MOMENT),
    ("2026-01-02T03:04:05.678Z", MOMENT),
    ("2026-01-02T05:04:05.678+02:00", MOMENT),
    ("2026-01-02T03:04:05.678+00:00", MOMENT),
    ("2026-01-01T21:34:05.678-05:30", MOMENT),
    (str((MOMENT - EPOCH) // timedelta(milliseconds=1)), MOMENT),
    ("0", EPOCH),
]


@pytest.mark.parametrize("text,expected", TIME_FORMS, ids=[t for t, _ in TIME_FORMS])
@pytest.mark.parametrize("key,op", [("from", "$gte"), ("begin", "$gte"), ("to", "$lt"), ("end", "$lt")])
def test_time_bounds_in_every_form(text, expected, key, op):
    assert utc(parse({key: text}).filter) == {"createdAt": {op: expected}}


@pytest.mark.parametrize("low,high", [("from", "to"), ("begin", "end"), ("from", "end"), ("begin", "to")])
def test_both_time_bounds(low, high):
    later = MOMENT + timedelta(milliseconds=1)
    q = parse({low: "2026-01-02T03:04:05.678Z", high: later.isoformat(timespec="milliseconds")})
    assert utc(q.filter) == {"createdAt": {"$gte": MOMENT, "$lt": later}}


@pytest.mark.parametrize("params,match", [
    ({"from": "2026-01-02T03:04Z", "to": "2026-01-02T03:04Z"}, "from|before|to"),
    ({"from": "1000", "to": "999"}, "from|before|to"),
    ({"begin": "2026-01-02T03:04:00.001Z", "end": "2026-01-02T04:04+01:00"}, "begin|from|before|end"),
    ({"from": "1767225600001", "to": "1767225600000"}, "from|before|to"),
    ({"from": "2026-01-01T00:00:00.001Z", "end": "1767225600000"}, "from|before|end"),
    # 00:30Z is after 01:00+01:00 (= 00:00Z): the zone is honoured when comparing.
    ({"from": "2026-01-01T00:30Z", "to": "2026-01-01T01:00+01:00"}, "from|before|to"),
    ({"from": "1", "begin": "1"}, "begin"),
    ({"to": "2", "end": "2"}, "end"),
])
def test_bad_time_ranges(params, match):
    refused(lambda: parse(params), match)


@pytest.mark.parametrize("value", [
    "yesterday", "", "12ab", "0x10", "1.5e12", "2026-01-02", "2026-1-01T00:00",
    "2026-01-02 03:04", "2026-01-02T03:04ZZ", "2026-01-02T03:04+1",
    "2026-13-01T00:00", "2026-02-30T00:00", "2026-01-01T24:00", "2026-01-01T00:60", "2026-01-01T00:00:61",
    "2026-01-01T00:00+05:99", "2026-01-01T00:00+24:00", "2026-01-01T00:00-25:00",
])
@pytest.mark.parametrize("key", ["from", "to", "begin", "end"])
def test_bad_time_values(key, value):
    refused(lambda: parse({key: value}), key)


# --- property equality -----------------------------------------------------------------------------

@pytest.mark.parametrize("key,raw,expected", [
    ("count", "3", 3), ("count", "-4", -4),
    ("score", "2.5", 2.5), ("score", "2", 2), ("score", "-0.5", -0.5),
    ("flag", "true", True), ("flag", "false", False),
    ("ref", REF, ObjectId(REF)),
    ("when", "2026-01-02T05:04:05.678+02:00", MOMENT),
    ("when", "2026-01-02T03:04", MOMENT.replace(second=0, microsecond=0)),
    ("name", "3", "3"), ("name", "true", "true"),
    ("tags", "x", "x"),
])
def test_property_equality_values_are_typed(key, raw, expected):
    (field, value), = utc(parse({key: raw}).filter).items()
    assert field == key and value == expected and type(value) is type(expected)


def test_several_conditions_are_all_required():
    q = parse({"count": "3", "flag": "true", "from": "0", "filter": json.dumps({"name": {"$ne": "x"}})})
    parts = utc(clauses(q.filter))
    expected = [{"count": 3}, {"flag": True}, {"createdAt": {"$gte": EPOCH}}, {"name": {"$ne": "x"}}]
    assert len(parts) == len(expected) and all(c in parts for c in expected)


@pytest.mark.parametrize("key,value", [
    ("count", "three"), ("count", "1.5"), ("count", "true"), ("count", ""),
    ("score", "x"), ("score", ""), ("score", "NaN"),
    ("flag", "yes"), ("flag", "1"), ("flag", ""),
    ("ref", "nope"), ("ref", REF[:-1]), ("ref", "z" * 24),
    ("when", "soon"), ("when", "2026-02-30T00:00"), ("when", "2026-01-01"), ("when", "2026-01-01T00:00+24:00"),
])
def test_property_equality_refuses_a_bad_value(key, value):
    refused(lambda: parse({key: value}), key)


@pytest.mark.parametrize("key", ["undeclared", "Name", "nested.a", "pin", "_id", "owner", "createdAt", "bogus", "skip",
                                 "page", "fields", "q", "Limit", "$where", "filter[name]"])
def test_only_declared_readable_top_level_properties_and_known_parameters(key):
    refused(lambda: parse({key: "1"}), re.escape(key))


@pytest.mark.parametrize("key,values", [
    ("limit", ["1", "2"]), ("offset", ["0", "0"]), ("offset", ["0", "1"]), ("filter", ["{}", "{}"]),
    ("sort", ["name", "count"]), ("only", ["name", "name"]), ("meta", ["true", "false"]), ("meta", ["true", "true"]),
    ("from", ["1", "2"]), ("begin", ["1", "2"]),
    ("count", ["1", "2"]), ("name", ["a", "a"]),
])
def test_a_parameter_given_twice(key, values):
    refused(lambda: parse([(key, v) for v in values]), key)


# --- filter ------------------------------------------------------------------------------------------

KEPT = [
    {"count": {"$eq": 2}}, {"count": {"$ne": 3}}, {"count": {"$gt": 1, "$lte": 3}}, {"score": {"$gte": 2, "$lt": 3.5}},
    {"name": {"$in": ["a", "b"]}}, {"name": {"$nin": ["a"]}}, {"score": {"$exists": False}},
    {"$and": [{"flag": True}, {"count": {"$gt": 1}}]}, {"$or": [{"name": "a"}, {"count": 2}]},
    {"$nor": [{"flag": True}]}, {"count": {"$not": {"$gt": 1}}}, {"name": {"$regex": "^a"}},
    {"name": {"$regex": "a?" * 128}}, {"name": {"$not": {"$regex": "^a"}}}, {"tags": {"$size": 2}},
    {"tags": {"$all": ["x", "y"]}}, {"tags": {"$elemMatch": {"$eq": "y"}}}, {"tags": "y"},
    {"nested.a": {"$gte": 2}}, {"nested.b": "p"}, {"nested": {"a": 3}}, {"nested.zz": 1}, {"group": None},
    {"access": {"$size": 0}}, {},
]


@pytest.mark.parametrize("flt", KEPT, ids=[json.dumps(f)[:40] for f in KEPT])
def test_allowed_filters_pass_through(flt):
    assert parse_filter(json.dumps(flt), THINGS) == flt


CONVERTED = [
    ({"ref": REF}, {"ref": ObjectId(REF)}),
    ({"ref": {"$ne": REF}}, {"ref": {"$ne": ObjectId(REF)}}),
    ({"ref": {"$in": [REF, REF2]}}, {"ref": {"$in": [ObjectId(REF), ObjectId(REF2)]}}),
    ({"ref": {"$nin": [REF]}}, {"ref": {"$nin": [ObjectId(REF)]}}),
    ({"ref": {"$not": {"$eq": REF}}}, {"ref": {"$not": {"$eq": ObjectId(REF)}}}),
    ({"when": "2026-01-02T05:04:05.678+02:00"}, {"when": MOMENT}),
    ({"when": {"$gte": "2026-01-02T03:04:05.678Z", "$lt": "2026-01-02T04:04+01:00"}},
     {"when": {"$gte": MOMENT, "$lt": MOMENT.replace(second=0, microsecond=0)}}),
    ({"when": {"$in": ["2026-01-02T03:04:05.678"]}}, {"when": {"$in": [MOMENT]}}),
    ({"_id": REF}, {"_id": ObjectId(REF)}),
    ({"_id": {"$gt": REF}}, {"_id": {"$gt": ObjectId(REF)}}),
    ({"owner": {"$in": [REF]}}, {"owner": {"$in": [ObjectId(REF)]}}),
    ({"group": REF}, {"group": ObjectId(REF)}),
    ({"access": REF}, {"access": ObjectId(REF)}),
    ({"branch": {"$all": [REF]}}, {"branch": {"$all": [ObjectId(REF)]}}),
    ({"createdAt": {"$lt": "2026-01-02T03:04:05.678Z"}}, {"createdAt": {"$lt": MOMENT}}),
    ({"updatedAt": "2026-01-01T21:34:05.678-05:30"}, {"updatedAt": MOMENT}),
    ({"$or": [{"ref": REF}, {"createdAt": {"$gte": "2026-01-02T03:04:05.678Z"}}]},
     {"$or": [{"ref": ObjectId(REF)}, {"createdAt": {"$gte": MOMENT}}]}),
]


@pytest.mark.parametrize("flt,expected", CONVERTED, ids=[json.dumps(f)[:40] for f, _ in CONVERTED])
def test_objectid_and_date_time_values_are_compared_by_value(flt, expected):
    assert utc(parse_filter(json.dumps(flt), THINGS)) == expected


REFUSED = [
    ({"$where": "true"}, r"\$where"),
    ({"$expr": {"$eq": ["$count", 1]}}, r"\$expr"),
    ({"name": {"$function": {"body": "return true", "args": [], "lang": "js"}}}, r"\$function"),
    ({"$text": {"$search": "a"}}, r"\$text"),
    ({"name": {"$regex": "a", "$options": "i"}}, r"\$options"),
    ({"count": {"$mod": [2, 0]}}, r"\$mod"),
    ({"count": {"$type": "int"}}, r"\$type"),
    ({"$comment": "x"}, r"\$comment"),
    ({"$and": [{"$where": "true"}]}, r"\$where"),
    ({"tags": {"$elemMatch": {"$where": "true"}}}, r"\$where"),
    ({"tags": {"$elemMatch": {"x": {"$where": "true"}}}}, r"\$where"),
    ({"count": {"$gt": 1, "a": 2}}, "operator"),
    ({"name": {"$regex": "a" * 257}}, r"\$regex"),
    ({"name": {"$regex": "("}}, r"\$regex|regular expression"),
    ({"name": {"$regex": 5}}, r"\$regex"),
    ({"undeclared": 1}, "undeclared"),
    ({"$or": [{"undeclared": 1}]}, "undeclared"),
    ({"pin": "1234"}, "pin"),
    ({"pin": {"$exists": True}}, "pin"),
    ({"$nor": [{"pin": "1234"}]}, "pin"),
    ({"pin.x": 1}, "pin"),
    ({"nested.$a": 1}, r"nested\.\$a"),
    ({"nested": {"a": {"$gt": 1}}}, "operator"),
    ({"count": {"$in": [1, {"$gt": 0}]}}, "operator"),
    ({"count": {"$eq": {"$gt": 0}}}, "operator"),
    ({"$or": []}, r"\$or"),
    ({"$and": {"name": "a"}}, r"\$and"),
    ({"count": {"$in": 3}}, r"\$in"),
    ({"count": {"$exists": 1}}, r"\$exists"),
    ({"tags": {"$size": -1}}, r"\$size"),
    ({"count": {"$not": 3}}, r"\$not"),
    ({"ref": "not-an-id"}, "objectid"),
    ({"_id": "xyz"}, "objectid"),
    ({"when": "yesterday"}, "date-time"),
    ({"createdAt": {"$gt": "2026-01-01"}}, "date-time"),
    ({"when": "2026-01-01T00:00+24:00"}, "date-time"),
]


@pytest.mark.parametrize("flt,match", REFUSED, ids=[json.dumps(f)[:40] for f, _ in REFUSED])
def test_refused_filters(flt, match):
    refused(lambda: parse_filter(json.dumps(flt), THINGS), match)


@pytest.mark.parametrize("raw", ["{", '{"count": 1', "{'count': 1}", "", "[1]", '"x"', "3", "null", "true"])
def test_filter_must_be_a_json_object(raw):
    refused(lambda: parse_filter(raw, THINGS), "filter")


def nest(depth: int) -> dict[str, Any]:
    flt: dict[str, Any] = {"count": 2}
    for _ in range(depth):
        flt = {"$and": [flt]}
    return flt


def test_filter_nesting_is_bounded():
    assert parse_filter(json.dumps(nest(5)), THINGS) == nest(5)
    refused(lambda: parse_filter(json.dumps(nest(40)), THINGS), "deep|nest")


def test_filter_parameter_goes_through_the_whitelist():
    refused(lambda: parse({"filter": '{"$where": "true"}'}), r"\$where")
    assert utc(parse({"filter": json.dumps({"ref": REF})}).filter) == {"ref": ObjectId(REF)}


# --- sort ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sort,expected", [
    ("name", [("name", 1), ("_id", 1)]),
    ("name,-count", [("name", 1), ("count", -1), ("_id", 1)]),
    ("-createdAt", [("createdAt", -1), ("_id", 1)]),
    ("nested.a", [("nested.a", 1), ("_id", 1)]),
    ("-_id", [("_id", -1)]),
    ("count,-_id", [("count", 1), ("_id", -1)]),
    ("owner,updatedAt", [("owner", 1), ("updatedAt", 1), ("_id", 1)]),
])
def test_sort_keys_end_with_an_id_tie_breaker(sort, expected):
    assert [tuple(k) for k in parse({"sort": sort}).sort] == expected


@pytest.mark.parametrize("sort,match", [
    ("nope", "nope"), ("pin", "pin"), ("-pin", "pin"), ("Name", "Name"), ("name,-name", "twice|duplicate|name"),
    ("_id,-_id", "twice|duplicate|_id"), ("", "sort"), ("count,", "sort"), ("-", "sort"), ("--count", "count"),
    ("$natural", r"\$natural"), ("nested.$a", r"nested\.\$a"),
])
def test_bad_sorts(sort, match):
    refused(lambda: parse({"sort": sort}), match)


# --- write-only fields of the built-in users store ---------------------------------------------------

@pytest.mark.parametrize("params", [
    {"password": "secret-123"}, {"filter": '{"password": "secret-123"}'}, {"filter": '{"_auth": {"$exists": true}}'},
    {"sort": "password"}, {"sort": "-password"}, {"only": "password"}, {"only": "_auth"},
])
def test_user_secrets_are_never_filterable_sortable_or_selectable(params):
    refused(lambda: parse(params, USERS), "password|_auth")
    assert USERS.knows_field("login") and parse({"login": "admin"}, USERS).filter == {"login": "admin"}


SHAPED = compile_schema("shaped", {"type": "object", "properties": {
    "name": {"type": "string"}, "n": {"type": ["integer", "null"]},
    "free": {"type": "object"}, "any": {},
    "closed": {"type": "object", "properties": {"a": {"type": "integer"}, "deep": {"type": "object"}},
               "additionalProperties": False},
    "items": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}},
                                         "additionalProperties": False}},
    "tags": {"type": "array", "items": {"type": "string"}},
}})


@pytest.mark.parametrize("path", ["free.x.y", "any.x", "closed.a", "closed.deep.z", "items.x", "items.0.x", "items.0",
                                  "tags.0", "name", "tags"])
def test_a_sub_field_a_property_may_hold_is_known(path):
    assert SHAPED.knows_field(path)
    parse_filter(json.dumps({path: 1}), SHAPED)
    parse_list_query([("sort", path)], SHAPED)


@pytest.mark.parametrize("path", ["name.x", "n.x", "closed.b", "closed.a.b", "items.y", "items.0.y", "tags.x",
                                  "tags.0.x"])
def test_a_sub_field_no_value_of_the_property_can_hold_is_undeclared(path):
    """`name.x` of a string, an undeclared member of a closed object: 400 in `filter`, `sort` and
    `only`, as any undeclared field (they were taken, and matched nothing)."""
    assert not SHAPED.knows_field(path)
    for params in ([("filter", json.dumps({path: 1}))], [("sort", path)], [("only", path)]):
        with pytest.raises(BadRequest):
            parse_list_query(params, SHAPED)


MULTI = compile_schema("multi", {"type": "object", "properties": {
    "code": {"type": ["integer", "string"]}, "flag": {"type": ["boolean", "null"]}}})


@pytest.mark.parametrize("params,expected", [
    ([("code", "two")], {"code": "two"}),
    ([("code", "1")], {"code": {"$in": [1, "1"]}}),  # stored as the number or as the text
    ([("flag", "true")], {"flag": True}),
])
def test_a_property_of_several_types_is_matched_as_each_reads_the_parameter(params, expected):
    """A parameter that is not an integer was a 400 for `["integer", "string"]`, and "1" missed
    the entities holding the string "1"."""
    assert parse_list_query(params, MULTI).filter == expected


def test_a_parameter_no_type_of_the_property_reads_is_400():
    with pytest.raises(BadRequest, match="boolean"):
        parse_list_query([("flag", "yes")], MULTI)
