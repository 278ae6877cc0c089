"""Sessions, logout, me, API keys, CSRF, users and groups, secrets, the first admin and the CLI
guard (API.md sections 3 and 4). Tokens, refresh, throttling and revocation: test_auth_tokens.py.

Every test in both files is watched by `no_leaks`: no response body and no storeengine log line
(DEBUG and up) may carry a password used in the tests or an argon2 hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import pytest

from storeengine.app import create_app
from storeengine.settings import Settings
from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, FAST_HASH, lifespan, start_server, stop_server, token_for

# Each test runs on the embedded database and over the MongoDB wire (tests/lanes.py).
LANES = ("embedded", "wire")

SECRET = "test-secret-of-at-least-32-bytes!!"
PASSWORD = "password-123"  # the default password of conftest's Users helper
NEW_PASSWORD = "renewed-pass-42"
WRONG_PASSWORD = "wrong-pass-99"
SHORT_PASSWORD = "Sh0rt-7"  # 7 characters
SECRETS = (ADMIN_PASSWORD, PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, SHORT_PASSWORD, "$argon2")
ADMIN = {"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD}
CREDENTIALS = ["error_unauthorized", "error_credentials"]
THINGS = "/api/v1/things"
MISSING_ID = "0123456789abcdef01234567"
EVIL = "http://evil.example"


# --- every response and storeengine log line is checked for secrets -------------------------

@pytest.fixture
def seen() -> list[httpx.Response]:
    return []


@contextlib.asynccontextmanager
async def recording(app: Any, seen: list[httpx.Response]) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps every response, and never sends cookies on its own (tests pass
    `Cookie` explicitly, so an anonymous request is really anonymous)."""
    async def keep(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response)

    no_jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 cookies=no_jar, event_hooks={"response": [keep]}) as c:
        yield c


@pytest.fixture
async def client(app: Any, seen: list[httpx.Response]) -> AsyncIterator[httpx.AsyncClient]:
    async with recording(app, seen) as c:
        yield c


@pytest.fixture(autouse=True)
def no_leaks(caplog: pytest.LogCaptureFixture, seen: list[httpx.Response]) -> Any:
    caplog.set_level(logging.DEBUG, logger="storeengine")
    yield
    for r in seen:
        for secret in SECRETS:
            assert secret not in r.text, f"{r.request.method} {r.request.url} answered {secret!r}"
    formatter = logging.Formatter()
    for when in ("setup", "call"):
        for record in caplog.get_records(when):
            line = formatter.format(record)
            for secret in SECRETS:
                assert secret not in line, f"log line carries {secret!r}: {line}"


@contextlib.asynccontextmanager
async def other_app(settings: Settings, seen: list[httpx.Response],
                    **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=changes))
    async with lifespan(app), recording(app, seen) as c:
        yield c


# --- small helpers ----------------------------------------------------------------------------

async def session(client: httpx.AsyncClient, login: str = ADMIN_LOGIN,
                  password: str = ADMIN_PASSWORD) -> dict[str, str]:
    r = await client.post("/api/v1/auth", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    return {"Cookie": f"sid={r.cookies['sid']}"}


async def api_key(client: httpx.AsyncClient, headers: dict[str, str], name: str = "k") -> dict[str, str]:
    r = await client.post("/api/v1/auth/keys", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text
    return {"x-api-key": r.json()["key"]}


async def credential(client: httpx.AsyncClient, kind: str, login: str = ADMIN_LOGIN,
                     password: str = ADMIN_PASSWORD) -> dict[str, str]:
    """Headers for a fresh session, token or API key of that user."""
    if kind == "session":
        return await session(client, login, password)
    token = await token_for(client, login, password)
    return token if kind == "token" else await api_key(client, token)


async def status(client: httpx.AsyncClient, headers: dict[str, str], path: str = THINGS) -> int:
    return (await client.get(path, headers=headers)).status_code


def assert_error(r: httpx.Response, code: int, *tags: str) -> dict[str, Any]:
    """The error envelope of API.md section 2; 400s carry `fields` exactly when tagged validation."""
    assert r.status_code == code, r.text
    body = r.json()
    assert body["success"] is False and body["code"] == str(code), body
    assert isinstance(body["message"], str) and body["message"], body
    if code == 400 and not tags:
        tags = ("error_validation",) if "fields" in body else ("error_bad_request",)
    assert body["tags"] == list(tags), body
    assert set(body) <= {"success", "code", "message", "tags", "fields"}, body
    return body


async def listing(client: httpx.AsyncClient, headers: dict[str, str], store: str = "things") -> list[Any]:
    r = await client.get(f"/api/v1/{store}", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json())


async def user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get("/api/v1/auth/me", headers=headers)).json()["_id"])


