"""Lists: GET /api/v1/:store with every parameter of API.md section 7."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

REF_A, REF_B = "0123456789abcdef01234567", "76543210fedcba9876543210"
ROWS = [
    {"name": "alpha", "count": 1, "score": 1.5, "flag": True, "ref": REF_A, "when": "2026-01-01T00:00:00Z",
     "tags": ["x", "y"], "nested": {"a": 1, "b": "p"}},
    {"name": "beta", "count": 2, "score": 2.5, "flag": False, "ref": REF_B, "when": "2026-02-01T00:00:00Z",
     "tags": ["y"], "nested": {"a": 2, "b": "q"}},
    {"name": "gamma", "count": 3, "score": 3.5, "flag": True, "ref": REF_A, "when": "2026-03-01T00:00:00Z",
     "tags": [], "nested": {"a": 3}},
    {"name": "Delta", "count": 3, "flag": False},
]


@pytest.fixture
async def rows(client, admin):
    created = []
    for row in ROWS:
        r = await client.post("/api/v1/things", json=row, headers=admin)
        assert r.status_code == 201, r.text
        created.append(r.json())
        await asyncio.sleep(0.003)  # distinct createdAt values (millisecond precision)
    return created


async def names(client, admin, **params) -> list[str]:
    r = await client.get("/api/v1/things", params=params, headers=admin)
    assert r.status_code == 200, r.text
    return [d.get("name") for d in r.json()]


async def bad(client, admin, **params) -> str:
    r = await client.get("/api/v1/things", params=params, headers=admin)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["tags"] == ["error_bad_request"] and body["code"] == "400"
    return body["message"]


async def test_default_is_every_entity_oldest_first(client, admin, rows):
    assert await names(client, admin) == ["alpha", "beta", "gamma", "Delta"]


async def test_offset_and_limit(client, admin, rows):
    assert await names(client, admin, offset=1, limit=2) == ["beta", "gamma"]
    assert await names(client, admin, offset=10) == []
    assert await names(client, admin, limit=10000) == ["alpha", "beta", "gamma", "Delta"]


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "10001"}, {"limit": "-1"}, {"limit": "abc"}, {"offset": "-1"}, {"offset": "1.5"},
])
async def test_bad_paging_values(client, admin, params):
    assert list(params)[0] in await bad(client, admin, **params)


async def test_only_keeps_id_and_named_fields(client, admin, rows):
    r = await client.get("/api/v1/things", params={"only": "name,nested.a"}, headers=admin)
    assert r.json()[0] == {"_id": rows[0]["_id"], "name": "alpha", "nested": {"a": 1}}


@pytest.mark.parametrize("only", ["nope", "pin", "name,,count", "name,name"])
async def test_only_refuses_unknown_or_secret_fields(client, admin, only):
    await bad(client, admin, only=only)


async def test_meta_counts_and_bounds_the_same_filter(client, admin, rows):
    r = await client.get("/api/v1/things", params={"meta": "true", "flag": "true"}, headers=admin)
    meta = r.json()
    assert meta["total"] == 2
    assert meta["first"]["name"] == "alpha" and meta["last"]["name"] == "gamma"
    r = await client.get("/api/v1/things", params={"meta": "true", "name": "none"}, headers=admin)
    assert r.json() == {"total": 0, "first": None, "last": None}
    sorted_meta = (await client.get("/api/v1/things", params={"meta": "true", "sort": "-score"}, headers=admin)).json()
    assert sorted_meta["first"]["name"] == "gamma"


@pytest.mark.parametrize("params", [{"meta": "true", "offset": "0"}, {"meta": "true", "limit": "5"}, {"meta": "yes"}])
async def test_meta_refusals(client, admin, params):
    await bad(client, admin, **params)


async def test_from_to_bound_created_at(client, admin, rows):
    ms = [int(datetime.fromisoformat(d["createdAt"].replace("Z", "+00:00")).timestamp() * 1000) for d in rows]
    assert await names(client, admin, **{"from": str(ms[1])}) == ["beta", "gamma", "Delta"]
    assert await names(client, admin, to=str(ms[1])) == ["alpha"]
    assert await names(client, admin, begin=str(ms[1]), end=str(ms[3])) == ["beta", "gamma"]
    assert await names(client, admin, **{"from": str(ms[3] + 1)}) == []


@pytest.mark.parametrize("value", [
    "2026-01-01T00:00", "2026-01-01T00:00:00", "2026-01-01T00:00:00.000", "2026-01-01T00:00:00Z",
    "2026-01-01T02:00:00+02:00", "1767225600000",
])
async def test_time_forms_are_all_read_as_the_same_instant(client, admin, rows, value):
    # Every form names 2026-01-01T00:00:00Z: all entities were created after it, none before it.
    assert len(await names(client, admin, **{"from": value})) == 4
    assert await names(client, admin, to=value) == []


@pytest.mark.parametrize("params", [
    {"from": "yesterday"}, {"to": "2026-13-01T00:00"}, {"from": "2026-01-01"}, {"from": "5", "to": "5"},
    {"from": "10", "to": "5"}, {"from": "1", "begin": "1"}, {"to": "1", "end": "1"},
])
async def test_bad_time_ranges(client, admin, params):
    await bad(client, admin, **params)


@pytest.mark.parametrize("params,expected", [
    ({"count": "3"}, ["gamma", "Delta"]),
    ({"score": "2.5"}, ["beta"]),
    ({"flag": "false"}, ["beta", "Delta"]),
    ({"ref": REF_A}, ["alpha", "gamma"]),
    ({"when": "2026-02-01T00:00:00Z"}, ["beta"]),
    ({"when": "1769904000000"}, ["beta"]),
    ({"name": "beta"}, ["beta"]),
    ({"tags": "y"}, ["alpha", "beta"]),
    ({"count": "3", "flag": "true"}, ["gamma"]),
])
async def test_typed_property_filters(client, admin, rows, params, expected):
    assert await names(client, admin, **params) == expected


@pytest.mark.parametrize("params", [
    {"count": "three"}, {"count": "1.5"}, {"score": "x"}, {"flag": "yes"}, {"ref": "nope"}, {"when": "soon"},
    {"undeclared": "1"}, {"pin": "1234"}, {"Name": "alpha"},
])
async def test_bad_property_filters(client, admin, params):
    await bad(client, admin, **params)


FILTERS = [
    ({"count": {"$eq": 2}}, ["beta"]),
    ({"count": {"$ne": 3}}, ["alpha", "beta"]),
    ({"count": {"$gt": 1, "$lte": 3}}, ["beta", "gamma", "Delta"]),
    ({"score": {"$gte": 2.5, "$lt": 3.5}}, ["beta"]),
    ({"name": {"$in": ["alpha", "gamma"]}}, ["alpha", "gamma"]),
    ({"name": {"$nin": ["alpha", "gamma"]}}, ["beta", "Delta"]),
    ({"score": {"$exists": False}}, ["Delta"]),
    ({"$and": [{"flag": True}, {"count": {"$gt": 1}}]}, ["gamma"]),
    ({"$or": [{"name": "alpha"}, {"count": 2}]}, ["alpha", "beta"]),
    ({"$nor": [{"flag": True}, {"count": 2}]}, ["Delta"]),
    ({"count": {"$not": {"$gt": 1}}}, ["alpha"]),
    ({"name": {"$regex": "(?i)^d"}}, ["Delta"]),
    ({"name": {"$regex": "a$"}}, ["alpha", "beta", "gamma", "Delta"]),
    ({"tags": {"$size": 2}}, ["alpha"]),
    ({"tags": {"$all": ["x", "y"]}}, ["alpha"]),
    ({"tags": {"$elemMatch": {"$eq": "y"}}}, ["alpha", "beta"]),
    ({"nested.a": {"$gte": 2}}, ["beta", "gamma"]),
    ({"nested.b": "p"}, ["alpha"]),
    ({"ref": REF_B}, ["beta"]),
    ({"ref": {"$in": [REF_A]}}, ["alpha", "gamma"]),
    ({"when": {"$gte": "2026-02-01T00:00:00Z"}}, ["beta", "gamma"]),
    ({"when": {"$lt": "2026-01-15T00:00:00+01:00"}}, ["alpha"]),
]


@pytest.mark.parametrize("flt,expected", FILTERS, ids=[json.dumps(f[0]) for f in FILTERS])
async def test_filter_operators(client, admin, rows, flt, expected):
    assert await names(client, admin, filter=json.dumps(flt)) == expected


async def test_filter_on_system_fields_compares_by_value(client, admin, rows):
    second = rows[1]
    assert await names(client, admin, filter=json.dumps({"_id": second["_id"]})) == ["beta"]
    assert await names(client, admin, filter=json.dumps({"_id": {"$gt": second["_id"]}})) == ["gamma", "Delta"]
    after = json.dumps({"createdAt": {"$gte": second["createdAt"]}})
    assert "alpha" not in await names(client, admin, filter=after)
    assert await names(client, admin, filter=json.dumps({"owner": rows[0]["owner"]})) == [r["name"] for r in ROWS]


@pytest.mark.parametrize("flt", [
    {"$where": "1"}, {"$expr": {"$eq": [1, 1]}}, {"name": {"$function": {}}}, {"$text": {"$search": "a"}},
    {"name": {"$regex": "a", "$options": "i"}}, {"name": {"$regex": "a" * 257}}, {"name": {"$regex": "("}},
    {"undeclared": 1}, {"pin": "1234"}, {"pin": {"$exists": True}}, {"name": {"x": {"$gt": 1}}},
    {"$or": []}, {"$and": {"name": "a"}}, {"count": {"$in": 3}}, {"count": {"$exists": 1}}, {"tags": {"$size": -1}},
    {"ref": "not-an-id"}, {"when": "not-a-time"}, {"count": {"$not": 3}}, {"$or": [{"nested.$x": 1}]},
], ids=lambda f: json.dumps(f)[:40])
async def test_unsafe_or_invalid_filters_are_400(client, admin, rows, flt):
    await bad(client, admin, filter=json.dumps(flt))


@pytest.mark.parametrize("raw", ["{", "[1]", '"x"', '{"count": 1', "null"])
async def test_filter_must_be_a_json_object(client, admin, raw):
    await bad(client, admin, filter=raw)


async def test_filter_nesting_is_bounded(client, admin):
    flt: dict = {"count": 1}
    for _ in range(40):
        flt = {"$and": [flt]}
    await bad(client, admin, filter=json.dumps(flt))


async def test_sort(client, admin, rows):
    assert await names(client, admin, sort="-count,name") == ["Delta", "gamma", "beta", "alpha"]
    assert await names(client, admin, sort="nested.a") == ["Delta", "alpha", "beta", "gamma"]
    assert await names(client, admin, sort="-createdAt") == ["Delta", "gamma", "beta", "alpha"]


@pytest.mark.parametrize("sort", ["nope", "pin", "-pin", "name,-name", "", "count,"])
async def test_bad_sorts(client, admin, sort):
    await bad(client, admin, sort=sort)


async def test_paging_with_equal_sort_keys_never_repeats_or_skips(client, admin):
    ids = []
    for _ in range(25):
        r = await client.post("/api/v1/things", json={"count": 7}, headers=admin)
        ids.append(r.json()["_id"])
    seen = []
    for offset in range(0, 25, 7):
        r = await client.get("/api/v1/things", params={"sort": "-count", "offset": offset, "limit": 7}, headers=admin)
        seen += [d["_id"] for d in r.json()]
    assert sorted(seen) == sorted(ids) and len(seen) == 25


async def test_unknown_and_repeated_parameters(client, admin):
    assert "bogus" in await bad(client, admin, bogus="1")
    r = await client.get("/api/v1/things?limit=1&limit=2", headers=admin)
    assert r.status_code == 400 and "limit" in r.json()["message"]


async def test_time_bounds_use_milliseconds(client, admin, rows):
    newest = datetime.fromisoformat(rows[-1]["createdAt"].replace("Z", "+00:00"))
    def iso(t: datetime) -> str:
        return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert "Delta" in await names(client, admin, to=iso(newest + timedelta(milliseconds=1)))
    assert "Delta" not in await names(client, admin, to=iso(newest))
    assert await names(client, admin, **{"from": iso(newest)}) == ["Delta"]
