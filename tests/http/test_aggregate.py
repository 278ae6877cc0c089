"""GET /api/v1/:store/_aggregate (API.md section 14) over the `things` rows of test_lists."""

from __future__ import annotations

import json

import pytest

from storeengine.model import aggregate
from tests.http.test_lists import expect_refused, rows  # noqa: F401  (rows: a fixture)

AGG = "/api/v1/things/_aggregate"


async def agg(client, headers, params) -> list:
    r = await client.get(AGG, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.lanes("embedded", "wire")
async def test_group_count_and_accumulators(client, admin, rows):  # noqa: F811
    got = await agg(client, admin, {"group": "flag", "count": "true", "sum": "count,score", "avg": "score",
                                    "min": "name", "max": "when"})
    assert got == [
        {"group": {"flag": None}, "count": 1, "sum": {"count": -4, "score": -0.5}, "avg": {"score": -0.5},
         "min": {"name": "3"}, "max": {"when": None}},
        {"group": {"flag": False}, "count": 2, "sum": {"count": 5, "score": 2}, "avg": {"score": 2.0},
         "min": {"name": "Delta"}, "max": {"when": "2026-02-01T12:30:00.250Z"}},
        {"group": {"flag": True}, "count": 2, "sum": {"count": 4, "score": 5.0}, "avg": {"score": 2.5},
         "min": {"name": "alpha"}, "max": {"when": "2026-03-01T00:00:00.000Z"}},
    ]


@pytest.mark.lanes("embedded", "wire")
async def test_date_buckets_in_utc(client, admin, rows):  # noqa: F811
    assert await agg(client, admin, {"group": "when:month", "count": "true"}) == [
        {"group": {"when:month": None}, "count": 2},
        {"group": {"when:month": "2026-01-01T00:00:00.000Z"}, "count": 1},
        {"group": {"when:month": "2026-02-01T00:00:00.000Z"}, "count": 1},
        {"group": {"when:month": "2026-03-01T00:00:00.000Z"}, "count": 1},
    ]
    dated = '{"when": {"$exists": true}}'
    assert await agg(client, admin, {"group": "when:year,flag", "count": "true", "filter": dated}) == [
        {"group": {"when:year": "2026-01-01T00:00:00.000Z", "flag": False}, "count": 1},
        {"group": {"when:year": "2026-01-01T00:00:00.000Z", "flag": True}, "count": 2},
    ]
    hours = await agg(client, admin, {"group": "when:hour", "filter": '{"when": {"$exists": true}}'})
    assert [g["group"]["when:hour"] for g in hours] == [
        "2026-01-01T00:00:00.000Z", "2026-02-01T12:00:00.000Z", "2026-03-01T00:00:00.000Z"]
    days = await agg(client, admin, {"group": "createdAt:day", "count": "true"})
    assert len(days) in (1, 2) and sum(g["count"] for g in days) == 5


@pytest.mark.lanes("embedded", "wire")
async def test_filters_of_lists_apply(client, admin, rows):  # noqa: F811
    assert await agg(client, admin, {"group": "flag", "count": "true", "filter": '{"count": {"$gte": 2}}'}) == [
        {"group": {"flag": False}, "count": 2}, {"group": {"flag": True}, "count": 1}]
    assert await agg(client, admin, {"count": "true", "ref": rows[0]["ref"]}) == [{"group": {}, "count": 2}]
    assert await agg(client, admin, {"count": "true", "to": rows[0]["createdAt"]}) == []
    nested = '{"nested": {"$exists": true}}'
    assert await agg(client, admin, {"count": "true", "group": "nested.a", "filter": nested}) == [
        {"group": {"nested.a": 1}, "count": 1}, {"group": {"nested.a": 2}, "count": 1},
        {"group": {"nested.a": 3}, "count": 1}]


@pytest.mark.lanes("embedded", "wire")
async def test_only_readable_entities_count(client, admin, users):
    _, alice = await users.user("alice")
    _, bob = await users.user("bob")
    for i in range(5):
        await client.post("/api/v1/things", json={"count": i, "flag": i % 2 == 0}, headers=alice if i < 2 else bob)
    assert await agg(client, alice, {"group": "flag", "count": "true", "sum": "count"}) == [
        {"group": {"flag": False}, "count": 1, "sum": {"count": 1}},
        {"group": {"flag": True}, "count": 1, "sum": {"count": 0}}]
    assert await agg(client, admin, {"count": "true"}) == [{"group": {}, "count": 5}]


@pytest.mark.lanes("embedded", "wire")
async def test_too_many_groups_is_a_400(client, admin, rows, monkeypatch):  # noqa: F811
    monkeypatch.setattr(aggregate, "MAX_GROUPS", 2)
    await expect_refused(client, admin, [({"group": "name", "count": "true"}, "more than 2 groups")], url=AGG)
    assert len(await agg(client, admin, {"group": "flag", "filter": '{"flag": {"$exists": true}}'})) == 2


@pytest.mark.parametrize(("params", "pattern"), [
    ({"sum": "name"}, "not a numeric"),
    ({"avg": "flag"}, "not a numeric"),
    ({"sum": "when"}, "not a numeric"),
    ({"avg": "createdAt"}, "not a numeric"),
    ({"sum": "pin"}, "unknown or forbidden"),
    ({"group": "name,count,score,flag,ref,when"}, "at most 5"),
    ({"group": "name:day"}, "date-time"),
    ({"group": "when:week"}, "date-time"),
    ({"group": "when:"}, "date-time"),
    ({"expand": "ref"}, "not taken by this request"),
    ({"group": "nope"}, "unknown"),
    ({"group": "flag,flag"}, "twice"),
    ({"min": "when:day"}, "unit"),
    ({"count": "yes"}, "true or false"),
    ({"offset": "1"}, "not a parameter"),
    ({"sort": "name"}, "not a parameter"),
    ({"after": "x"}, "not a parameter"),
    ({"filter": json.dumps({"name": {"$where": "1"}})}, "not allowed"),
    ({"filter": json.dumps({"name": {"$regex": "(a)\\1"}})}, "regex|RE2|backreference|invalid"),
    ({"bogus": "1"}, "Unknown parameter"),
])
async def test_refusals(client, admin, params, pattern):
    await expect_refused(client, admin, [(params, pattern)], url=AGG)


@pytest.mark.lanes("embedded", "wire")
async def test_a_sum_past_64_bits_is_a_double_as_in_mongodb(client, admin):
    for _ in range(3):
        r = await client.post("/api/v1/things", json={"name": "big", "count": 2**62}, headers=admin)
        assert r.status_code == 201, r.text
    got = await agg(client, admin, {"sum": "count", "filter": '{"name": "big"}'})
    assert got == [{"group": {}, "sum": {"count": float(3 * 2**62)}}]
    assert isinstance(got[0]["sum"]["count"], float)  # not an integer no client could store