# --- sessions -------------------------------------------------------------------------------

COOKIE = re.compile(r"sid=([^;]+); Path=/; Expires=([^;]+); HttpOnly; SameSite=Lax(; Secure)?")


async def test_session_login_sets_the_contract_cookie(client):
    before = datetime.now(UTC)
    r = await client.post("/api/v1/auth", json=ADMIN)
    assert r.status_code == 200 and r.json() == {"success": True}
    match = COOKIE.fullmatch(r.headers["set-cookie"])
    assert match is not None and match.group(3) is None, r.headers["set-cookie"]
    expires = parsedate_to_datetime(match.group(2))
    assert abs(expires - (before + timedelta(hours=24))) < timedelta(seconds=5)  # default session lifetime
    cookie = {"Cookie": f"sid={match.group(1)}"}
    assert await status(client, cookie) == 200
    assert (await client.get("/api/v1/auth/me", headers=cookie)).json()["login"] == ADMIN_LOGIN
    assert_error(await client.get(THINGS, headers={"Cookie": "sid=not-a-session"}), 401, "error_unauthorized")


async def test_the_cookie_is_secure_when_configured(settings, seen):
    async with other_app(settings, seen, cookie_secure=True) as c:
        r = await c.post("/api/v1/auth", json=ADMIN)
        match = COOKIE.fullmatch(r.headers["set-cookie"])
        assert match is not None and match.group(3) == "; Secure", r.headers["set-cookie"]
        assert await status(c, {"Cookie": f"sid={match.group(1)}"}) == 200


def cookie_cleared(header: str) -> bool:
    parts = dict(p.strip().partition("=")[::2] for p in header.split(";"))
    if parts.get("sid") != "":
        return False
    if parts.get("Max-Age") == "0":
        return True
    return "Expires" in parts and parsedate_to_datetime(parts["Expires"]) <= datetime.now(UTC)


@pytest.mark.parametrize("kind", ["session", "token", "key"])
async def test_logout_ends_the_credential_used_and_clears_the_cookie(client, admin, kind):
    headers = await credential(client, kind)
    assert await status(client, headers) == 200
    r = await client.post("/api/v1/auth/logout", headers=headers)
    assert r.status_code == 200 and r.json() == {"success": True}
    assert cookie_cleared(r.headers["set-cookie"]), r.headers["set-cookie"]
    assert_error(await client.get(THINGS, headers=headers), 401, "error_unauthorized")
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401
    assert await status(client, admin) == 200  # the user's other credentials live on


@pytest.mark.parametrize("kind", ["session", "token", "key"])
async def test_me_is_the_callers_user_without_secrets(client, users, kind):
    ann_id, _ = await users.user("ann", roles=["editor"])
    await users.user("bob")
    r = await client.get("/api/v1/auth/me", headers=await credential(client, kind, "ann", PASSWORD))
    assert r.status_code == 200
    me = r.json()
    assert me["_id"] == ann_id and me["login"] == "ann" and me["roles"] == ["editor"]
    assert "password" not in me and not any(k.startswith("_") and k != "_id" for k in me)


# --- API keys -------------------------------------------------------------------------------

