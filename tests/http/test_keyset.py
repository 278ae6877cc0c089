"""Keyset paging (API.md section 14): X-Next-After on full pages, `after=<token>` resumes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from bson import ObjectId

from storeengine.model.keyset import Keyset
from tests.http.test_lists import URL, expect_refused, listing, rows  # noqa: F401  (rows: a fixture)

SORTS = ["_id", "-_id", "name", "-name", "count", "-count", "score", "-score", "when", "-when", "flag", "-flag",
         "ref", "-ref", "createdAt", "-updatedAt", "count,-name", "-flag,score", "owner", "-group"]


async def walk(client, headers, params: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """Every page through X-Next-After: the entities in order, and the number of requests."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    requests = 0
    while True:
        r = await client.get(URL, params={**params, **({"after": after} if after else {})}, headers=headers)
        requests += 1
        assert r.status_code == 200, r.text
        page = r.json()
        out += page
        after = r.headers.get("X-Next-After")
        if after is None:
            assert len(page) < int(params.get("limit", "10000")), "a full page carries X-Next-After"
            return out, requests
        assert len(page) == int(params["limit"])


async def more_rows(client, admin) -> None:
    """Ties and missing values for every sort key."""
    for row in [{"name": "alpha", "count": 1}, {"count": 3}, {"name": "beta", "score": 2}, {}, {"flag": True}]:
        assert (await client.post(URL, json=row, headers=admin)).status_code == 201


@pytest.mark.lanes("embedded", "wire")
async def test_token_pages_give_the_whole_list_in_every_sort(client, admin, rows):  # noqa: F811
    await more_rows(client, admin)
    problems = []
    for sort in SORTS:
        for limit in ("1", "2", "3"):
            whole = await listing(client, admin, {"sort": sort})
            paged, requests = await walk(client, admin, {"sort": sort, "limit": limit})
            if [d["_id"] for d in paged] != [d["_id"] for d in whole]:
                problems.append(f"sort={sort} limit={limit}")
            assert requests == len(whole) // int(limit) + 1
    assert not problems, problems


async def test_token_paging_with_a_filter_and_only(client, admin, rows):  # noqa: F811
    await more_rows(client, admin)
    params = {"sort": "-count", "filter": '{"count": {"$gte": 1}}', "only": "name", "limit": "2"}
    whole = await listing(client, admin, {k: v for k, v in params.items() if k != "limit"})
    paged, _ = await walk(client, admin, params)
    assert paged == whole
    assert all(set(d) <= {"_id", "name"} for d in paged)  # the sort key fetched for the token stays out


@pytest.mark.lanes("embedded", "wire")
async def test_concurrent_writes_neither_repeat_nor_skip(client, admin):
    ids = []
    for i in range(10):
        r = await client.post(URL, json={"count": i}, headers=admin)
        ids.append(r.json()["_id"])
    r = await client.get(URL, params={"sort": "count", "limit": "4"}, headers=admin)
    seen = [d["_id"] for d in r.json()]
    # Between pages: the first page's entities move later, one unseen is deleted, new ones appear
    # on both sides of the cursor.
    for moved in ids[:2]:
        await client.patch(f"{URL}/{moved}", json={"count": 100}, headers=admin)
    await client.delete(f"{URL}/{ids[7]}", headers=admin)
    before = (await client.post(URL, json={"count": -1}, headers=admin)).json()["_id"]
    late = (await client.post(URL, json={"count": 50}, headers=admin)).json()["_id"]
    after = r.headers["X-Next-After"]
    while after:
        r = await client.get(URL, params={"sort": "count", "limit": "4", "after": after}, headers=admin)
        seen += [d["_id"] for d in r.json()]
        after = r.headers.get("X-Next-After")
    unchanged = set(ids[2:]) - {ids[7]}
    assert unchanged <= set(seen), "an entity whose sort keys did not change was skipped"
    assert late in seen and before not in seen
    # The moved ones come again (their sort keys changed): that is allowed; nothing else repeats.
    repeated = {i for i in seen if seen.count(i) > 1}
    assert repeated <= set(ids[:2])


