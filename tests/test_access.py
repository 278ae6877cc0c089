"""Access control, table-driven: principal x operation x rules -> status (API.md 5 and 6)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

GADGETS = {"type": "object", "properties": {"name": {"type": "string"}},
           "x-acl": {"create": ["role:maker"], "read": ["authenticated"]}}
PRINCIPALS = ["owner", "member", "access_user", "access_group_member", "branch_member", "stranger", "admin",
              "editor"]
OPS = ["get", "patch", "put", "acl", "delete"]


@pytest.fixture
def schema_dir(schema_dir):
    (schema_dir / "gadgets.json").write_text(json.dumps(GADGETS))
    return schema_dir


@dataclass
class World:
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]


@pytest.fixture
async def world(users, admin) -> World:
    g_owner, g_access, g_branch = await users.group("owners"), await users.group("access"), await users.group("branch")
    spec = {
        "owner": ([g_owner], []), "member": ([g_owner], []), "access_user": ([], []),
        "access_group_member": ([g_access], []), "branch_member": ([g_branch], []), "stranger": ([], []),
        "editor": ([g_branch], ["editor"]), "maker": ([], ["maker"]),
    }
    headers, ids = {"admin": admin}, {"g_owner": g_owner, "g_access": g_access, "g_branch": g_branch}
    for name, (groups, roles) in spec.items():
        ids[name], headers[name] = await users.user(name, groups=groups, roles=roles)
    return World(headers, ids)


async def make(client, world: World, store: str) -> str:
    body = {"access": [world.ids["access_user"], world.ids["g_access"]], "branch": [world.ids["g_branch"]]}
    body.update({"orders": {"product": "0123456789abcdef01234567", "quantity": 1}, "notes": {"title": "n"},
                 "products": {"name": "p", "price": 1}}[store])
    r = await client.post(f"/api/v1/{store}", json=body, headers=world.headers["owner"])
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["owner"] == world.ids["owner"] and doc["group"] == world.ids["g_owner"]
    return str(doc["_id"])


READERS_DEFAULT = {"owner", "member", "access_user", "access_group_member", "branch_member", "admin", "editor"}
# store -> op -> principals allowed (among those who can read; the others get 404)
TABLE = {
    "orders": {"read": READERS_DEFAULT, "patch": {"owner", "access_user", "access_group_member", "admin"},
               "delete": {"owner", "admin"}},
    "notes": {"read": READERS_DEFAULT, "patch": {"owner", "member", "access_user", "access_group_member", "admin"},
              "delete": {"owner", "admin", "editor"}},
    "products": {"read": set(PRINCIPALS), "patch": {"owner", "access_user", "access_group_member", "admin"},
                 "delete": {"owner", "admin"}},
}


def expected(store: str, who: str, op: str) -> int:
    rules = TABLE[store]
    if who not in rules["read"]:
        return 404
    if op == "get":
        return 200
    allowed = {"patch": rules["patch"], "put": rules["patch"], "delete": rules["delete"],
               "acl": {"owner", "admin"}}[op]
    return 200 if who in allowed else 403


async def attempt(client, headers, store: str, entity_id: str, op: str) -> int:
    url = f"/api/v1/{store}/{entity_id}"
    body = {"orders": {"product": "0123456789abcdef01234567", "quantity": 2}, "notes": {"title": "m"},
            "products": {"name": "q", "price": 2}}[store]
    if op == "get":
        r = await client.get(url, headers=headers)
    elif op == "patch":
        r = await client.patch(url, json={k: v for k, v in body.items() if k != "product"}, headers=headers)
    elif op == "put":
        r = await client.put(url, json=body, headers=headers)
    elif op == "acl":
        r = await client.put(url + "/acl", json={"branch": []}, headers=headers)
    else:
        r = await client.delete(url, headers=headers)
    return r.status_code


@pytest.mark.parametrize("store", list(TABLE))
@pytest.mark.parametrize("who", PRINCIPALS)
async def test_access_table(client, world, store, who):
    headers = world.headers[who]
    for op in OPS:
        entity_id = await make(client, world, store)
        assert await attempt(client, headers, store, entity_id, op) == expected(store, who, op), (store, who, op)
    # Lists and meta show exactly the entities the caller may read (all made above still exist but one).
    readable = expected(store, who, "get") == 200
    listed = (await client.get(f"/api/v1/{store}", headers=headers)).json()
    meta = (await client.get(f"/api/v1/{store}?meta=true", headers=headers)).json()
    owner_total = (await client.get(f"/api/v1/{store}?meta=true", headers=world.headers["owner"])).json()["total"]
    assert len(listed) == meta["total"] == (owner_total if readable else 0)


async def test_create_rules_and_group_choice(client, world):
    maker, stranger = world.headers["maker"], world.headers["stranger"]
    assert (await client.post("/api/v1/gadgets", json={"name": "g"}, headers=maker)).status_code == 201
    assert (await client.post("/api/v1/gadgets", json={"name": "g"}, headers=stranger)).status_code == 403
    assert (await client.post("/api/v1/gadgets", json={"name": "g"}, headers=world.headers["admin"])).status_code == 201
    assert len((await client.get("/api/v1/gadgets", headers=stranger)).json()) == 2
    editor = world.headers["editor"]
    own = await client.post("/api/v1/notes", json={"title": "t", "group": world.ids["g_branch"]}, headers=editor)
    assert own.status_code == 201 and own.json()["group"] == world.ids["g_branch"]
    foreign = await client.post("/api/v1/notes", json={"title": "t", "group": world.ids["g_owner"]}, headers=editor)
    assert foreign.status_code == 403
    for bad in ({"access": ["nope"]}, {"branch": "x"}, {"group": "zz"}):
        r = await client.post("/api/v1/notes", json={"title": "t", **bad}, headers=editor)
        assert r.status_code == 400, bad
    no_group = await client.post("/api/v1/notes", json={"title": "t"}, headers=world.headers["stranger"])
    assert no_group.json()["group"] is None
    assert len((await client.get("/api/v1/notes", headers=world.headers["owner"])).json()) == 0


async def test_acl_route(client, world):
    entity_id = await make(client, world, "orders")
    url = f"/api/v1/orders/{entity_id}"
    stranger_id, stranger = world.ids["stranger"], world.headers["stranger"]
    assert (await client.get(url, headers=stranger)).status_code == 404
    r = await client.put(url + "/acl", json={"access": [stranger_id]}, headers=world.headers["owner"])
    assert r.status_code == 200 and r.json()["access"] == [stranger_id]
    assert (await client.get(url, headers=stranger)).status_code == 200
    # access-listed: may update the entity but not its acl
    assert (await client.put(url + "/acl", json={"branch": []}, headers=stranger)).status_code == 403
    owner_says = await client.put(url + "/acl", json={"owner": stranger_id}, headers=world.headers["owner"])
    assert owner_says.status_code == 403
    assert (await client.put(url + "/acl", json={"color": 1}, headers=world.headers["owner"])).status_code == 400
    r = await client.put(url + "/acl", json={"owner": stranger_id}, headers=world.headers["admin"])
    assert r.status_code == 200 and r.json()["owner"] == stranger_id
    assert (await client.delete(url, headers=stranger)).status_code == 200


BYPASSES = [
    {"filter": json.dumps({"$or": [{"owner": {"$exists": True}}, {"quantity": {"$gte": 0}}]})},
    {"filter": json.dumps({"owner": {"$exists": True}})},
    {"filter": json.dumps({"note": {"$regex": ".*"}})},
    {"filter": json.dumps({"$nor": [{"owner": None}]})},
    {"quantity": "1"},
    {"sort": "-owner"},
    {"only": "owner,quantity"},
    {"meta": "true"},
]


@pytest.mark.parametrize("params", BYPASSES, ids=lambda p: json.dumps(p)[:50])
async def test_filters_never_widen_access(client, world, params):
    for _ in range(3):
        entity_id = await make(client, world, "orders")
        await client.patch(f"/api/v1/orders/{entity_id}", json={"note": "secret"}, headers=world.headers["owner"])
    r = await client.get("/api/v1/orders", params=params, headers=world.headers["stranger"])
    assert r.status_code == 200
    body = r.json()
    assert body in ([], {"total": 0, "first": None, "last": None})
    r = await client.get("/api/v1/orders", params=params, headers=world.headers["access_user"])
    body = r.json()
    assert (body["total"] if isinstance(body, dict) else len(body)) == 3


async def test_every_store_has_the_engine_indexes(app, client, admin):
    storage = app.other_asgi_app.app.state.ctx.storage
    for store in ("orders", "notes", "products", "users", "groups"):
        info = await storage.collection(store).raw.index_information()
        keys = {tuple(k for k, _ in spec["key"]) for spec in info.values()}
        for field in ("owner", "group", "access", "branch", "createdAt"):
            assert (field,) in keys, (store, field)


async def test_acl_changes_on_unreadable_entities_are_404(client, world):
    entity_id = await make(client, world, "orders")
    url = f"/api/v1/orders/{entity_id}/acl"
    stranger = world.headers["stranger"]
    for body in ({"owner": world.ids["stranger"]}, {"group": world.ids["g_owner"]}, {"access": []}):
        assert (await client.put(url, json=body, headers=stranger)).status_code == 404, body