async def test_api_key_lifecycle(client, admin, users):
    r = await client.post("/api/v1/auth/keys", json={"name": "ci"}, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert {"_id", "name", "key"} <= created.keys() and created["name"] == "ci"
    assert re.fullmatch(r"[0-9a-f]{24}", created["_id"]) and len(created["key"]) >= 32
    assert r.headers["location"].endswith(created["_id"])
    key = {"x-api-key": created["key"]}
    assert await status(client, key) == 200
    assert (await client.get("/api/v1/auth/me", headers=key)).json()["login"] == ADMIN_LOGIN

    listed = await client.get("/api/v1/auth/keys", headers=admin)
    assert [(k["_id"], k["name"]) for k in listed.json()] == [(created["_id"], "ci")]
    assert all("key" not in k and "hash" not in k for k in listed.json())
    for secret in (created["key"], hashlib.sha256(created["key"].encode()).hexdigest()):
        assert secret not in listed.text

    _, bob = await users.user("bob")
    assert await listing(client, bob, "auth/keys") == []
    assert_error(await client.delete(f"/api/v1/auth/keys/{created['_id']}", headers=bob), 404, "error_not_found")
    assert await status(client, key) == 200  # bob could not delete it

    assert (await client.delete(f"/api/v1/auth/keys/{created['_id']}", headers=admin)).status_code == 200
    assert_error(await client.get(THINGS, headers=key), 401, "error_unauthorized")
    assert await listing(client, admin, "auth/keys") == []
    for gone in (created["_id"], MISSING_ID, "not-an-id"):
        assert (await client.delete(f"/api/v1/auth/keys/{gone}", headers=admin)).status_code == 404


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": 5}])
async def test_an_api_key_needs_a_name(client, admin, body):
    assert_error(await client.post("/api/v1/auth/keys", json=body, headers=admin), 400)
    assert await listing(client, admin, "auth/keys") == []


# --- failures -------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", THINGS), ("POST", THINGS), ("DELETE", f"{THINGS}/{MISSING_ID}"),
    ("GET", "/api/v1/nosuchstore"), ("POST", "/api/v1/nosuchstore"), ("GET", f"/api/v1/nosuchstore/{MISSING_ID}"),
    ("GET", "/api/v1/users"), ("GET", "/api/v1/groups"), ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/auth/keys"), ("POST", "/api/v1/auth/keys"), ("POST", "/api/v1/auth/logout"),
])
async def test_no_credentials_is_401_before_anything_else(client, admin, method, path):
    r = await client.request(method, path, json={"name": "x"} if method == "POST" else None)
    assert_error(r, 401, "error_unauthorized")
    assert await listing(client, admin) == []


async def test_an_unknown_store_is_404_once_authenticated(client, admin):
    assert_error(await client.get("/api/v1/nosuchstore", headers=admin), 404, "error_not_found")


# --- CSRF: the Origin check on cookie-authenticated writes -------------------------------------

async def check_writes(client: httpx.AsyncClient, admin: dict[str, str], headers: dict[str, str],
                       allowed: bool) -> None:
    """POST, PATCH, PUT, DELETE with `headers`: all pass, or all are 403 and nothing changes."""
    r = await client.post(THINGS, json={"name": "target"}, headers=admin)
    url = f"{THINGS}/{r.json()['_id']}"
    before = await listing(client, admin)
    for method, path, body in (("POST", THINGS, {"name": "new"}), ("PATCH", url, {"count": 2}),
                               ("PUT", url, {"name": "put"}), ("DELETE", url, None)):
        r = await client.request(method, path, json=body, headers=headers)
        if allowed:
            assert r.status_code == (201 if method == "POST" else 200), (method, r.text)
        else:
            assert_error(r, 403, "error_forbidden")
    after = await listing(client, admin)
    if allowed:
        assert [t["name"] for t in after] == ["new"]
    else:
        assert after == before


@pytest.mark.parametrize("kind,origin,allowed", [
    ("session", EVIL, False), ("session", "http://testserver", True),
    ("token", EVIL, True), ("key", EVIL, True),
])
async def test_origin_check_on_writes(client, admin, kind, origin, allowed):
    headers = {**await credential(client, kind), "Origin": origin}
    await check_writes(client, admin, headers, allowed)


@pytest.mark.parametrize("origin,allowed", [("https://app.example", True), (EVIL, False)])
async def test_allowed_origins_setting(settings, seen, origin, allowed):
    async with other_app(settings, seen, allowed_origins=("https://app.example",)) as c:
        admin = await token_for(c, ADMIN_LOGIN, ADMIN_PASSWORD)
        await check_writes(c, admin, {**await session(c), "Origin": origin}, allowed)


async def test_cross_origin_cookie_calls_on_auth_routes_are_403(client, admin):
    cookie = await session(client)
    evil = {**cookie, "Origin": EVIL}
    assert_error(await client.post("/api/v1/auth/keys", json={"name": "k"}, headers=evil), 403, "error_forbidden")
    assert await listing(client, admin, "auth/keys") == []
    assert_error(await client.post("/api/v1/auth/logout", headers=evil), 403, "error_forbidden")
    assert await status(client, cookie) == 200


