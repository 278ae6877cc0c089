"""Access control through the API (API.md 5 and 6, 7 for lists): principal x operation x rules -> status."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

PRODUCT = "0123456789abcdef01234567"
# A store of our own: only makers create, every signed-in user reads; update/delete keep the defaults.
GADGETS = {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": False,
           "x-acl": {"create": ["role:maker"], "read": ["authenticated"]}}

BODIES = {"orders": {"product": PRODUCT, "quantity": 1}, "notes": {"title": "n"},
          "products": {"name": "p", "price": 1}, "gadgets": {"name": "g"}}
PATCHES = {"orders": {"quantity": 2}, "notes": {"body": "b"}, "products": {"price": 2}, "gadgets": {"name": "h"}}
PUTS = {"orders": {"product": PRODUCT, "quantity": 3, "note": "put"}, "notes": {"title": "put"},
        "products": {"name": "put", "price": 3}, "gadgets": {"name": "put"}}


@pytest.fixture
def schema_dir(schema_dir):
    """The per-test schema folder plus gadgets.json, written before the app (and `client`) start."""
    (schema_dir / "gadgets.json").write_text(json.dumps(GADGETS))
    return schema_dir


@dataclass
class World:
    """Groups and users by name: `ids[name]` is an id, `headers[name]` bearer headers."""

    ids: dict[str, str]
    headers: dict[str, dict[str, str]]


# principal -> (groups, roles). The owner also makes gadgets; the role holder edits notes and makes gadgets
# and belongs to the branch group (so it can read what it may delete).
PRINCIPALS: dict[str, tuple[list[str], list[str]]] = {
    "owner": (["g_owner", "g_owner2"], ["maker"]),
    "member": (["g_owner"], []),
    "access_user": ([], []),
    "access_group_member": (["g_access"], []),
    "branch_member": (["g_branch"], []),
    "stranger": (["g_stranger"], []),
    "role_holder": (["g_branch"], ["editor", "maker"]),
}
GROUPS = ("g_owner", "g_owner2", "g_access", "g_branch", "g_stranger")


async def build_world(users, admin: dict[str, str]) -> World:
    ids = {name: await users.group(name) for name in GROUPS}
    headers = {"admin": admin}
    for name, (groups, roles) in PRINCIPALS.items():
        ids[name], headers[name] = await users.user(name, groups=[ids[g] for g in groups], roles=roles)
    return World(ids, headers)


@pytest.fixture
async def world(users, admin) -> World:
    return await build_world(users, admin)


def shared_acl(world: World) -> dict[str, list[str]]:
    return {"access": [world.ids["access_user"], world.ids["g_access"]], "branch": [world.ids["g_branch"]]}


async def create(client: httpx.AsyncClient, world: World, store: str, who: str = "owner", **extra: Any) -> dict:
    body = {**BODIES[store], **shared_acl(world), **extra} if who == "owner" else {**BODIES[store], **extra}
    r = await client.post(f"/api/v1/{store}", json=body, headers=world.headers[who])
    assert r.status_code == 201, r.text
    return r.json()


async def as_admin(client: httpx.AsyncClient, world: World, store: str, entity_id: str) -> httpx.Response:
    return await client.get(f"/api/v1/{store}/{entity_id}", headers=world.headers["admin"])


async def admin_total(client: httpx.AsyncClient, world: World, store: str) -> int:
    r = await client.get(f"/api/v1/{store}", params={"meta": "true"}, headers=world.headers["admin"])
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def assert_error(r: httpx.Response, status: int, tag: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["code"] == str(status) and tag in body["tags"], body
    assert isinstance(body["message"], str) and body["message"]
    return body


# --- the table ---------------------------------------------------------------------------------

OPS = ("get", "list", "meta", "patch", "put", "acl", "delete", "create")
# Each row: get, list (is the entity listed), meta (total), patch, put, acl, delete, create.
# Every store also holds a decoy entity made by the admin (no group, no access): only `read` rules that
# do not depend on the entity (authenticated, admin) let a caller count it in `meta`.
EXPECTED: dict[str, dict[str, tuple[Any, ...]]] = {
    # defaults: create [authenticated], read [owner group access branch], update [owner access], delete [owner]
    "orders": {
        "owner":               (200, True, 1, 200, 200, 200, 200, 201),
        "member":              (200, True, 1, 403, 403, 403, 403, 201),
        "access_user":         (200, True, 1, 200, 200, 403, 403, 201),
        "access_group_member": (200, True, 1, 200, 200, 403, 403, 201),
        "branch_member":       (200, True, 1, 403, 403, 403, 403, 201),
        "stranger":            (404, False, 0, 404, 404, 404, 404, 201),
        "admin":               (200, True, 2, 200, 200, 200, 200, 201),
        "role_holder":         (200, True, 1, 403, 403, 403, 403, 201),
    },
    # update [owner group access], delete [owner role:editor]
    "notes": {
        "owner":               (200, True, 1, 200, 200, 200, 200, 201),
        "member":              (200, True, 1, 200, 200, 403, 403, 201),
        "access_user":         (200, True, 1, 200, 200, 403, 403, 201),
        "access_group_member": (200, True, 1, 200, 200, 403, 403, 201),
        "branch_member":       (200, True, 1, 403, 403, 403, 403, 201),
        "stranger":            (404, False, 0, 404, 404, 404, 404, 201),
        "admin":               (200, True, 2, 200, 200, 200, 200, 201),
        "role_holder":         (200, True, 1, 403, 403, 403, 200, 201),
    },
    # read [authenticated]
    "products": {
        "owner":               (200, True, 2, 200, 200, 200, 200, 201),
        "member":              (200, True, 2, 403, 403, 403, 403, 201),
        "access_user":         (200, True, 2, 200, 200, 403, 403, 201),
        "access_group_member": (200, True, 2, 200, 200, 403, 403, 201),
        "branch_member":       (200, True, 2, 403, 403, 403, 403, 201),
        "stranger":            (200, True, 2, 403, 403, 403, 403, 201),
        "admin":               (200, True, 2, 200, 200, 200, 200, 201),
        "role_holder":         (200, True, 2, 403, 403, 403, 403, 201),
    },
    # create [role:maker], read [authenticated]
    "gadgets": {
        "owner":               (200, True, 2, 200, 200, 200, 200, 201),
        "member":              (200, True, 2, 403, 403, 403, 403, 403),
        "access_user":         (200, True, 2, 200, 200, 403, 403, 403),
        "access_group_member": (200, True, 2, 200, 200, 403, 403, 403),
        "branch_member":       (200, True, 2, 403, 403, 403, 403, 403),
        "stranger":            (200, True, 2, 403, 403, 403, 403, 403),
        "admin":               (200, True, 2, 200, 200, 200, 200, 201),
        "role_holder":         (200, True, 2, 403, 403, 403, 403, 201),
    },
}


async def run_op(client: httpx.AsyncClient, world: World, store: str, who: str, op: str, entity_id: str) -> Any:
    """Do one operation as `who`; the result to compare with the table."""
    headers, url = world.headers[who], f"/api/v1/{store}/{entity_id}"
    if op == "get":
        r = await client.get(url, headers=headers)
    elif op in ("list", "meta"):
        r = await client.get(f"/api/v1/{store}", params={"meta": "true"} if op == "meta" else {}, headers=headers)
        assert r.status_code == 200, r.text
        if op == "list":
            return entity_id in {e["_id"] for e in r.json()}
        meta = r.json()
        assert (meta["first"] is None) == (meta["last"] is None) == (meta["total"] == 0), meta
        return meta["total"]
    elif op == "patch":
        r = await client.patch(url, json=PATCHES[store], headers=headers)
    elif op == "put":
        r = await client.put(url, json=PUTS[store], headers=headers)
    elif op == "acl":  # the same values again: readability stays as it was for the next operations
        r = await client.put(url + "/acl", json=shared_acl(world), headers=headers)
    elif op == "delete":
        r = await client.delete(url, headers=headers)
    else:
        r = await client.post(f"/api/v1/{store}", json=BODIES[store], headers=headers)
    if r.status_code in (403, 404):
        assert_error(r, r.status_code, {403: "error_forbidden", 404: "error_not_found"}[r.status_code])
    return r.status_code


@pytest.mark.parametrize("store", list(EXPECTED))
@pytest.mark.parametrize("who", list(EXPECTED["orders"]))
async def test_access_table(client, world, store, who):
    decoy = await create(client, world, store, who="admin")
    entity = await create(client, world, store)
    assert entity["owner"] == world.ids["owner"] and entity["group"] == world.ids["g_owner"]
    actual = {}
    for op in OPS:
        before_total = await admin_total(client, world, store)
        before = (await as_admin(client, world, store, entity["_id"])).json()
        actual[op] = await run_op(client, world, store, who, op, entity["_id"])
        if actual[op] in (403, 404):  # a refused operation writes nothing
            after = await as_admin(client, world, store, entity["_id"])
            assert after.status_code == 200 and after.json() == before, (op, after.text)
            assert await admin_total(client, world, store) == before_total, op
    assert actual == dict(zip(OPS, EXPECTED[store][who], strict=True))
    assert (await as_admin(client, world, store, decoy["_id"])).status_code == 200


async def test_successful_writes_take_effect(client, world):
    """The 200s of the table really change the entity (and a delete really removes it)."""
    entity = await create(client, world, "notes")
    url = f"/api/v1/notes/{entity['_id']}"
    member = world.headers["member"]
    r = await client.patch(url, json={"body": "by member"}, headers=member)
    assert r.status_code == 200 and r.json()["body"] == "by member" and r.json()["owner"] == world.ids["owner"]
    r = await client.put(url, json={"title": "by access"}, headers=world.headers["access_user"])
    assert r.status_code == 200 and r.json()["title"] == "by access" and "body" not in r.json()
    assert r.json()["access"] == shared_acl(world)["access"]
    r = await client.delete(url, headers=world.headers["role_holder"])
    assert r.status_code == 200 and r.json() == {"success": True, "_id": entity["_id"]}
    assert (await as_admin(client, world, "notes", entity["_id"])).status_code == 404


# --- create ------------------------------------------------------------------------------------

async def test_create_sets_owner_and_primary_group(client, world):
    doc = await create(client, world, "orders")
    assert doc["owner"] == world.ids["owner"]
    assert doc["group"] == world.ids["g_owner"]  # the first of the caller's groups
    assert doc["access"] == [world.ids["access_user"], world.ids["g_access"]]
    assert doc["branch"] == [world.ids["g_branch"]]
    stored = (await as_admin(client, world, "orders", doc["_id"])).json()
    assert {k: stored[k] for k in ("owner", "group", "access", "branch")} == \
        {k: doc[k] for k in ("owner", "group", "access", "branch")}


async def test_create_without_groups_has_no_group(client, world):
    doc = await create(client, world, "orders", who="access_user")
    assert doc["owner"] == world.ids["access_user"] and doc["group"] is None
    assert doc["access"] == [] and doc["branch"] == []


async def test_create_in_another_own_group(client, world):
    doc = await create(client, world, "notes", group=world.ids["g_owner2"])
    assert doc["group"] == world.ids["g_owner2"]
    # the member of the primary group does not see it; nor does anyone outside the lists
    r = await client.get(f"/api/v1/notes/{doc['_id']}", headers=world.headers["member"])
    assert_error(r, 404, "error_not_found")


@pytest.mark.parametrize("group", ["g_access", "g_stranger"])
async def test_create_in_a_group_not_ones_own_is_forbidden(client, world, group):
    r = await client.post("/api/v1/orders", json={**BODIES["orders"], "group": world.ids[group]},
                          headers=world.headers["owner"])
    assert_error(r, 403, "error_forbidden")
    assert await admin_total(client, world, "orders") == 0


MALFORMED = [
    {"access": ["nope"]},
    {"access": "0123456789abcdef01234567"},
    {"access": [123]},
    {"access": {"id": PRODUCT}},
    {"branch": ["zz"]},
    {"branch": PRODUCT},
    {"branch": [None]},
    {"group": "zz"},
    {"group": 5},
    {"group": [PRODUCT]},
]


@pytest.mark.parametrize("bad", MALFORMED, ids=lambda b: json.dumps(b))
async def test_create_with_malformed_access_fields_is_400(client, world, bad):
    r = await client.post("/api/v1/orders", json={**BODIES["orders"], **bad}, headers=world.headers["owner"])
    body = assert_error(r, 400, "error_validation")
    assert set(body["fields"]) == set(bad)
    assert await admin_total(client, world, "orders") == 0


@pytest.mark.parametrize("field", ["owner", "_id", "createdAt", "updatedAt"])
async def test_create_cannot_set_server_fields(client, world, field):
    value = world.ids["stranger"] if field in ("owner", "_id") else "2026-01-01T00:00:00.000Z"
    r = await client.post("/api/v1/orders", json={**BODIES["orders"], field: value}, headers=world.headers["owner"])
    body = assert_error(r, 400, "error_validation")
    assert field in body["fields"]
    assert await admin_total(client, world, "orders") == 0


@pytest.mark.parametrize("who", ["stranger", "member", "access_user"])
async def test_create_rules_that_fail_are_403(client, world, who):
    r = await client.post("/api/v1/gadgets", json=BODIES["gadgets"], headers=world.headers[who])
    assert_error(r, 403, "error_forbidden")
    assert await admin_total(client, world, "gadgets") == 0


# --- PUT /:store/:id/acl -----------------------------------------------------------------------

async def test_owner_changes_group_access_and_branch(client, world):
    doc = await create(client, world, "orders")
    url = f"/api/v1/orders/{doc['_id']}"
    ids, h = world.ids, world.headers
    assert_error(await client.get(url, headers=h["stranger"]), 404, "error_not_found")
    r = await client.put(url + "/acl", json={"group": ids["g_owner2"], "access": [ids["stranger"]], "branch": []},
                         headers=h["owner"])
    assert r.status_code == 200, r.text
    new = r.json()
    assert (new["group"], new["access"], new["branch"]) == (ids["g_owner2"], [ids["stranger"]], [])
    assert new["owner"] == ids["owner"] and new["quantity"] == 1 and r.headers.get("etag")
    assert new["updatedAt"] > doc["updatedAt"] and new["createdAt"] == doc["createdAt"]
    readers = {who: (await client.get(url, headers=h[who])).status_code for who in h}
    assert readers == {"admin": 200, "owner": 200, "stranger": 200, "member": 404, "access_user": 404,
                       "access_group_member": 404, "branch_member": 404, "role_holder": 404}
    # the newly listed user also lists it, and may update it (update: owner, access)
    listed = (await client.get("/api/v1/orders", headers=h["stranger"])).json()
    assert [e["_id"] for e in listed] == [doc["_id"]]
    assert (await client.patch(url, json={"quantity": 9}, headers=h["stranger"])).status_code == 200


async def test_owner_may_clear_the_group(client, world):
    doc = await create(client, world, "orders")
    r = await client.put(f"/api/v1/orders/{doc['_id']}/acl", json={"group": None}, headers=world.headers["owner"])
    assert r.status_code == 200 and r.json()["group"] is None
    assert (await client.get(f"/api/v1/orders/{doc['_id']}", headers=world.headers["member"])).status_code == 404


@pytest.mark.parametrize("store,who", [("orders", "access_user"), ("orders", "access_group_member"),
                                       ("notes", "member"), ("products", "access_user")])
async def test_acl_needs_the_owner_not_update_rights(client, world, store, who):
    doc = await create(client, world, store)
    url = f"/api/v1/{store}/{doc['_id']}"
    assert (await client.patch(url, json=PATCHES[store], headers=world.headers[who])).status_code == 200
    before = (await as_admin(client, world, store, doc["_id"])).json()
    r = await client.put(url + "/acl", json={"access": [world.ids[who]]}, headers=world.headers[who])
    assert_error(r, 403, "error_forbidden")
    assert (await as_admin(client, world, store, doc["_id"])).json() == before


async def test_only_an_admin_changes_the_owner(client, world):
    doc = await create(client, world, "orders")
    url = f"/api/v1/orders/{doc['_id']}"
    ids, h = world.ids, world.headers
    r = await client.put(url + "/acl", json={"owner": ids["stranger"]}, headers=h["owner"])
    assert_error(r, 403, "error_forbidden")
    r = await client.put(url + "/acl", json={"owner": ids["stranger"], "access": []}, headers=h["owner"])
    assert_error(r, 403, "error_forbidden")
    assert (await as_admin(client, world, "orders", doc["_id"])).json() == doc  # nothing at all changed
    r = await client.put(url + "/acl", json={"owner": ids["stranger"]}, headers=h["admin"])
    assert r.status_code == 200 and r.json()["owner"] == ids["stranger"]
    # the new owner reads, manages and deletes it; the old one keeps only what its group gives
    assert (await client.put(url + "/acl", json={"branch": []}, headers=h["stranger"])).status_code == 200
    assert (await client.get(url, headers=h["owner"])).status_code == 200
    assert_error(await client.delete(url, headers=h["owner"]), 403, "error_forbidden")
    assert (await client.delete(url, headers=h["stranger"])).status_code == 200


async def test_admin_changes_any_acl_field(client, world):
    doc = await create(client, world, "orders")
    ids = world.ids
    body = {"group": ids["g_stranger"], "access": [], "branch": [ids["g_access"]], "owner": None}
    r = await client.put(f"/api/v1/orders/{doc['_id']}/acl", json=body, headers=world.headers["admin"])
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in body} == body
    assert (await client.get(f"/api/v1/orders/{doc['_id']}", headers=world.headers["owner"])).status_code == 404


@pytest.mark.parametrize("body", [
    {"color": "red"}, {"quantity": 2}, {"access": [], "extra": 1}, {"_id": PRODUCT}, {"createdAt": "x"},
    {"updatedAt": "x"}, {"access": ["nope"]}, {"branch": "x"}, {"group": "zz"}, {"owner": "zz"},
], ids=lambda b: json.dumps(b))
async def test_acl_bad_bodies_are_400(client, world, body):
    doc = await create(client, world, "orders")
    who = "admin" if "owner" in body else "owner"
    r = await client.put(f"/api/v1/orders/{doc['_id']}/acl", json=body, headers=world.headers[who])
    assert_error(r, 400, "error_validation" if r.json().get("fields") else "error_bad_request")
    assert (await as_admin(client, world, "orders", doc["_id"])).json() == doc


async def test_an_acl_body_s_400_names_every_failing_field(client, world):
    doc = await create(client, world, "orders")
    r = await client.put(f"/api/v1/orders/{doc['_id']}/acl", json={"access": ["zz"], "branch": "x", "bogus": 1},
                         headers=world.headers["owner"])
    assert set(assert_error(r, 400, "error_validation")["fields"]) == {"access", "branch", "bogus"}


async def test_acl_group_must_be_the_owners_own(client, world):
    doc = await create(client, world, "orders")
    r = await client.put(f"/api/v1/orders/{doc['_id']}/acl", json={"group": world.ids["g_stranger"]},
                         headers=world.headers["owner"])
    assert_error(r, 403, "error_forbidden")
    assert (await as_admin(client, world, "orders", doc["_id"])).json() == doc


@pytest.mark.parametrize("body", [{"access": []}, {"owner": None}, {"group": None}], ids=json.dumps)
async def test_acl_on_an_unreadable_entity_is_404(client, world, body):
    doc = await create(client, world, "orders")
    r = await client.put(f"/api/v1/orders/{doc['_id']}/acl", json=body, headers=world.headers["stranger"])
    assert_error(r, 404, "error_not_found")
    assert (await as_admin(client, world, "orders", doc["_id"])).json() == doc
    r = await client.put("/api/v1/orders/0123456789abcdef01234567/acl", json={"access": []},
                         headers=world.headers["admin"])
    assert_error(r, 404, "error_not_found")


# --- lists never widen access ------------------------------------------------------------------

def _f(query: dict) -> dict[str, str]:
    return {"filter": json.dumps(query)}


# (params, does the stranger's own order match them?) Every filter also matches the three secret orders.
BYPASSES: list[tuple[dict[str, str], bool]] = [
    (_f({"$or": [{"owner": {"$exists": True}}, {"quantity": {"$gte": 0}}]}), True),
    (_f({"$or": [{"owner": "OWNER"}, {"owner": {"$ne": "OWNER"}}]}), True),
    (_f({"owner": "OWNER"}), False),
    (_f({"owner": {"$in": ["OWNER", "STRANGER"]}}), True),
    (_f({"owner": {"$exists": True}}), True),
    (_f({"owner": {"$ne": None}}), True),
    (_f({"group": {"$exists": True}}), True),
    (_f({"access": {"$exists": True}}), True),
    (_f({"access": "ACCESS_USER"}), False),
    (_f({"note": {"$regex": ".*"}}), True),
    (_f({"note": {"$regex": "^sec"}}), True),
    (_f({"$nor": [{"owner": None}]}), True),
    (_f({"owner": {"$not": {"$eq": None}}}), True),
    (_f({"$and": [{"quantity": {"$gte": 1}}, {"$or": [{"owner": "OWNER"}, {"quantity": 1}]}]}), True),
    ({"quantity": "1"}, True),
    ({"note": "secret"}, True),
    ({"sort": "-owner"}, True),
    ({"sort": "owner,-createdAt"}, True),
    ({"only": "owner,note"}, True),
    ({"only": "access,branch,group"}, True),
    ({"from": "0"}, True),
    ({}, True),
]
PLACEHOLDERS = {"OWNER": "owner", "STRANGER": "stranger", "ACCESS_USER": "access_user"}


def _resolve(params: dict[str, str], world: World) -> dict[str, str]:
    out = {}
    for key, value in params.items():
        for placeholder, name in PLACEHOLDERS.items():
            value = value.replace(f'"{placeholder}"', json.dumps(world.ids[name]))
        out[key] = value
    return out


@pytest.mark.parametrize("params,own_matches", BYPASSES, ids=lambda p: json.dumps(p)[:60])
async def test_filters_never_widen_access(client, world, params, own_matches):
    h = world.headers
    secret = [(await create(client, world, "orders", note="secret"))["_id"] for _ in range(3)]
    own = (await create(client, world, "orders", who="stranger", note="secret"))["_id"]
    params = _resolve(params, world)
    expected = [own] if own_matches else []

    r = await client.get("/api/v1/orders", params=params, headers=h["stranger"])
    assert r.status_code == 200, r.text
    assert [e["_id"] for e in r.json()] == expected
    r = await client.get("/api/v1/orders", params={**params, "meta": "true"}, headers=h["stranger"])
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["total"] == len(expected)
    assert [meta["first"] and meta["first"]["_id"], meta["last"] and meta["last"]["_id"]] == \
        ([own, own] if own_matches else [None, None])
    # the same query for someone on the access list finds the secret orders: the filter itself works
    r = await client.get("/api/v1/orders", params={**params, "meta": "true"}, headers=h["access_user"])
    assert r.json()["total"] == 3
    r = await client.get("/api/v1/orders", params=params, headers=h["access_user"])
    assert sorted(e["_id"] for e in r.json()) == sorted(secret)


async def test_meta_total_counts_only_readable_entities(client, world):
    h = world.headers
    for who in ("owner", "owner", "stranger", "access_user", "admin"):
        await create(client, world, "orders", who=who)
    totals = {}
    for who in h:
        meta = (await client.get("/api/v1/orders", params={"meta": "true"}, headers=h[who])).json()
        listed = (await client.get("/api/v1/orders", headers=h[who])).json()
        assert meta["total"] == len(listed), who
        if listed:
            assert meta["first"]["_id"] == listed[0]["_id"] and meta["last"]["_id"] == listed[-1]["_id"]
        totals[who] = meta["total"]
    # the owner's two are shared with access_user, g_access and g_branch; owner's group is g_owner
    assert totals == {"owner": 2, "member": 2, "access_user": 3, "access_group_member": 2, "branch_member": 2,
                      "stranger": 1, "role_holder": 2, "admin": 5}


async def test_offset_and_limit_page_over_readable_entities_only(client, world):
    h = world.headers
    mine = []
    for _ in range(6):
        mine.append((await create(client, world, "orders", who="stranger"))["_id"])
        await create(client, world, "orders")  # interleaved entities the stranger may not read
    r = await client.get("/api/v1/orders", params={"offset": "2", "limit": "3"}, headers=h["stranger"])
    assert r.status_code == 200 and [e["_id"] for e in r.json()] == mine[2:5]


# --- indexes -----------------------------------------------------------------------------------

ENGINE_FIELDS = ("owner", "group", "access", "branch", "createdAt")


async def _indexed_fields(app, store: str) -> set[str]:
    coll = app.other_asgi_app.app.state.ctx.storage.collection(store)
    if hasattr(coll, "index_keys"):  # the embedded database (SQLite)
        return {keys[0][0] for keys, _ in await coll.index_keys() if len(keys) == 1}
    info = await coll.raw.index_information()
    return {spec["key"][0][0] for spec in info.values() if len(spec["key"]) == 1}


@pytest.mark.parametrize("store", ["orders", "notes", "products", "things", "gadgets", "users", "groups"])
async def test_every_store_has_the_engine_indexes(app, client, store):
    assert set(ENGINE_FIELDS) <= await _indexed_fields(app, store)


async def test_a_store_added_at_runtime_gets_the_engine_indexes(app, client, admin, schema_dir):
    (schema_dir / "late.json").write_text(json.dumps({"type": "object"}))
    for _ in range(50):
        if (await client.get("/api/v1/late", headers=admin)).status_code == 200 \
                and set(ENGINE_FIELDS) <= await _indexed_fields(app, "late"):
            break
        await asyncio.sleep(0.05)
    assert set(ENGINE_FIELDS) <= await _indexed_fields(app, "late")