async def test_access_rules_apply_to_token_pages(client, admin, users):
    _, alice = await users.user("alice")
    _, bob = await users.user("bob")
    for i in range(6):
        await client.post(URL, json={"count": i}, headers=alice if i % 2 else bob)
    paged, _ = await walk(client, alice, {"limit": "1", "sort": "count"})
    assert [d["count"] for d in paged] == [1, 3, 5]


def tamper(token: str) -> str:
    body, mac = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-3] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + mac


@pytest.mark.lanes("embedded", "wire")
async def test_bad_tokens_are_refused(client, admin, rows):  # noqa: F811
    r = await client.get(URL, params={"limit": "2", "sort": "count"}, headers=admin)
    token = r.headers["X-Next-After"]
    await expect_refused(client, admin, [
        ({"after": token, "offset": "1", "sort": "count"}, "offset"),
        ({"after": token, "meta": "true", "sort": "count"}, "meta"),
        ({"after": token, "sort": "-count"}, "another sort"),
        ({"after": token}, "another sort"),
        ({"after": tamper(token), "sort": "count"}, "modified"),
        ({"after": token[:-2], "sort": "count"}, "token"),
        ({"after": "x", "sort": "count"}, "token"),
        ({"after": "", "sort": "count"}, "token"),
        ({"after": token, "sort": "tags"}, "cannot be paged"),
    ])
    # Forged: well-formed tokens of this store and sort, made without the server's secret.
    forged = Keyset("another secret of at least 32 bytes!!").token("things", [("count", 1), ("_id", 1)],
                                                                   {"count": 1, "_id": ObjectId()})
    unsigned = forged.split(".")[0] + "." + base64.urlsafe_b64encode(bytes(18)).rstrip(b"=").decode()
    await expect_refused(client, admin, [({"after": forged, "sort": "count"}, "not from this server"),
                                         ({"after": unsigned, "sort": "count"}, "not from this server")])
    plain = (await client.get(URL, params={"limit": "2"}, headers=admin)).headers["X-Next-After"]
    await expect_refused(client, admin, [({"after": plain}, "another store")], url="/api/v1/notes")


async def test_sorts_that_cannot_be_resumed_get_no_token(client, admin, rows):  # noqa: F811
    for sort in ("tags", "nested.a", "access"):
        r = await client.get(URL, params={"limit": "1", "sort": sort}, headers=admin)
        assert r.status_code == 200 and "X-Next-After" not in r.headers


@pytest.mark.lanes("embedded", "wire")
async def test_token_pages_cross_the_types_a_key_held_before_its_schema_changed(client, admin, schema_dir):
    """A key declared of one type still holds the values of another written before its schema
    changed: the pages go on past the last value of one type into the next, both ways."""
    import asyncio
    import json

    url = "/api/v1/evolving"

    async def define(kind: dict[str, Any]) -> None:
        schema = {"type": "object", "properties": {"v": kind}}
        (schema_dir / "evolving.json").write_text(json.dumps(schema))
        for _ in range(100):
            status = (await client.get("/api/v1/_schemas", headers=admin)).json().get("evolving")
            if status and status["schema"] == schema:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the schema file was not loaded")

    values: list[Any] = [[0, 1, 2.5, 3], ["a", "b", "c"], [True, False], [None]]
    for kind, batch in zip(({"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "string"}),
                           values, strict=True):
        await define(kind)
        for v in batch:
            r = await client.post(url, json={} if v is None else {"v": v}, headers=admin)
            assert r.status_code == 201, r.text
    await define({"type": "string", "format": "objectid"})
    r = await client.post(url, json={"v": str(ObjectId())}, headers=admin)
    assert r.status_code == 201, r.text
    for sort in ("v", "-v", "v,-_id"):
        whole = (await client.get(url, params={"sort": sort}, headers=admin)).json()
        assert len(whole) == 11
        out: list[str] = []
        after = None
        for _ in range(12):  # a resume that went backwards would never end
            params = {"sort": sort, "limit": "2", **({"after": after} if after else {})}
            r = await client.get(url, params=params, headers=admin)
            assert r.status_code == 200, r.text
            out += [d["_id"] for d in r.json()]
            after = r.headers.get("X-Next-After")
            if after is None:
                break
        assert out == [d["_id"] for d in whole], sort