# --- users and groups (section 4) -----------------------------------------------------------------

async def test_admin_creates_groups_and_users(client, admin):
    r = await client.post("/api/v1/groups", json={"name": "staff", "description": "Our staff"}, headers=admin)
    assert r.status_code == 201 and r.json()["name"] == "staff"
    group = r.json()["_id"]
    assert r.headers["location"] == f"/api/v1/groups/{group}"
    body = {"login": "ann", "password": PASSWORD, "name": "Ann", "email": "ann@example.org", "groups": [group]}
    r = await client.post("/api/v1/users", json=body, headers=admin)
    assert r.status_code == 201, r.text
    ann = r.json()
    assert r.headers["location"] == f"/api/v1/users/{ann['_id']}"
    shown = ("login", "name", "email", "groups")
    assert {k: ann.get(k) for k in shown} == {k: body[k] for k in shown}
    assert "password" not in ann
    me = await client.get("/api/v1/auth/me", headers=await token_for(client, "ann", PASSWORD))
    assert me.json()["_id"] == ann["_id"] and me.json()["groups"] == [group]


@pytest.mark.parametrize("store,body,code", [
    ("users", {"login": ADMIN_LOGIN, "password": PASSWORD}, 409),
    ("users", {"login": "ann", "password": SHORT_PASSWORD}, 400),
    ("users", {"login": "ann"}, 400),
    ("groups", {"name": "staff"}, 409),
], ids=["duplicate-login", "short-password", "no-password", "duplicate-group"])
async def test_refused_users_and_groups_are_not_written(client, admin, users, store, body, code):
    await users.group("staff")
    before = {s: await listing(client, admin, s) for s in ("users", "groups")}
    r = await client.post(f"/api/v1/{store}", json=body, headers=admin)
    if code == 409:
        assert_error(r, 409, "error_conflict")
    else:
        assert "password" in assert_error(r, 400, "error_validation")["fields"]
    assert {s: await listing(client, admin, s) for s in ("users", "groups")} == before


@pytest.mark.parametrize("store,body", [
    ("users", {"login": "eve", "password": PASSWORD}),
    ("users", {"login": "eve", "password": PASSWORD, "roles": ["admin"]}),
    ("groups", {"name": "mine"}),
])
async def test_non_admins_cannot_create_users_or_groups(client, admin, users, store, body):
    _, ann = await users.user("ann")
    before = await listing(client, admin, store)
    assert_error(await client.post(f"/api/v1/{store}", json=body, headers=ann), 403, "error_forbidden")
    assert await listing(client, admin, store) == before


async def test_a_user_reads_only_themself(client, admin, users):
    ann_id, ann = await users.user("ann")
    bob_id, _ = await users.user("bob")
    for other in (bob_id, await user_id(client, admin)):
        assert_error(await client.get(f"/api/v1/users/{other}", headers=ann), 404, "error_not_found")
    assert [u["_id"] for u in await listing(client, ann, "users")] == [ann_id]
    assert (await client.get("/api/v1/users?meta=true", headers=ann)).json()["total"] == 1
    assert (await client.get(f"/api/v1/users/{ann_id}", headers=ann)).json()["login"] == "ann"
    assert len(await listing(client, admin, "users")) == 3


async def test_a_user_patches_their_own_name_email_and_password(client, admin, users):
    ann_id, ann = await users.user("ann")
    bob_id, _ = await users.user("bob")
    me = f"/api/v1/users/{ann_id}"
    r = await client.patch(me, json={"name": "Ann", "email": "ann@example.org"}, headers=ann)
    assert r.status_code == 200 and (r.json()["name"], r.json()["email"]) == ("Ann", "ann@example.org")
    assert_error(await client.patch(me, json={"password": SHORT_PASSWORD}, headers=ann), 400, "error_validation")
    assert (await client.patch(me, json={"password": NEW_PASSWORD}, headers=ann)).status_code == 200
    assert await status(client, await token_for(client, "ann", NEW_PASSWORD)) == 200
    assert_error(await client.post("/api/v1/auth/token", json={"login": "ann", "password": PASSWORD}),
                 401, *CREDENTIALS)
    bob_before = (await client.get(f"/api/v1/users/{bob_id}", headers=admin)).json()
    r = await client.patch(f"/api/v1/users/{bob_id}", json={"name": "Bobby"}, headers=ann)
    assert_error(r, 404, "error_not_found")
    assert (await client.get(f"/api/v1/users/{bob_id}", headers=admin)).json() == bob_before


