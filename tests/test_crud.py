"""Generic CRUD on /api/v1/:store (API.md sections 1 and 6)."""

from __future__ import annotations

import asyncio
import re

from storeengine.storage import Collection

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SYSTEM = {"_id", "owner", "group", "access", "branch", "createdAt", "updatedAt"}


async def create(client, headers, body, store="things"):
    r = await client.post(f"/api/v1/{store}", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r


async def test_create_answers_201_with_location_etag_and_system_fields(client, admin):
    r = await create(client, admin, {"name": "a", "count": 1})
    doc = r.json()
    assert SYSTEM <= doc.keys()
    assert re.fullmatch(r"[0-9a-f]{24}", doc["_id"])
    assert r.headers["location"] == f"/api/v1/things/{doc['_id']}"
    assert r.headers["etag"].startswith('"')
    assert ISO_MS.match(doc["createdAt"]) and doc["createdAt"] == doc["updatedAt"]
    assert doc["access"] == [] and doc["branch"] == []
    me = (await client.get("/api/v1/auth/me", headers=admin)).json()
    assert doc["owner"] == me["_id"]


async def test_get_returns_the_entity_with_its_etag(client, admin):
    created = await create(client, admin, {"name": "a"})
    r = await client.get(f"/api/v1/things/{created.json()['_id']}", headers=admin)
    assert r.status_code == 200
    assert r.json() == created.json()
    assert r.headers["etag"] == created.headers["etag"]


async def test_patch_is_a_merge_patch(client, admin):
    doc = (await create(client, admin, {"name": "a", "count": 1, "nested": {"a": 1, "b": "x"}})).json()
    r = await client.patch(f"/api/v1/things/{doc['_id']}", json={"nested": {"a": 2}, "count": None, "flag": True},
                           headers=admin)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["nested"] == {"a": 2, "b": "x"}
    assert "count" not in patched
    assert patched["flag"] is True and patched["name"] == "a"
    assert patched["createdAt"] == doc["createdAt"] and patched["updatedAt"] > doc["updatedAt"]
    assert (await client.get(f"/api/v1/things/{doc['_id']}", headers=admin)).json() == patched


async def test_patch_result_must_validate(client, admin):
    doc = (await create(client, admin, {"name": "W", "price": 1}, store="products")).json()
    r = await client.patch(f"/api/v1/products/{doc['_id']}", json={"name": None}, headers=admin)
    assert r.status_code == 400
    assert r.json()["fields"] == {"name": "is required"}
    assert (await client.get(f"/api/v1/products/{doc['_id']}", headers=admin)).json()["name"] == "W"


async def test_put_replaces_the_body_and_keeps_system_fields(client, admin):
    doc = (await create(client, admin, {"name": "a", "count": 1})).json()
    r = await client.put(f"/api/v1/things/{doc['_id']}", json={"score": 2.5}, headers=admin)
    assert r.status_code == 200, r.text
    put = r.json()
    assert "name" not in put and "count" not in put and put["score"] == 2.5
    for key in ("_id", "owner", "group", "access", "branch", "createdAt"):
        assert put[key] == doc[key]
    assert put["updatedAt"] > doc["updatedAt"]


async def test_delete_then_gone(client, admin):
    doc = (await create(client, admin, {"name": "a"})).json()
    r = await client.delete(f"/api/v1/things/{doc['_id']}", headers=admin)
    assert r.status_code == 200
    assert r.json() == {"success": True, "_id": doc["_id"]}
    assert (await client.get(f"/api/v1/things/{doc['_id']}", headers=admin)).status_code == 404
    assert (await client.delete(f"/api/v1/things/{doc['_id']}", headers=admin)).status_code == 404


async def test_etag_changes_on_every_write_and_if_match_guards_writes(client, admin):
    created = await create(client, admin, {"name": "a"})
    url = f"/api/v1/things/{created.json()['_id']}"
    stale = created.headers["etag"]
    r = await client.patch(url, json={"count": 1}, headers={**admin, "If-Match": stale})
    assert r.status_code == 200
    fresh = r.headers["etag"]
    assert fresh != stale
    for method, body in (("PATCH", {"count": 9}), ("PUT", {"name": "z"}), ("DELETE", None)):
        r = await client.request(method, url, json=body, headers={**admin, "If-Match": stale})
        assert r.status_code == 412, method
        assert r.json()["tags"] == ["error_precondition_failed"]
    current = (await client.get(url, headers=admin)).json()
    assert current["count"] == 1 and current["name"] == "a"
    assert (await client.put(url, json={"name": "b"}, headers={**admin, "If-Match": "*"})).status_code == 200
    etag = (await client.get(url, headers=admin)).headers["etag"]
    assert (await client.delete(url, headers={**admin, "If-Match": etag})).status_code == 200


async def test_formats_are_stored_natively_and_sent_as_strings(client, admin):
    ref = "0123456789abcdef01234567"
    doc = (await create(client, admin, {"ref": ref, "when": "2026-01-02T03:04:05+02:00"})).json()
    assert doc["ref"] == ref
    assert doc["when"] == "2026-01-02T01:04:05.000Z"
    r = await client.get("/api/v1/things", params={"filter": '{"when": {"$gt": "2026-01-02T01:00:00Z"}}'},
                         headers=admin)
    assert [d["_id"] for d in r.json()] == [doc["_id"]]


async def test_write_only_field_is_never_returned(client, admin):
    r = await create(client, admin, {"name": "s", "pin": "secret-pin"})
    doc = r.json()
    assert "pin" not in doc and "secret-pin" not in r.text
    url = f"/api/v1/things/{doc['_id']}"
    for r in (await client.get(url, headers=admin), await client.patch(url, json={"pin": "other-pin"}, headers=admin),
              await client.get("/api/v1/things", headers=admin)):
        assert r.status_code == 200
        assert "pin" not in r.text and "argon2" not in r.text


async def test_concurrent_patches_of_different_fields_are_all_kept(client, admin, monkeypatch):
    # The embedded database never yields inside a call; yield after each read so that the
    # PATCHes really interleave between read and write, as they do over a network.
    real_find_one, lost_races = Collection.find_one, []
    real_update_if = Collection.update_if

    async def find_one(self, *args, **kwargs):
        doc = await real_find_one(self, *args, **kwargs)
        await asyncio.sleep(0)
        return doc

    async def update_if(self, *args, **kwargs):
        ok = await real_update_if(self, *args, **kwargs)
        lost_races.extend([] if ok else [1])
        return ok

    monkeypatch.setattr(Collection, "find_one", find_one)
    monkeypatch.setattr(Collection, "update_if", update_if)
    # notes.json allows extra properties, so each PATCH can set a field of its own.
    note = (await create(client, admin, {"title": "t"}, store="notes")).json()
    url = f"/api/v1/notes/{note['_id']}"
    fields = [f"f{i}" for i in range(20)]
    results = await asyncio.gather(*(client.patch(url, json={f: i}, headers=admin) for i, f in enumerate(fields)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
    final = (await client.get(url, headers=admin)).json()
    assert {f: final.get(f) for f in fields} == {f: i for i, f in enumerate(fields)}
    assert lost_races, "the writes never raced; the test would not catch a lost update"


async def test_unique_index_violation_is_409_and_not_written(client, admin):
    await create(client, admin, {"name": "a", "price": 1, "sku": "SKU-1"}, store="products")
    r = await client.post("/api/v1/products", json={"name": "b", "price": 2, "sku": "SKU-1"}, headers=admin)
    assert r.status_code == 409
    assert r.json()["tags"] == ["error_conflict"]
    names = [d["name"] for d in (await client.get("/api/v1/products", headers=admin)).json()]
    assert names == ["a"]
