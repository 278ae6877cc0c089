"""Entities on generic stores: POST/GET/PATCH/PUT/DELETE, ETags, formats (API.md sections 1, 2, 6)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

# Each test runs on the embedded database and over the MongoDB wire (tests/lanes.py).
LANES = ("embedded", "wire")

SYSTEM = ("_id", "owner", "group", "access", "branch", "createdAt", "updatedAt")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
HEX_ID = re.compile(r"[0-9a-f]{24}")
REF = "0123456789abcdef01234567"
PIN = "pin-secret-4711"


def url(store: str, entity_id: str | None = None) -> str:
    return f"/api/v1/{store}" + (f"/{entity_id}" if entity_id else "")


def body_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in SYSTEM}


def assert_error(r: httpx.Response, status: int, tag: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()
    assert err["success"] is False and err["code"] == str(status) and err["tags"][0] == tag
    assert isinstance(err["message"], str) and err["message"]
    return err


async def create(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any],
                 store: str = "things") -> httpx.Response:
    r = await client.post(url(store), json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r


async def fetch(client: httpx.AsyncClient, headers: dict[str, str], entity_id: str,
                store: str = "things") -> httpx.Response:
    r = await client.get(url(store, entity_id), headers=headers)
    assert r.status_code == 200, r.text
    return r


async def listing(client: httpx.AsyncClient, headers: dict[str, str], store: str = "things") -> list[dict[str, Any]]:
    r = await client.get(url(store), headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


# --- POST / GET ----------------------------------------------------------------------------

async def test_post_answers_201_with_location_etag_and_system_fields(client, admin):
    body = {"name": "a", "count": 3, "score": 1.5, "flag": False, "tags": ["x", "y"], "nested": {"a": 1, "b": "z"}}
    r = await create(client, admin, body)
    doc = r.json()
    assert set(SYSTEM) <= doc.keys()
    assert body_of(doc) == body
    assert HEX_ID.fullmatch(doc["_id"])
    assert r.headers["location"] == f"/api/v1/things/{doc['_id']}"
    assert r.headers["etag"]
    assert TIME.fullmatch(doc["createdAt"]) and TIME.fullmatch(doc["updatedAt"])
    assert doc["createdAt"] == doc["updatedAt"]
    me = (await client.get("/api/v1/auth/me", headers=admin)).json()
    assert doc["owner"] == me["_id"]
    assert doc["access"] == [] and doc["branch"] == []
    assert await listing(client, admin) == [doc]


@pytest.mark.parametrize("store,body", [
    ("things", {"name": "a"}),
    ("products", {"name": "Widget", "price": 9.5, "sku": "W-1", "dimensions": {"width": 1, "height": 2.5}}),
    ("orders", {"product": REF, "quantity": 2, "status": "new"}),
])
async def test_get_returns_the_created_entity_with_the_same_etag(client, admin, store, body):
    created = await create(client, admin, body, store)
    r = await fetch(client, admin, created.json()["_id"], store)
    assert r.json() == created.json()
    assert body_of(r.json()) == body
    assert r.headers["etag"] == created.headers["etag"]


# --- PATCH (RFC 7396) ------------------------------------------------------------------------

@pytest.mark.parametrize("start,patch,expected", [
    ({"name": "a", "nested": {"a": 1, "b": "x"}}, {"nested": {"a": 2}}, {"name": "a", "nested": {"a": 2, "b": "x"}}),
    ({"name": "a", "count": 1}, {"count": None}, {"name": "a"}),
    ({"name": "a", "nested": {"a": 1, "b": "x"}}, {"nested": {"b": None}}, {"name": "a", "nested": {"a": 1}}),
    ({"name": "a", "nested": {"a": 1}}, {"nested": None, "flag": True}, {"name": "a", "flag": True}),
    ({"name": "a"}, {"count": None}, {"name": "a"}),
    ({"tags": ["x", "y"]}, {"tags": ["z"]}, {"tags": ["z"]}),
    ({"name": "a"}, {"nested": {"a": 5, "b": None}}, {"name": "a", "nested": {"a": 5}}),
    ({"name": "a", "count": 1}, {}, {"name": "a", "count": 1}),
], ids=["nested-merge", "null-removes", "nested-null-removes", "null-removes-object", "null-on-absent",
        "array-replaced", "new-object-drops-nulls", "empty-patch"])
async def test_patch_is_a_json_merge_patch(client, admin, start, patch, expected):
    doc = (await create(client, admin, start)).json()
    r = await client.patch(url("things", doc["_id"]), json=patch, headers=admin)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert body_of(patched) == expected
    assert {k: patched[k] for k in SYSTEM if k != "updatedAt"} == {k: doc[k] for k in SYSTEM if k != "updatedAt"}
    assert patched["updatedAt"] > doc["updatedAt"]
    assert (await fetch(client, admin, doc["_id"])).json() == patched


@pytest.mark.parametrize("store,start,patch,fields", [
    ("products", {"name": "W", "price": 1}, {"name": None}, {"name"}),
    ("products", {"name": "W", "price": 1}, {"price": -1, "stock": 1.5}, {"price", "stock"}),
    ("products", {"name": "W", "price": 1, "dimensions": {"width": 1}}, {"dimensions": {"depth": 3}},
     {"dimensions.depth"}),
    ("things", {"nested": {"a": 1}}, {"nested": {"a": "two"}}, {"nested.a"}),
    ("orders", {"product": REF, "quantity": 1}, {"quantity": None, "status": "lost"}, {"quantity", "status"}),
])
async def test_patch_merged_result_must_validate(client, admin, store, start, patch, fields):
    created = await create(client, admin, start, store)
    doc = created.json()
    r = await client.patch(url(store, doc["_id"]), json=patch, headers=admin)
    err = assert_error(r, 400, "error_validation")
    assert set(err["fields"]) == fields
    after = await fetch(client, admin, doc["_id"], store)
    assert after.json() == doc and after.headers["etag"] == created.headers["etag"]


# --- PUT -------------------------------------------------------------------------------------

async def test_put_replaces_the_body_and_keeps_system_fields(client, admin):
    doc = (await create(client, admin, {"name": "a", "count": 1, "nested": {"a": 1}})).json()
    r = await client.put(url("things", doc["_id"]), json={"score": 2.5, "nested": {"b": "x"}}, headers=admin)
    assert r.status_code == 200, r.text
    put = r.json()
    assert body_of(put) == {"score": 2.5, "nested": {"b": "x"}}
    assert {k: put[k] for k in SYSTEM if k != "updatedAt"} == {k: doc[k] for k in SYSTEM if k != "updatedAt"}
    assert put["createdAt"] == doc["createdAt"]
    assert TIME.fullmatch(put["updatedAt"]) and put["updatedAt"] > doc["updatedAt"]
    assert (await fetch(client, admin, doc["_id"])).json() == put


async def test_put_body_must_validate_and_changes_nothing_when_it_does_not(client, admin):
    created = await create(client, admin, {"name": "W", "price": 1, "sku": "W-1"}, "products")
    doc = created.json()
    r = await client.put(url("products", doc["_id"]), json={"stock": -2}, headers=admin)
    err = assert_error(r, 400, "error_validation")
    assert set(err["fields"]) == {"name", "price", "stock"}
    after = await fetch(client, admin, doc["_id"], "products")
    assert after.json() == doc and after.headers["etag"] == created.headers["etag"]


# --- DELETE ----------------------------------------------------------------------------------

async def test_delete_answers_success_then_the_entity_is_gone(client, admin):
    doc = (await create(client, admin, {"name": "a"})).json()
    keep = (await create(client, admin, {"name": "b"})).json()
    r = await client.delete(url("things", doc["_id"]), headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "_id": doc["_id"]}
    for method, body in (("GET", None), ("PATCH", {"name": "c"}), ("PUT", {"name": "c"}), ("DELETE", None)):
        again = await client.request(method, url("things", doc["_id"]), json=body, headers=admin)
        assert_error(again, 404, "error_not_found")
    assert await listing(client, admin) == [keep]


# --- ETag / If-Match -------------------------------------------------------------------------

async def test_etag_on_every_entity_answer_changes_on_each_write(client, admin):
    r = await create(client, admin, {"name": "a"})
    entity_id = r.json()["_id"]
    seen = [r.headers["etag"]]
    for method, body in (("PATCH", {"count": 1}), ("PUT", {"name": "b"}), ("PATCH", {"name": "c"}),
                         ("PUT", {"name": "c"})):
        w = await client.request(method, url("things", entity_id), json=body, headers=admin)
        assert w.status_code == 200, w.text
        assert w.headers["etag"] not in seen
        seen.append(w.headers["etag"])
        assert (await fetch(client, admin, entity_id)).headers["etag"] == w.headers["etag"]


WRITES = [("PATCH", {"count": 7}), ("PUT", {"name": "replaced"}), ("DELETE", None)]


async def _entity_with_history(client, admin) -> tuple[str, str, str]:
    """An entity written twice: (id, its current ETag, the ETag it had before the last write)."""
    created = await create(client, admin, {"name": "a"})
    entity_id = created.json()["_id"]
    r = await client.patch(url("things", entity_id), json={"flag": True}, headers=admin)
    assert r.status_code == 200, r.text
    return entity_id, r.headers["etag"], created.headers["etag"]


@pytest.mark.parametrize("method,body", WRITES, ids=[w[0] for w in WRITES])
@pytest.mark.parametrize("form", ["exact", "star", "in-list"])
async def test_matching_if_match_lets_the_write_through(client, admin, method, body, form):
    entity_id, etag, stale = await _entity_with_history(client, admin)
    value = {"exact": etag, "star": "*", "in-list": f'"nope", {etag}'}[form]
    r = await client.request(method, url("things", entity_id), json=body, headers={**admin, "If-Match": value})
    assert r.status_code == 200, r.text
    if method == "DELETE":
        assert r.json() == {"success": True, "_id": entity_id}
        assert await listing(client, admin) == []
    else:
        assert r.headers["etag"] not in (etag, stale)
        assert (await fetch(client, admin, entity_id)).json() == r.json()


@pytest.mark.parametrize("method,body", WRITES, ids=[w[0] for w in WRITES])
@pytest.mark.parametrize("form", ["stale", "bogus", "weak"])
async def test_non_matching_if_match_is_412_and_changes_nothing(client, admin, method, body, form):
    entity_id, etag, stale = await _entity_with_history(client, admin)
    before = (await fetch(client, admin, entity_id)).json()
    value = {"stale": stale, "bogus": '"0000"', "weak": f"W/{etag}"}[form]
    r = await client.request(method, url("things", entity_id), json=body, headers={**admin, "If-Match": value})
    assert_error(r, 412, "error_precondition_failed")
    after = await fetch(client, admin, entity_id)
    assert after.json() == before and after.headers["etag"] == etag


# --- formats: objectid and date-time ---------------------------------------------------------

@pytest.mark.parametrize("given,expected", [
    ("2026-11-22T12:04:05.123+02:00", "2026-11-22T10:04:05.123Z"),
    ("2026-11-22T01:30:00.5-09:30", "2026-11-22T11:00:00.500Z"),
    ("2026-12-31T23:59:59.999-01:00", "2027-01-01T00:59:59.999Z"),
    ("2026-11-22T10:04:05Z", "2026-11-22T10:04:05.000Z"),
    ("2026-11-22T10:04:05.123456Z", "2026-11-22T10:04:05.123Z"),
])
async def test_objectid_and_date_time_fields_come_back_as_strings_in_utc(client, admin, given, expected):
    r = await create(client, admin, {"ref": REF, "when": given})
    doc = r.json()
    assert doc["ref"] == REF and doc["when"] == expected
    assert (await fetch(client, admin, doc["_id"])).json() == doc
    assert await listing(client, admin) == [doc]
    p = await client.patch(url("things", doc["_id"]), json={"when": "2026-01-01T00:00:00.000+05:00"}, headers=admin)
    assert p.status_code == 200, p.text
    assert p.json()["when"] == "2025-12-31T19:00:00.000Z" and p.json()["ref"] == REF


async def test_objectid_field_of_orders_is_a_string(client, admin):
    product = (await create(client, admin, {"name": "W", "price": 1}, "products")).json()
    order = (await create(client, admin, {"product": product["_id"], "quantity": 1,
                                          "deliverBy": "2026-11-22T10:04:05.123-05:00"}, "orders")).json()
    got = (await fetch(client, admin, order["_id"], "orders")).json()
    assert got["product"] == product["_id"] and got["deliverBy"] == "2026-11-22T15:04:05.123Z"


# --- writeOnly -------------------------------------------------------------------------------

async def test_write_only_field_is_never_returned(client, admin):
    r = await create(client, admin, {"name": "a", "pin": PIN})
    answers = [r]
    entity_id = r.json()["_id"]
    answers.append(await client.get(url("things", entity_id), headers=admin))
    answers.append(await client.patch(url("things", entity_id), json={"pin": PIN + "x", "count": 1}, headers=admin))
    answers.append(await client.patch(url("things", entity_id), json={"count": 2}, headers=admin))
    answers.append(await client.put(url("things", entity_id), json={"name": "b", "pin": PIN}, headers=admin))
    answers.append(await client.get(url("things"), headers=admin))
    answers.append(await client.get(url("things"), params={"meta": "true"}, headers=admin))
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        assert "pin" not in answer.text and PIN not in answer.text
    assert answers[3].json()["count"] == 2 and answers[4].json()["name"] == "b"


async def test_write_only_field_is_still_validated_without_echoing_it(client, admin):
    r = await client.post(url("things"), json={"name": "a", "pin": "12"}, headers=admin)
    err = assert_error(r, 400, "error_validation")
    assert set(err["fields"]) == {"pin"}
    assert '"12"' not in r.text
    assert await listing(client, admin) == []


async def test_a_write_only_value_s_rules_are_checked_on_what_is_sent_never_on_its_hash(client, admin, schema_dir):
    """A stored write-only value is a hash: a later write that leaves it as it is (PATCH of
    another field, PUT without it) is valid, and so is the entity for the schema's dry run;
    a new value is checked as sent, and leaving a required one out of a POST is refused."""
    schema = {"type": "object", "properties": {"t": {"type": "string"},
                                               "pin": {"type": "string", "pattern": "^[0-9]{4}$", "writeOnly": True}},
              "required": ["pin"]}
    (schema_dir / "pins.json").write_text(json.dumps(schema))
    for _ in range(50):
        r = await client.post(url("pins"), json={"t": "a", "pin": "1234"}, headers=admin)
        if r.status_code == 201:
            break
        await asyncio.sleep(0.1)
    assert r.status_code == 201, r.text
    entity = url("pins", r.json()["_id"])
    assert (await client.patch(entity, json={"t": "b"}, headers=admin)).status_code == 200
    assert (await client.put(entity, json={"t": "c"}, headers=admin)).status_code == 200
    assert set(assert_error(await client.patch(entity, json={"pin": "12a4"}, headers=admin), 400,
                            "error_validation")["fields"]) == {"pin"}
    assert (await client.patch(entity, json={"pin": "9876"}, headers=admin)).status_code == 200
    assert set(assert_error(await client.post(url("pins"), json={"t": "x"}, headers=admin), 400,
                            "error_validation")["fields"]) == {"pin"}
    r = await client.post("/api/v1/_schemas/pins/_check", headers=admin)
    assert r.status_code == 200 and r.json()["invalid"] == 0, r.text


async def test_a_write_only_property_of_any_name_is_left_out_of_lists(client, admin, schema_dir):
    """The embedded database leaves hidden values out of a list in SQL (a JSON path per name); a
    name that cannot be put in one (`pin-code`) used to fail every list of the store (500)."""
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "pin-code": {"type": "string", "writeOnly": True}}}
    (schema_dir / "lockers.json").write_text(json.dumps(schema))
    for _ in range(50):  # the running server picks the new file up within its poll interval
        r = await client.post(url("lockers"), json={"name": "a", "pin-code": PIN}, headers=admin)
        if r.status_code == 201:
            break
        await asyncio.sleep(0.1)
    assert r.status_code == 201, r.text
    for params in ({}, {"expand": "owner"}):
        answer = await client.get(url("lockers"), params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        assert [e["name"] for e in answer.json()] == ["a"] and "pin-code" not in answer.text


# --- concurrency -----------------------------------------------------------------------------

async def test_concurrent_patches_of_different_fields_all_survive(client, admin):
    doc = (await create(client, admin, {"name": "start", "nested": {"a": 0}})).json()
    # 40 at once: twice MAX_RETRIES, as many rounds of compare-and-swap as the last one would lose
    patches: list[dict[str, Any]] = [{"nested": {f"k{i}": i}} for i in range(35)]
    patches += [{"name": "n"}, {"count": 5}, {"score": 0.5}, {"flag": True}, {"tags": ["t"]}]
    # A write-only value is hashed off the event loop: this makes the writes really interleave
    # between reading the entity and storing it, even on the in-process database.
    patches = [{**p, "pin": f"{PIN}-{i}"} for i, p in enumerate(patches)]
    answers = await asyncio.gather(*(client.patch(url("things", doc["_id"]), json=p, headers=admin)
                                     for p in patches))
    assert [a.status_code for a in answers] == [200] * len(patches), [a.text for a in answers]
    assert len({a.headers["etag"] for a in answers}) == len(patches)
    final = (await fetch(client, admin, doc["_id"])).json()
    assert body_of(final) == {"name": "n", "count": 5, "score": 0.5, "flag": True, "tags": ["t"],
                              "nested": {"a": 0, **{f"k{i}": i for i in range(35)}}}
    assert final["updatedAt"] == max(a.json()["updatedAt"] for a in answers)


# --- unique indexes --------------------------------------------------------------------------

async def test_unique_index_violation_on_create_is_409_and_writes_nothing(client, admin):
    first = (await create(client, admin, {"name": "A", "price": 1, "sku": "SKU-1"}, "products")).json()
    r = await client.post(url("products"), json={"name": "B", "price": 2, "sku": "SKU-1"}, headers=admin)
    assert_error(r, 409, "error_conflict")
    assert await listing(client, admin, "products") == [first]


@pytest.mark.parametrize("method,body", [("PATCH", {"sku": "SKU-1"}),
                                         ("PUT", {"name": "B", "price": 2, "sku": "SKU-1"})])
async def test_unique_index_violation_on_update_is_409_and_changes_nothing(client, admin, method, body):
    await create(client, admin, {"name": "A", "price": 1, "sku": "SKU-1"}, "products")
    created = await create(client, admin, {"name": "B", "price": 2, "sku": "SKU-2"}, "products")
    doc = created.json()
    r = await client.request(method, url("products", doc["_id"]), json=body, headers=admin)
    assert_error(r, 409, "error_conflict")
    after = await fetch(client, admin, doc["_id"], "products")
    assert after.json() == doc and after.headers["etag"] == created.headers["etag"]