@pytest.mark.parametrize("method,change", [
    ("PATCH", {"roles": ["admin"]}), ("PATCH", {"groups": ["GROUP"]}), ("PATCH", {"login": "root"}),
    ("PATCH", {"active": False}), ("PATCH", {"name": "Ann", "roles": ["admin"]}),
    ("PUT", {"login": "ann", "roles": ["admin"], "groups": []}),
], ids=["roles", "groups", "login", "active", "name+roles", "put-roles"])
async def test_a_user_may_not_change_their_roles_groups_login_or_active(client, admin, users, method, change):
    group = await users.group("staff")
    ann_id, ann = await users.user("ann")
    me = f"/api/v1/users/{ann_id}"
    before = (await client.get(me, headers=admin)).json()
    body = {k: [group] if v == ["GROUP"] else v for k, v in change.items()}
    assert_error(await client.request(method, me, json=body, headers=ann), 403, "error_forbidden")
    assert (await client.get(me, headers=admin)).json() == before
    assert await status(client, ann) == 200
    assert_error(await client.post("/api/v1/groups", json={"name": "x"}, headers=ann), 403, "error_forbidden")


async def test_members_read_their_groups_and_others_get_404(client, admin, users):
    staff, other = await users.group("staff"), await users.group("other")
    _, ann = await users.user("ann", groups=[staff])
    _, bob = await users.user("bob")
    assert (await client.get(f"/api/v1/groups/{staff}", headers=ann)).json()["name"] == "staff"
    for headers, group in ((ann, other), (bob, staff)):
        assert_error(await client.get(f"/api/v1/groups/{group}", headers=headers), 404, "error_not_found")
    assert [g["name"] for g in await listing(client, ann, "groups")] == ["staff"]
    assert await listing(client, bob, "groups") == []
    before = await listing(client, admin, "groups")
    assert_error(await client.patch(f"/api/v1/groups/{staff}", json={"name": "mine"}, headers=ann),
                 403, "error_forbidden")
    assert_error(await client.delete(f"/api/v1/groups/{staff}", headers=ann), 403, "error_forbidden")
    assert await listing(client, admin, "groups") == before


# --- secrets --------------------------------------------------------------------------------------

def storage(app: Any) -> Any:
    return app.other_asgi_app.app.state.ctx.storage


