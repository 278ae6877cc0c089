"""Users and groups (API.md section 4), revocation on user changes, and secrets staying secret."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import httpx

from storeengine.app import create_app
from tests.conftest import ADMIN_LOGIN, lifespan, token_for

PASSWORD = "password-123"


async def test_admin_manages_users_and_groups(client, admin, users):
    group = await users.group("staff")
    r = await client.post("/api/v1/users", json={"login": "ann", "password": PASSWORD, "groups": [group]},
                          headers=admin)
    assert r.status_code == 201
    assert "password" not in r.json() and r.json()["groups"] == [group]
    dup = await client.post("/api/v1/users", json={"login": "ann", "password": PASSWORD}, headers=admin)
    assert dup.status_code == 409
    short = await client.post("/api/v1/users", json={"login": "bob", "password": "short"}, headers=admin)
    assert short.status_code == 400 and short.json()["fields"] == {"password": "must be at least 8 characters"}
    logins = [u["login"] for u in (await client.get("/api/v1/users", headers=admin)).json()]
    assert logins == [ADMIN_LOGIN, "ann"]
    assert (await client.post("/api/v1/groups", json={"name": "staff"}, headers=admin)).status_code == 409


async def test_a_user_sees_and_patches_only_themself(client, admin, users):
    ann_id, ann = await users.user("ann")
    bob_id, _ = await users.user("bob")
    assert (await client.get(f"/api/v1/users/{bob_id}", headers=ann)).status_code == 404
    assert [u["_id"] for u in (await client.get("/api/v1/users", headers=ann)).json()] == [ann_id]
    me = f"/api/v1/users/{ann_id}"
    r = await client.patch(me, json={"name": "Ann", "email": "ann@example.org"}, headers=ann)
    assert r.status_code == 200 and r.json()["name"] == "Ann"
    for change in ({"roles": ["admin"]}, {"groups": [bob_id]}, {"login": "root"}, {"active": False}):
        r = await client.patch(me, json=change, headers=ann)
        assert r.status_code == 403, change
    after = (await client.get(me, headers=admin)).json()
    assert after["roles"] == [] and after["login"] == "ann" and after.get("active", True) is True
    assert (await client.patch(f"/api/v1/users/{bob_id}", json={"name": "x"}, headers=ann)).status_code == 404
    assert (await client.delete(me, headers=ann)).status_code == 403


async def test_non_admins_cannot_create_users_or_groups(client, users):
    _, ann = await users.user("ann")
    r = await client.post("/api/v1/users", json={"login": "eve", "password": PASSWORD, "roles": ["admin"]},
                          headers=ann)
    assert r.status_code == 403
    assert (await client.post("/api/v1/groups", json={"name": "g"}, headers=ann)).status_code == 403
    assert (await token_for_status(client, "eve")) == 401


async def token_for_status(client, login: str) -> int:
    r = await client.post("/api/v1/auth/token", json={"login": login, "password": PASSWORD})
    return r.status_code


async def test_members_read_their_groups(client, users):
    staff, other = await users.group("staff"), await users.group("other")
    _, ann = await users.user("ann", groups=[staff])
    assert (await client.get(f"/api/v1/groups/{staff}", headers=ann)).status_code == 200
    assert (await client.get(f"/api/v1/groups/{other}", headers=ann)).status_code == 404
    assert [g["name"] for g in (await client.get("/api/v1/groups", headers=ann)).json()] == ["staff"]
    assert (await client.patch(f"/api/v1/groups/{staff}", json={"name": "x"}, headers=ann)).status_code == 403


async def test_deactivation_ends_every_credential_at_once(client, admin, users):
    ann_id, token = await users.user("ann")
    r = await client.post("/api/v1/auth", json={"login": "ann", "password": PASSWORD})
    cookie = {"Cookie": f"sid={r.cookies['sid']}"}
    key = {"x-api-key": (await client.post("/api/v1/auth/keys", json={"name": "k"}, headers=token)).json()["key"]}
    for headers in (token, cookie, key):
        assert (await client.get("/api/v1/things", headers=headers)).status_code == 200
    assert (await client.patch(f"/api/v1/users/{ann_id}", json={"active": False}, headers=admin)).status_code == 200
    for headers in (token, cookie, key):
        assert (await client.get("/api/v1/things", headers=headers)).status_code == 401
    assert await token_for_status(client, "ann") == 401


async def test_password_change_ends_other_sessions_and_tokens(client, users):
    ann_id, first = await users.user("ann")
    second = await token_for(client, "ann", PASSWORD)
    r = await client.post("/api/v1/auth", json={"login": "ann", "password": PASSWORD})
    cookie = {"Cookie": f"sid={r.cookies['sid']}"}
    refresh = (await client.post("/api/v1/auth/token", json={"login": "ann", "password": PASSWORD})).json()
    r = await client.patch(f"/api/v1/users/{ann_id}", json={"password": "new-password-9"}, headers=first)
    assert r.status_code == 200 and "password" not in r.json()
    assert (await client.get("/api/v1/things", headers=first)).status_code == 200
    for headers in (second, cookie):
        assert (await client.get("/api/v1/things", headers=headers)).status_code == 401
    used = await client.post("/api/v1/auth/refresh", json={"refreshToken": refresh["refreshToken"]})
    assert used.status_code == 401
    assert await token_for_status(client, "ann") == 401
    assert (await client.post("/api/v1/auth/token", json={"login": "ann", "password": "new-password-9"})).is_success


async def test_secrets_never_leave_the_server(client, admin, users, caplog):
    caplog.set_level(logging.DEBUG)
    ann_id, ann = await users.user("ann", password="very-secret-password")
    answers = [
        await client.get(f"/api/v1/users/{ann_id}", headers=admin),
        await client.get("/api/v1/users", headers=admin),
        await client.get("/api/v1/users?meta=true", headers=admin),
        await client.get("/api/v1/auth/me", headers=ann),
        await client.patch(f"/api/v1/users/{ann_id}", json={"password": "another-secret-pw"}, headers=admin),
        await client.put(f"/api/v1/users/{ann_id}", json={"login": "ann", "name": "A"}, headers=admin),
        await client.post("/api/v1/users", json={"login": "x", "password": "tiny"}, headers=admin),
    ]
    for r in answers:
        for secret in ("very-secret-password", "another-secret-pw", "tiny", "argon2", "_auth"):
            assert secret not in r.text, (r.request.url, secret)
    for line in caplog.messages:
        assert "very-secret-password" not in line and "another-secret-pw" not in line and "argon2" not in line
    for params in ({"filter": '{"password": {"$regex": "^\\\\$argon"}}'}, {"sort": "password"}, {"only": "password"},
                   {"password": "x"}, {"filter": '{"_auth": {"$exists": true}}'}):
        r = await client.get("/api/v1/users", params=params, headers=admin)
        assert r.status_code == 400, params
    # A PUT without the password keeps it: the user can still log in with the last one set.
    login = {"login": "ann", "password": "another-secret-pw"}
    assert (await client.post("/api/v1/auth/token", json=login)).status_code == 200


async def test_bootstrap_with_a_random_password_logs_it_once(settings, caplog):
    caplog.set_level(logging.WARNING, logger="storeengine")
    app = create_app(settings.model_copy(update={"admin_password": None}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        lines = [m for m in caplog.messages if "random password" in m]
        assert len(lines) == 1
        password = lines[0].split("random password ", 1)[1].split(" ", 1)[0]
        assert (await token_for(c, ADMIN_LOGIN, password))["Authorization"].startswith("Bearer ")


def test_cli_user_create_needs_a_real_database():
    env = {k: v for k, v in os.environ.items() if k != "STORE_MONGODB_URI"}
    r = subprocess.run([sys.executable, "-m", "storeengine", "user", "create", "--login", "a", "--password", PASSWORD],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "STORE_MONGODB_URI" in r.stderr


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
