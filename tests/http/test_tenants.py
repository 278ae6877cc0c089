"""API.md 12: tenants, a database per client chosen by its key, on the embedded database and the wire."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, Users

LANES = ("embedded", "wire")
TENANT_ADMIN = {"login": "boss", "password": "boss-password-1"}


async def create_tenant(client: httpx.AsyncClient, admin: dict[str, str], name: str, *, copy: bool = True,
                        ready: bool = True) -> dict[str, Any]:
    r = await client.post("/api/v1/_tenants", json={"name": name, "admin": TENANT_ADMIN, "copy": copy},
                          headers=admin)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/api/v1/_tenants/{name}"
    body: dict[str, Any] = r.json()
    if ready:
        await wait_ready(client, admin, name)
    return body


async def wait_ready(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = await client.get(f"/api/v1/_tenants/{name}", headers=admin)
        assert r.status_code == 200, r.text
        if r.json()["status"] == "ready":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"tenant {name} not ready")


async def tenant_token(client: httpx.AsyncClient, key: str, login: str = TENANT_ADMIN["login"],
                       password: str = TENANT_ADMIN["password"]) -> dict[str, Any]:
    r = await client.post("/api/v1/auth/token", json={"login": login, "password": password},
                          headers={"Api-Key": key})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


# --- the registry -----------------------------------------------------------------------------

async def test_create_list_get_rotate_delete(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    created = await create_tenant(client, admin, "acme", copy=False)
    assert set(created) == {"_id", "name", "key", "status", "createdAt"}
    assert created["key"].startswith("tk_") and len(created["key"]) >= 3 + 43  # 256 bits, urlsafe base64
    listed = (await client.get("/api/v1/_tenants", headers=admin)).json()
    assert [t["name"] for t in listed] == ["acme"]
    assert "key" not in listed[0] and "hash" not in listed[0]
    got = (await client.get("/api/v1/_tenants/acme", headers=admin)).json()
    assert got["status"] == "ready" and "key" not in got and "hash" not in got
    assert (await client.get("/api/v1/_tenants/nope", headers=admin)).status_code == 404

    old = created["key"]
    assert (await client.get("/api/v1/_schemas", headers={"Api-Key": old, **bearer(await tenant_token(
        client, old))})).status_code == 200
    token = await tenant_token(client, old)
    r = await client.post("/api/v1/_tenants/acme/key", headers=admin)
    assert r.status_code == 200
    new = r.json()["key"]
    assert new != old and new.startswith("tk_")
    # the old key stops at once; credentials issued in the tenant keep working
    assert (await client.get("/api/v1/things", headers={"Api-Key": old, **bearer(token)})).status_code == 401
    assert (await client.get("/api/v1/things", headers={"Api-Key": new, **bearer(token)})).status_code == 200
    assert (await client.get("/api/v1/things", headers=bearer(token))).status_code == 200

    r = await client.delete("/api/v1/_tenants/acme", headers=admin)
    assert r.status_code == 200 and r.json() == {"success": True}
    assert (await client.get("/api/v1/_tenants/acme", headers=admin)).status_code == 404
    # deleting ends every credential of the tenant
    assert (await client.get("/api/v1/things", headers={"Api-Key": new})).status_code == 401
    assert (await client.get("/api/v1/things", headers=bearer(token))).status_code == 401
    # a deleted tenant's name may be used again, and starts from nothing of the old one
    again = await create_tenant(client, admin, "acme", copy=False)
    assert (await client.get("/api/v1/things", headers=bearer(token))).status_code == 401
    fresh = await tenant_token(client, again["key"])
    assert (await client.get("/api/v1/things", headers=bearer(fresh))).json() == []


async def test_only_public_admins_manage_tenants(client: httpx.AsyncClient, admin: dict[str, str],
                                                 users: Users) -> None:
    _, someone = await users.user("someone")
    assert (await client.get("/api/v1/_tenants")).status_code == 401
    assert (await client.get("/api/v1/_tenants", headers=someone)).status_code == 403
    r = await client.post("/api/v1/_tenants", json={"name": "x", "admin": TENANT_ADMIN}, headers=someone)
    assert r.status_code == 403
    created = await create_tenant(client, admin, "beta", copy=False)
    tenant_admin = bearer(await tenant_token(client, created["key"]))
    for method, path in (("GET", "/api/v1/_tenants"), ("GET", "/api/v1/_tenants/beta"),
                         ("POST", "/api/v1/_tenants/beta/key"), ("DELETE", "/api/v1/_tenants/beta")):
        r = await client.request(method, path, headers=tenant_admin)
        assert r.status_code == 403, (method, path, r.text)
    assert (await client.get("/api/v1/_tenants/beta", headers=admin)).status_code == 200


@pytest.mark.parametrize("name", ["", "A", "1abc", "a_b", "a" * 32, "-a", "a.b", "a b", "gamma\n", 7, None])
async def test_invalid_names_are_400(client: httpx.AsyncClient, admin: dict[str, str], name: Any) -> None:
    r = await client.post("/api/v1/_tenants", json={"name": name, "admin": TENANT_ADMIN}, headers=admin)
    assert r.status_code == 400, r.text
    assert "name" in r.json()["fields"]
    assert (await client.get("/api/v1/_tenants", headers=admin)).json() == []


async def test_admin_is_required_and_checked(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await client.post("/api/v1/_tenants", json={"name": "gamma"}, headers=admin)
    assert r.status_code == 400 and "admin" in r.json()["fields"]
    r = await client.post("/api/v1/_tenants", json={"name": "gamma", "admin": {"login": "x", "password": ""}},
                          headers=admin)
    assert r.status_code == 400, r.text
    r = await client.post("/api/v1/_tenants", json={"name": "gamma", "admin": TENANT_ADMIN, "copy": "yes"},
                          headers=admin)
    assert r.status_code == 400 and "copy" in r.json()["fields"]
    # nothing was left behind: the name is free
    assert (await client.get("/api/v1/_tenants", headers=admin)).json() == []
    await create_tenant(client, admin, "gamma", copy=False)


async def test_same_name_concurrently_gives_one_201_one_409(client: httpx.AsyncClient,
                                                            admin: dict[str, str]) -> None:
    body = {"name": "twin", "admin": TENANT_ADMIN, "copy": False}
    answers = await asyncio.gather(*(client.post("/api/v1/_tenants", json=body, headers=admin) for _ in range(2)))
    assert sorted(r.status_code for r in answers) == [201, 409]
    assert [t["name"] for t in (await client.get("/api/v1/_tenants", headers=admin)).json()] == ["twin"]


# --- choosing the tenant ----------------------------------------------------------------------

async def test_unknown_key_is_401(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for key in ("tk_nope", "", "x" * 500):
        r = await client.get("/api/v1/things", headers={"Api-Key": key, **admin})
        assert r.status_code == 401, (key, r.text)


async def test_credentials_select_their_tenant_and_work_nowhere_else(client: httpx.AsyncClient,
                                                                     admin: dict[str, str]) -> None:
    one = await create_tenant(client, admin, "one", copy=False)
    two = await create_tenant(client, admin, "two", copy=False)
    token = await tenant_token(client, one["key"])
    # a session, a refresh token and an API key issued in tenant one
    r = await client.post("/api/v1/auth", json=TENANT_ADMIN, headers={"Api-Key": one["key"]})
    assert r.status_code == 200
    sid = r.cookies["sid"]
    client.cookies.clear()
    r = await client.post("/api/v1/auth/keys", json={"name": "k"}, headers=bearer(token))
    assert r.status_code == 201
    api_key = r.json()["key"]
    creds = {"token": bearer(token), "key": {"x-api-key": api_key}, "session": {"Cookie": f"sid={sid}"}}

    created = await client.post("/api/v1/things", json={"name": "in one"}, headers=bearer(token))
    assert created.status_code == 201
    thing = created.json()["_id"]
    for kind, headers in creds.items():
        # alone, it selects tenant one
        r = await client.get(f"/api/v1/things/{thing}", headers=headers)
        assert r.status_code == 200, (kind, r.text)
        assert (await client.get("/api/v1/auth/me", headers=headers)).json()["login"] == "boss"
        # with tenant one's key too
        r = await client.get(f"/api/v1/things/{thing}", headers={**headers, "Api-Key": one["key"]})
        assert r.status_code == 200, (kind, r.text)
        # with another tenant's key: 401
        r = await client.get("/api/v1/things", headers={**headers, "Api-Key": two["key"]})
        assert r.status_code == 401, (kind, r.text)
    # the refresh token selects tenant one by itself, and is unknown with tenant two's key
    r = await client.post("/api/v1/auth/refresh", json={"refreshToken": token["refreshToken"]},
                          headers={"Api-Key": two["key"]})
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refreshToken": token["refreshToken"]})
    assert r.status_code == 200, r.text
    refreshed = r.json()
    assert (await client.get(f"/api/v1/things/{thing}", headers=bearer(refreshed))).status_code == 200
    # a public credential with a tenant's key: 401
    assert (await client.get("/api/v1/things", headers={**admin, "Api-Key": one["key"]})).status_code == 401
    # the public database does not know tenant one's entity
    assert (await client.get(f"/api/v1/things/{thing}", headers=admin)).status_code == 404
    # a login of the public database is not one of the tenant's
    r = await client.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD},
                          headers={"Api-Key": one["key"]})
    assert r.status_code == 401


async def test_nothing_crosses_tenants(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    one = await create_tenant(client, admin, "one", copy=False)
    two = await create_tenant(client, admin, "two", copy=False)
    first, second = bearer(await tenant_token(client, one["key"])), bearer(await tenant_token(client, two["key"]))
    r = await client.post("/api/v1/notes", json={"title": "one's"}, headers=first)
    assert r.status_code == 201, r.text
    note = r.json()
    # its id, its versions and its history are unknown in tenant two and in the public database
    for other in (second, admin):
        assert (await client.get(f"/api/v1/notes/{note['_id']}", headers=other)).status_code == 404
        assert (await client.get("/api/v1/notes", headers=other)).json() == []
        r = await client.patch(f"/api/v1/notes/{note['_id']}", json={"title": "x"}, headers=other)
        assert r.status_code == 404
    # login throttling is per tenant: failures in tenant one do not lock tenant two's `boss`
    for _ in range(6):
        await client.post("/api/v1/auth/token", json={"login": "boss", "password": "wrong-password"},
                          headers={"Api-Key": one["key"]})
    r = await client.post("/api/v1/auth/token", json=TENANT_ADMIN, headers={"Api-Key": one["key"]})
    assert r.status_code == 429
    await tenant_token(client, two["key"])


async def test_feed_cursors_are_per_tenant(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    one = await create_tenant(client, admin, "one", copy=False)
    two = await create_tenant(client, admin, "two", copy=False)
    first, second = bearer(await tenant_token(client, one["key"])), bearer(await tenant_token(client, two["key"]))
    for n in range(3):
        assert (await client.post("/api/v1/things", json={"name": f"a{n}"}, headers=first)).status_code == 201
    changes = (await client.get("/api/v1/things/_changes", headers=first)).json()
    assert [c["op"] for c in changes["changes"]] == ["create"] * 3
    assert (await client.get("/api/v1/things/_changes", headers=second)).json()["changes"] == []
    # the others have more changes than tenant one, so a number alone would be a valid position there
    for other in (second, admin):
        for n in range(5):
            assert (await client.post("/api/v1/things", json={"name": f"b{n}"}, headers=other)).status_code == 201
    # tenant one's cursor is unknown in tenant two and in the public database
    for other in (second, admin):
        r = await client.get("/api/v1/things/_changes", params={"since": changes["cursor"]}, headers=other)
        assert r.status_code == 400, r.text


# --- provisioning -----------------------------------------------------------------------------

async def test_provisioning_copies_groups_and_entities_not_users(client: httpx.AsyncClient, admin: dict[str, str],
                                                                 users: Users) -> None:
    group = await users.group("staff")
    _, alice = await users.user("alice", groups=[group])
    made = []
    for n in range(7):
        r = await client.post("/api/v1/things", json={"name": f"t{n}", "count": n, "group": group}, headers=alice)
        assert r.status_code == 201, r.text
        made.append(r.json())
    created = await create_tenant(client, admin, "copy")
    boss = bearer(await tenant_token(client, created["key"]))
    got = (await client.get("/api/v1/things", params={"sort": "count"}, headers=boss)).json()
    public = (await client.get("/api/v1/things", params={"sort": "count"}, headers=admin)).json()
    assert got == public and len(got) == 7  # same ids and every field, access fields and dates included
    groups = (await client.get("/api/v1/groups", headers=boss)).json()
    assert [g["_id"] for g in groups] == [group]
    # the admin given is the tenant's only user; alice does not exist there
    listed = (await client.get("/api/v1/users", headers=boss)).json()
    assert [(u["login"], u["roles"]) for u in listed] == [("boss", ["admin"])]
    r = await client.post("/api/v1/auth/token", json={"login": "alice", "password": "password-123"},
                          headers={"Api-Key": created["key"]})
    assert r.status_code == 401
    # each copied entity is one `create` in the tenant's feed
    feed = (await client.get("/api/v1/things/_changes", headers=boss)).json()
    assert sorted(c["_id"] for c in feed["changes"] if c["op"] == "create") == sorted(m["_id"] for m in made)
    assert len(feed["changes"]) == 7


async def test_copy_false_starts_empty(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    assert (await client.post("/api/v1/things", json={"name": "public"}, headers=admin)).status_code == 201
    created = await create_tenant(client, admin, "empty", copy=False)
    assert created["status"] == "ready"
    boss = bearer(await tenant_token(client, created["key"]))
    assert (await client.get("/api/v1/things", headers=boss)).json() == []
    assert (await client.get("/api/v1/groups", headers=boss)).json() == []


async def seed(client: httpx.AsyncClient, admin: dict[str, str], n: int) -> None:
    for start in range(0, n, 50):
        await asyncio.gather(*(client.post("/api/v1/things", json={"name": f"t{i}"}, headers=admin)
                               for i in range(start, min(n, start + 50))))


async def test_provisioning_is_503_with_retry_after(client: httpx.AsyncClient, admin: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from storeengine.auth import provision

    monkeypatch.setattr(provision, "BATCH", 5)
    await seed(client, admin, 200)
    created = await create_tenant(client, admin, "slow", ready=False)
    assert created["status"] == "provisioning"
    r = await client.post("/api/v1/auth/token", json=TENANT_ADMIN, headers={"Api-Key": created["key"]})
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    # meanwhile the public database is served
    assert (await client.get("/api/v1/things", params={"limit": 1}, headers=admin)).status_code == 200
    await wait_ready(client, admin, "slow")
    boss = bearer(await tenant_token(client, created["key"]))
    r = await client.get("/api/v1/things", params={"meta": "true"}, headers=boss)
    assert r.json()["total"] == 200


async def test_deleting_while_provisioning_leaves_nothing(client: httpx.AsyncClient, admin: dict[str, str],
                                                          monkeypatch: pytest.MonkeyPatch, app: Any) -> None:
    from storeengine.auth import provision

    monkeypatch.setattr(provision, "BATCH", 5)
    await seed(client, admin, 200)
    created = await create_tenant(client, admin, "gone", ready=False)
    assert (await client.delete("/api/v1/_tenants/gone", headers=admin)).status_code == 200
    tenancy = app.other_asgi_app.app.state.tenancy if hasattr(app, "other_asgi_app") else None
    assert (await client.get("/api/v1/_tenants", headers=admin)).json() == []
    assert (await client.get("/api/v1/things", headers={"Api-Key": created["key"]})).status_code == 401
    # recreated empty under the same name: nothing of the interrupted copy is there
    again = await create_tenant(client, admin, "gone", copy=False)
    boss = bearer(await tenant_token(client, again["key"]))
    assert (await client.get("/api/v1/things", headers=boss)).json() == []
    r = await client.get("/api/v1/things/_changes", headers=boss)
    assert r.json()["changes"] == []
    assert tenancy is None or not tenancy.copies


async def test_schema_files_apply_to_every_tenant(client: httpx.AsyncClient, admin: dict[str, str],
                                                  schema_dir: Any, app: Any) -> None:
    import json

    created = await create_tenant(client, admin, "hot", copy=False)
    boss = bearer(await tenant_token(client, created["key"]))
    assert (await client.get("/api/v1/gadgets", headers=boss)).status_code == 404
    schema = {"type": "object", "properties": {"code": {"type": "string"}}, "x-history": True,
              "x-indexes": [{"fields": {"code": 1}, "unique": True}]}
    (schema_dir / "gadgets.json").write_text(json.dumps(schema))
    deadline = time.monotonic() + 2
    while (await client.get("/api/v1/gadgets", headers=boss)).status_code != 200:
        assert time.monotonic() < deadline, "the new store did not reach the tenant within 2 s"
        await asyncio.sleep(0.05)
    # its unique index holds from the store's first write there, before the tenant's upkeep made
    # it (a duplicate written first kept the index from ever being made)
    first, again = await asyncio.gather(*(client.post("/api/v1/gadgets", json={"code": "g1"}, headers=boss)
                                          for _ in range(2)))
    assert sorted([first.status_code, again.status_code]) == [201, 409], (first.text, again.text)
    first = first if first.status_code == 201 else again
    r = await client.post("/api/v1/gadgets", json={"code": "g1"}, headers=boss)
    assert r.status_code == 409, r.text
    assert (await client.get("/api/v1/_schemas", headers=admin)).json()["gadgets"]["error"] is None
    # and the public database may hold the same value: each database has its own index
    assert (await client.post("/api/v1/gadgets", json={"code": "g1"}, headers=admin)).status_code == 201
    # history is the tenant's own
    entity = first.json()["_id"]
    assert (await client.patch(f"/api/v1/gadgets/{entity}", json={"code": "g2"}, headers=boss)).status_code == 200
    versions = (await client.get(f"/api/v1/gadgets/{entity}/_versions", headers=boss)).json()
    assert len(versions) == 2
    assert (await client.get(f"/api/v1/gadgets/{entity}/_versions", headers=admin)).status_code == 404
    # a store removed is removed in the tenant too
    (schema_dir / "gadgets.json").unlink()
    deadline = time.monotonic() + 2
    while (await client.get("/api/v1/gadgets", headers=boss)).status_code != 404:
        assert time.monotonic() < deadline, "the removed store stayed in the tenant"
        await asyncio.sleep(0.05)


async def test_public_readonly(settings: Any) -> None:
    from storeengine.app import create_app
    from tests.conftest import lifespan, token_for

    app = create_app(settings.model_copy(update={"public_readonly": True}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                base_url="http://testserver") as client:
        admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
        users = Users(client, admin)
        group = await users.group("staff")  # the public admins still write
        alice_id, alice = await users.user("alice", groups=[group])
        thing = (await client.post("/api/v1/things", json={"name": "a", "access": [alice_id]},
                                   headers=admin)).json()
        for method, path, body in (("POST", "/api/v1/things", {"name": "b"}),
                                   ("PATCH", f"/api/v1/things/{thing['_id']}", {"name": "c"}),
                                   ("PUT", f"/api/v1/things/{thing['_id']}", {"name": "c"}),
                                   ("PUT", f"/api/v1/things/{thing['_id']}/acl", {"access": []}),
                                   ("DELETE", f"/api/v1/things/{thing['_id']}", None),
                                   ("POST", "/api/v1/groups", {"name": "g"}),
                                   ("PATCH", f"/api/v1/users/{alice_id}", {"password": "new-password-1"})):
            r = await client.request(method, path, json=body, headers=alice)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["message"] == "The public database is read-only"
        # reading, signing in, tokens and API keys still work
        assert (await client.get("/api/v1/things", headers=alice)).status_code == 200
        assert (await client.post("/api/v1/auth/keys", json={"name": "k"}, headers=alice)).status_code == 201
        # a tenant's own database is writable by its users
        created = await create_tenant(client, admin, "rw", copy=False)
        boss = bearer(await tenant_token(client, created["key"]))
        assert (await client.post("/api/v1/users", json={"login": "u", "password": "password-123"},
                                  headers=boss)).status_code == 201
        u = bearer(await tenant_token(client, created["key"], "u", "password-123"))
        assert (await client.post("/api/v1/things", json={"name": "mine"}, headers=u)).status_code == 201


async def test_a_copy_cut_short_by_a_stop_resumes_at_the_next_start(settings: Any, tmp_path: Any, lane: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from storeengine.app import create_app
    from storeengine.auth import provision
    from tests.conftest import lifespan, token_for

    if lane == "embedded":
        settings = settings.model_copy(update={"data_dir": str(tmp_path / "data")})
    monkeypatch.setattr(provision, "BATCH", 5)

    def client_of(app: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    first = create_app(settings)
    async with lifespan(first), client_of(first) as client:
        admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
        await seed(client, admin, 100)
        created = await create_tenant(client, admin, "cut", ready=False)
    second = create_app(settings)  # the stop cancelled the copy part-way
    async with lifespan(second), client_of(second) as client:
        admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
        await wait_ready(client, admin, "cut")
        boss = bearer(await tenant_token(client, created["key"]))
        assert (await client.get("/api/v1/things", params={"meta": "true"}, headers=boss)).json()["total"] == 100
        feed = (await client.get("/api/v1/things/_changes", headers=boss)).json()["changes"]
        assert len(feed) == 100 and len({c["_id"] for c in feed}) == 100  # each entity one create


async def test_a_stale_tenant_cookie_does_not_block_signing_in(client: httpx.AsyncClient,
                                                               admin: dict[str, str]) -> None:
    one = await create_tenant(client, admin, "one", copy=False)
    two = await create_tenant(client, admin, "two", copy=False)
    r = await client.post("/api/v1/auth", json=TENANT_ADMIN, headers={"Api-Key": one["key"]})
    assert r.status_code == 200
    stale = {"Cookie": f"sid={r.cookies['sid']}"}
    client.cookies.clear()
    # signing in to another tenant, or to the public database, while the browser still sends it
    r = await client.post("/api/v1/auth/token", json=TENANT_ADMIN, headers={**stale, "Api-Key": two["key"]})
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/things", headers={**stale, "Api-Key": two["key"]})).status_code == 401
    await client.delete("/api/v1/_tenants/one", headers=admin)
    r = await client.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD},
                          headers=stale)
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/auth/me", headers=stale)).status_code == 401


# --- a process that served many tenants -------------------------------------------------------

async def test_idle_tenants_close_and_reopen_on_demand(settings: Any, tmp_path: Any, lane: str) -> None:
    """A tenant's services in a process are closed past `tenants_open_max` (least recently used
    first) and after `tenant_idle_seconds` without a request or a socket; the next request opens
    them again, with the tenant's data, credentials and feed intact."""
    from storeengine.app import create_app
    from tests.conftest import lifespan, token_for

    if lane == "embedded":  # files: a private in-memory database is never closed (below)
        settings = settings.model_copy(update={"data_dir": str(tmp_path / "data")})
    app = create_app(settings.model_copy(update={"tenants_open_max": 2, "tenant_idle_seconds": 60}))
    tenancy = app.other_asgi_app.app.state.tenancy
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                base_url="http://testserver") as client:
        admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
        ids, bosses, things = {}, {}, {}
        for name in ("a", "b", "c"):
            created = await create_tenant(client, admin, name, copy=False)
            ids[name], bosses[name] = created["_id"], bearer(await tenant_token(client, created["key"]))
            r = await client.post("/api/v1/things", json={"name": name}, headers=bosses[name])
            assert r.status_code == 201, r.text
            things[name] = r.json()["_id"]
        # the third one opened closed the least recently used
        assert list(tenancy.handles) == [ids["b"], ids["c"]]
        r = await client.get(f"/api/v1/things/{things['a']}", headers=bosses["a"])
        assert r.status_code == 200 and r.json()["name"] == "a", r.text
        assert list(tenancy.handles) == [ids["c"], ids["a"]]
        feed = (await client.get("/api/v1/things/_changes", headers=bosses["a"])).json()["changes"]
        assert [c["_id"] for c in feed] == [things["a"]]
        # idle: not before `tenant_idle_seconds`; one serving a request is not idle
        assert tenancy.close_idle() == 0
        tenancy.handles[ids["c"]].in_flight += 1
        assert tenancy.close_idle(time.monotonic() + 61) == 1
        assert list(tenancy.handles) == [ids["c"]]
        tenancy.handles[ids["c"]].in_flight -= 1
        assert tenancy.close_idle(time.monotonic() + 61) == 1 and tenancy.handles == {}
        for name in ("a", "b", "c"):
            r = await client.get(f"/api/v1/things/{things[name]}", headers=bosses[name])
            assert r.status_code == 200 and r.json()["name"] == name, r.text
        assert list(tenancy.handles) == [ids["b"], ids["c"]]


@pytest.mark.lanes("embedded")  # (the wire lane keeps a tenant's data in the server: nothing to lose)
async def test_an_in_memory_tenant_is_never_closed(client: httpx.AsyncClient, admin: dict[str, str],
                                                   app: Any) -> None:
    """With STORE_DATA_DIR=:memory: closing a tenant would lose its data: it stays open."""
    tenancy = app.other_asgi_app.app.state.tenancy
    created = await create_tenant(client, admin, "mem", copy=False)
    boss = bearer(await tenant_token(client, created["key"]))
    assert (await client.post("/api/v1/things", json={"name": "m"}, headers=boss)).status_code == 201
    assert tenancy.close_idle(time.monotonic() + 3600) == 0
    assert (await client.get("/api/v1/things", params={"meta": "true"}, headers=boss)).json()["total"] == 1