async def test_passwords_are_stored_as_salted_hashes_and_never_returned(app, client, admin, users):
    ann_id, ann = await users.user("ann")
    await users.user("bob")  # same password
    stored = {d["login"]: d["password"] for d in await storage(app).collection("users").find({})}
    assert stored["ann"].startswith("$argon2id$") and stored["ann"] != stored["bob"]  # salted
    me = f"/api/v1/users/{ann_id}"
    answers = [
        await client.get(me, headers=admin), await client.get(me, headers=ann),
        await client.get("/api/v1/users", headers=admin), await client.get("/api/v1/users?meta=true", headers=admin),
        await client.get("/api/v1/users?only=login,name", headers=admin),
        await client.get("/api/v1/auth/me", headers=ann),
        await client.patch(me, json={"password": NEW_PASSWORD}, headers=ann),
        await client.put(me, json={"login": "ann", "name": "Ann", "groups": [], "roles": []}, headers=admin),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        assert "password" not in r.text and "_auth" not in r.text, (r.request.url, r.text)
    assert await status(client, await token_for(client, "ann", NEW_PASSWORD)) == 200  # the PUT kept it


@pytest.mark.parametrize("params", [
    {"filter": '{"password": {"$exists": true}}'}, {"filter": '{"password": {"$regex": "^.arg"}}'},
    {"filter": '{"$or": [{"login": "ann"}, {"password": "x"}]}'}, {"sort": "password"}, {"sort": "-password"},
    {"only": "password"}, {"only": "login,password"}, {"password": PASSWORD},
])
async def test_password_is_not_filterable_sortable_or_selectable(client, admin, users, params):
    await users.user("ann")
    assert_error(await client.get("/api/v1/users", params=params, headers=admin), 400)


# --- the first admin and the CLI ------------------------------------------------------------------

async def test_bootstrap_admin_from_the_environment(schema_dir, seen, monkeypatch):
    monkeypatch.delenv("STORE_MONGODB_URI", raising=False)
    monkeypatch.setenv("STORE_ADMIN_LOGIN", "root")
    monkeypatch.setenv("STORE_ADMIN_PASSWORD", NEW_PASSWORD)
    app = create_app(Settings(schema_dir=schema_dir, secret=SECRET, data_dir=":memory:", **FAST_HASH))
    async with lifespan(app), recording(app, seen) as c:
        root = await token_for(c, "root", NEW_PASSWORD)
        me = (await c.get("/api/v1/auth/me", headers=root)).json()
        assert (me["login"], me["roles"]) == ("root", ["admin"])
        assert [u["login"] for u in await listing(c, root, "users")] == ["root"]
        assert (await c.post("/api/v1/groups", json={"name": "ops"}, headers=root)).status_code == 201


async def test_bootstrap_without_a_password_logs_a_random_one_once(settings, seen, caplog):
    async with other_app(settings, seen, admin_password=None) as c:
        await asyncio.sleep(settings.schema_poll_seconds * 3)  # later maintenance ticks must not log it again
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("storeengine")]
        words = {w for line in lines if "password" in line.lower()
                 for w in re.findall(r"[A-Za-z0-9_-]{12,}", line) if not w.isupper()}
        assert len(words) == 1, lines
        password = words.pop()
        admin = await token_for(c, ADMIN_LOGIN, password)
        assert (await c.get("/api/v1/auth/me", headers=admin)).json()["roles"] == ["admin"]
        assert sum(password in line for line in lines) == 1
        assert_error(await c.post("/api/v1/auth/token", json=ADMIN), 401, *CREDENTIALS)
    assert not any(password in r.text for r in seen)


def _user_create(data_dir: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STORE_MONGODB_URI"}
    return subprocess.run([sys.executable, "-m", "storeengine", "user", "create", "--login", "carl",
                           "--password", NEW_PASSWORD], check=False, env={**env, "STORE_DATA_DIR": data_dir},
                          capture_output=True, text=True, timeout=60)


def test_cli_user_create_refuses_an_in_memory_database():
    r = _user_create(":memory:")
    assert r.returncode != 0
    assert "STORE_DATA_DIR" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert NEW_PASSWORD not in r.stdout + r.stderr


def test_cli_user_create_writes_into_the_embedded_database_a_server_then_serves(tmp_path, schema_dir):
    data = tmp_path / "data"
    r = _user_create(str(data))
    assert r.returncode == 0, r.stderr
    assert NEW_PASSWORD not in r.stdout + r.stderr
    server = start_server(schema_dir, tmp_path / "server.log", env={"STORE_DATA_DIR": str(data)})
    try:
        login = httpx.post(f"{server.url}/api/v1/auth/token", json={"login": "carl", "password": NEW_PASSWORD})
        assert login.status_code == 200, login.text
        busy = _user_create(str(data))  # the server holds the folder: refused, with the reason
        assert busy.returncode != 0 and "in use by another storeengine server" in busy.stderr, busy.stderr
        assert "Traceback" not in busy.stderr
    finally:
        stop_server(server)


async def test_create_user_makes_missing_groups(app, client, admin):
    from storeengine.auth.bootstrap import create_user

    service = app.other_asgi_app.app.state.ctx.service
    user = await create_user(service, "carl", PASSWORD, admin=True, group_names=["ops", "ops-2"])
    groups = {g["name"]: g["_id"] for g in (await client.get("/api/v1/groups", headers=admin)).json()}
    assert [str(g) for g in user["groups"]] == [groups["ops"], groups["ops-2"]]
    again = await create_user(service, "dana", PASSWORD, admin=False, group_names=["ops"])
    assert [str(g) for g in again["groups"]] == [groups["ops"]]
    carl = await token_for(client, "carl", PASSWORD)
    assert (await client.get("/api/v1/users", headers=carl)).status_code == 200
    assert len((await client.get("/api/v1/users", headers=carl)).json()) == 3  # an admin sees everyone
