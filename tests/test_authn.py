"""Authentication: sessions, tokens, refresh, logout, API keys, guards (API.md section 3)."""

from __future__ import annotations

import time
import warnings

import httpx
import jwt
import pytest

from storeengine.app import create_app
from storeengine.settings import Settings
from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, lifespan, token_for

SECRET = "test-secret-of-at-least-32-bytes!!"
CREDENTIALS = ["error_unauthorized", "error_credentials"]


def claims(sub: str, **extra) -> dict:
    now = int(time.time())
    return {"sub": sub, "iat": now, "nbf": now, "exp": now + 60, "jti": f"{now * 1000:x}.abc", "iss": "storeengine",
            **extra}


def _quiet_encode(payload: dict, key: str, alg: str) -> str:
    # An HS512 token signed with the server's (short for HS512) secret: PyJWT warns, we mean it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(payload, key, algorithm=alg)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status(client, headers, path="/api/v1/things") -> int:
    return (await client.get(path, headers=headers)).status_code


async def test_session_login_sets_the_cookie_the_contract_names(client):
    r = await client.post("/api/v1/auth", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    assert r.status_code == 200 and r.json() == {"success": True}
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("sid=")
    for part in ("Path=/", "Expires=", "HttpOnly", "SameSite=Lax"):
        assert part in cookie
    assert "Secure" not in cookie
    assert await status(client, {"Cookie": f"sid={r.cookies['sid']}"}) == 200


async def test_secure_cookie_when_configured(settings):
    app = create_app(settings.model_copy(update={"cookie_secure": True}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/v1/auth", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
        assert "Secure" in r.headers["set-cookie"]


async def test_token_answer_shape_and_claims(client):
    r = await client.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    body = r.json()
    assert set(body) == {"success", "type", "token", "issuedAt", "expiresAt", "refreshToken", "refreshExpiresAt"}
    assert body["success"] is True and body["type"] == "access"
    assert body["expiresAt"] - body["issuedAt"] == pytest.approx(24 * 3600 * 1000, abs=1000)
    assert body["refreshExpiresAt"] - body["issuedAt"] == pytest.approx(30 * 24 * 3600 * 1000, abs=1000)
    decoded = jwt.decode(body["token"], SECRET, algorithms=["HS256"], issuer="storeengine")
    assert set(decoded) == {"sub", "iat", "nbf", "exp", "jti", "iss"}
    me = (await client.get("/api/v1/auth/me", headers=bearer(body["token"]))).json()
    assert decoded["sub"] == me["_id"] and me["login"] == ADMIN_LOGIN
    assert "password" not in me and "_auth" not in me


async def test_refresh_rotates(client):
    first = (await client.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})).json()
    r = await client.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refreshToken"] != first["refreshToken"] and second["type"] == "access"
    assert await status(client, bearer(second["token"])) == 200
    reused = await client.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert reused.status_code == 401
    assert (await client.post("/api/v1/auth/refresh", json={})).status_code == 400
    assert (await client.post("/api/v1/auth/refresh", json={"refreshToken": "forged"})).status_code == 401


@pytest.mark.parametrize("body,code", [
    ({"login": ADMIN_LOGIN, "password": "wrong-password"}, 401),
    ({"login": "nobody", "password": ADMIN_PASSWORD}, 401),
    ({"login": ADMIN_LOGIN}, 400), ({"password": "x"}, 400), ({}, 400), ({"login": 1, "password": 2}, 400),
])
@pytest.mark.parametrize("path", ["/api/v1/auth", "/api/v1/auth/token"])
async def test_login_failures(client, path, body, code):
    r = await client.post(path, json=body)
    assert r.status_code == code
    if code == 401:
        assert r.json()["tags"] == CREDENTIALS
        assert "set-cookie" not in r.headers


async def test_logout_ends_the_credential_used(client, admin):
    r = await client.post("/api/v1/auth", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    cookie = {"Cookie": f"sid={r.cookies['sid']}"}
    key = (await client.post("/api/v1/auth/keys", json={"name": "k"}, headers=admin)).json()["key"]
    token = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
    for headers in (cookie, {"x-api-key": key}, token):
        assert await status(client, headers) == 200
        out = await client.post("/api/v1/auth/logout", headers=headers)
        assert out.status_code == 200 and out.json() == {"success": True}
        assert await status(client, headers) == 401
    assert out.headers["set-cookie"].startswith("sid=;") and "Max-Age=0" in out.headers["set-cookie"]
    assert await status(client, admin) == 200  # other credentials of the same user live on


async def test_api_keys(client, admin, users):
    r = await client.post("/api/v1/auth/keys", json={"name": "ci"}, headers=admin)
    assert r.status_code == 201
    created = r.json()
    assert {"_id", "name", "key"} <= created.keys()
    assert await status(client, {"x-api-key": created["key"]}) == 200
    listed = (await client.get("/api/v1/auth/keys", headers=admin)).json()
    assert [k["name"] for k in listed] == ["ci"]
    assert created["key"] not in str(listed) and "hash" not in listed[0] and "key" not in listed[0]
    _, other = await users.user("other")
    assert (await client.delete(f"/api/v1/auth/keys/{created['_id']}", headers=other)).status_code == 404
    assert (await client.delete(f"/api/v1/auth/keys/{created['_id']}", headers=admin)).status_code == 200
    assert await status(client, {"x-api-key": created["key"]}) == 401
    assert (await client.post("/api/v1/auth/keys", json={"name": ""}, headers=admin)).status_code == 400


async def test_anonymous_gets_401_before_anything_else(client):
    for method, path in (("GET", "/api/v1/things"), ("GET", "/api/v1/nosuchstore"), ("POST", "/api/v1/nosuch"),
                         ("GET", "/api/v1/_schemas"), ("GET", "/api/v1/auth/me"), ("GET", "/api/v1/auth/keys"),
                         ("DELETE", "/api/v1/things/0123456789abcdef01234567")):
        r = await client.request(method, path)
        assert r.status_code == 401, path
        assert r.json()["tags"] == ["error_unauthorized"]


async def test_forged_tokens_are_401(client, admin):
    me = (await client.get("/api/v1/auth/me", headers=admin)).json()["_id"]
    good = jwt.encode(claims(me), SECRET, algorithm="HS256")
    assert await status(client, bearer(good)) == 200
    head, body, sig = good.split(".")
    forged = [
        f"{head}.{body}.{sig[:-2]}xx",
        jwt.encode(claims(me, exp=int(time.time()) - 10), SECRET, algorithm="HS256"),
        jwt.encode(claims(me), None, algorithm="none"),
        _quiet_encode(claims(me), SECRET, "HS512"),
        jwt.encode(claims(me), "another-secret-of-at-least-32-bytes", algorithm="HS256"),
        jwt.encode(claims(me, iss="someone-else"), SECRET, algorithm="HS256"),
        jwt.encode(claims("0123456789abcdef01234567"), SECRET, algorithm="HS256"),
        jwt.encode(claims("not-an-id"), SECRET, algorithm="HS256"),
        jwt.encode({k: v for k, v in claims(me).items() if k != "jti"}, SECRET, algorithm="HS256"),
        jwt.encode(claims(me, nbf=int(time.time()) + 600), SECRET, algorithm="HS256"),
        "not.a.jwt",
    ]
    for token in forged:
        assert await status(client, bearer(token)) == 401, token
    for header in ("Basic YWRtaW46eA==", "Bearer", "Token abc"):
        assert await status(client, {"Authorization": header}) == 401


async def test_throttling_after_five_failures(client):
    for _ in range(5):
        r = await client.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": "wrong-password"})
        assert r.status_code == 401
    r = await client.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    assert r.status_code == 429 and r.json()["tags"] == ["error_too_many_requests"]
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    other = await client.post("/api/v1/auth/token", json={"login": "nobody", "password": "x"})
    assert other.status_code == 401


async def test_throttling_window_passes(settings):
    app = create_app(settings.model_copy(update={"login_window_seconds": 1}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(5):
            await c.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": "wrong-password"})
        good = {"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD}
        assert (await c.post("/api/v1/auth/token", json=good)).status_code == 429
        time.sleep(1.1)
        assert (await c.post("/api/v1/auth/token", json=good)).status_code == 200


@pytest.fixture
async def cookie(client) -> dict[str, str]:
    r = await client.post("/api/v1/auth", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    return {"Cookie": f"sid={r.cookies['sid']}"}


async def test_csrf_cross_origin_cookie_writes_are_403(client, cookie, admin):
    evil = {**cookie, "Origin": "http://evil.example"}
    r = await client.post("/api/v1/things", json={"name": "x"}, headers=evil)
    assert r.status_code == 403 and r.json()["tags"] == ["error_forbidden"]
    doc = (await client.post("/api/v1/things", json={"name": "own"}, headers={**cookie, "Origin": "http://testserver"}))
    assert doc.status_code == 201
    url = f"/api/v1/things/{doc.json()['_id']}"
    for method in ("PATCH", "PUT", "DELETE"):
        assert (await client.request(method, url, json={"name": "y"}, headers=evil)).status_code == 403
    assert (await client.get(url, headers=evil)).status_code == 200  # reads are not writes
    assert [d["name"] for d in (await client.get("/api/v1/things", headers=admin)).json()] == ["own"]
    bearer_evil = {**admin, "Origin": "http://evil.example"}
    assert (await client.post("/api/v1/things", json={"name": "b"}, headers=bearer_evil)).status_code == 201


async def test_allowed_origins_may_write_with_cookies(settings):
    app = create_app(settings.model_copy(update={"allowed_origins": ("https://app.example",)}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/v1/auth", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
        headers = {"Cookie": f"sid={r.cookies['sid']}", "Origin": "https://app.example"}
        r = await c.post("/api/v1/things", json={"name": "x"}, headers=headers)
        assert r.status_code == 201
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_allowed_origins_parse_from_the_environment(monkeypatch):
    monkeypatch.setenv("STORE_ALLOWED_ORIGINS", "https://a.example, https://b.example/")
    assert Settings().allowed_origins == ("https://a.example", "https://b.example")
