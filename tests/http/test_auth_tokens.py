"""Tokens and logins (API.md section 3): the token answer and its JWT, refresh, failed logins,
forged tokens, the Authorization scheme, throttling, and credentials ending when a user is
deactivated or changes password (section 4). Shares the secret-leak watch of test_auth.py."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from bson import ObjectId

from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, token_for
from tests.http import test_auth as shared
from tests.http.test_auth import (
    ADMIN,
    CREDENTIALS,
    NEW_PASSWORD,
    PASSWORD,
    THINGS,
    WRONG_PASSWORD,
    api_key,
    assert_error,
    other_app,
    session,
    status,
)

# The fixtures of test_auth.py: the recording client and the autouse secret-leak watch.
client, seen, no_leaks = shared.client, shared.seen, shared.no_leaks

ANSWER_KEYS = {"success", "type", "token", "issuedAt", "expiresAt", "refreshToken", "refreshExpiresAt"}
CLAIMS = {"sub", "iat", "nbf", "exp", "jti", "iss"}
DAY_MS = 24 * 3600 * 1000


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_answer(client: httpx.AsyncClient, login: str = ADMIN_LOGIN,
                       password: str = ADMIN_PASSWORD) -> dict[str, Any]:
    r = await client.post("/api/v1/auth/token", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refreshToken": refresh_token})


def check_answer(body: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The token answer of API.md 3; returns the JWT's verified claims."""
    assert set(body) == ANSWER_KEYS, body
    assert body["success"] is True and body["type"] == "access"
    assert isinstance(body["token"], str) and isinstance(body["refreshToken"], str) and body["refreshToken"]
    assert all(type(body[k]) is int for k in ("issuedAt", "expiresAt", "refreshExpiresAt")), body
    now_ms = time.time() * 1000
    assert now_ms - 5000 < body["issuedAt"] <= now_ms + 1000  # milliseconds, not seconds
    assert body["expiresAt"] - body["issuedAt"] == pytest.approx(DAY_MS, abs=1000)
    assert body["refreshExpiresAt"] - body["issuedAt"] == pytest.approx(30 * DAY_MS, abs=1000)
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"
    claims: dict[str, Any] = jwt.decode(body["token"], settings.secret, algorithms=["HS256"],
                                        issuer=settings.token_issuer, options={"require": sorted(CLAIMS)})
    assert claims.keys() >= CLAIMS
    assert claims["exp"] * 1000 == pytest.approx(body["expiresAt"], abs=1000)
    assert claims["iat"] * 1000 == pytest.approx(body["issuedAt"], abs=1000)
    return claims


async def test_token_answer_and_claims(client, settings):
    body = await token_answer(client)
    claims = check_answer(body, settings)
    me = (await client.get("/api/v1/auth/me", headers=bearer(body["token"]))).json()
    assert claims["sub"] == me["_id"] and me["login"] == ADMIN_LOGIN
    assert await status(client, bearer(body["token"])) == 200
    again = check_answer(await token_answer(client), settings)
    assert again["jti"] != claims["jti"]


async def test_refresh_rotates_and_the_old_refresh_token_stops_working(client, settings):
    first = await token_answer(client)
    r = await refresh(client, first["refreshToken"])
    assert r.status_code == 200, r.text
    second = r.json()
    first_jti = jwt.decode(first["token"], options={"verify_signature": False})["jti"]
    assert check_answer(second, settings)["jti"] != first_jti
    assert second["refreshToken"] != first["refreshToken"]
    assert await status(client, bearer(second["token"])) == 200
    assert_error(await refresh(client, first["refreshToken"]), 401, "error_unauthorized")
    third = await refresh(client, second["refreshToken"])  # the rotated one works, once
    assert third.status_code == 200
    assert (await refresh(client, second["refreshToken"])).status_code == 401


@pytest.mark.parametrize("body,code", [({}, 400), ({"refreshToken": ""}, 400), ({"refreshToken": "forged"}, 401)])
async def test_refresh_needs_a_valid_refresh_token(client, body, code):
    r = await client.post("/api/v1/auth/refresh", json=body)
    assert_error(r, code, *(("error_unauthorized",) if code == 401 else ()))


# --- failed logins ---------------------------------------------------------------------------------

LOGIN_PATHS = ["/api/v1/auth", "/api/v1/auth/token"]


@pytest.mark.parametrize("path", LOGIN_PATHS)
@pytest.mark.parametrize("body", [{"login": ADMIN_LOGIN, "password": WRONG_PASSWORD},
                                  {"login": "nobody", "password": ADMIN_PASSWORD}],
                         ids=["wrong-password", "unknown-login"])
async def test_wrong_credentials_are_401(client, path, body):
    r = await client.post(path, json=body)
    assert_error(r, 401, *CREDENTIALS)
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize("path", LOGIN_PATHS)
@pytest.mark.parametrize("body", [{"login": ADMIN_LOGIN}, {"password": ADMIN_PASSWORD}, {},
                                  {"login": "", "password": ""}])
async def test_missing_login_or_password_is_400(client, path, body):
    r = await client.post(path, json=body)
    assert_error(r, 400)
    assert "set-cookie" not in r.headers


# --- tokens that must be refused -------------------------------------------------------------------

def sign(claims: dict[str, Any], key: str | None, alg: str = "HS256") -> str:
    with warnings.catch_warnings():  # HS512 with a 34-byte key and `none` warn; we mean them
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm=alg)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def tampered(token: str, claims: dict[str, Any], secret: str) -> str:
    head, _, sig = token.split(".")
    return f"{head}.{b64({**claims, 'exp': claims['exp'] + 3600})}.{sig}"


def bad_signature(token: str, claims: dict[str, Any], secret: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{sig[:10]}{'B' if sig[10] == 'A' else 'A'}{sig[11:]}"


def expired(token: str, claims: dict[str, Any], secret: str) -> str:
    now = int(time.time())
    return sign({**claims, "iat": now - 120, "nbf": now - 120, "exp": now - 60}, secret)


Forgery = Callable[[str, dict[str, Any], str], str]
FORGERIES: dict[str, Forgery] = {
    "tampered-payload": tampered,
    "bad-signature": bad_signature,
    "expired": expired,
    "alg-none": lambda t, c, s: sign(c, None, "none"),
    "hs512-same-secret": lambda t, c, s: sign(c, s, "HS512"),
    "other-secret": lambda t, c, s: sign(c, "another-secret-of-at-least-32-bytes"),
    "wrong-issuer": lambda t, c, s: sign({**c, "iss": "someone-else"}, s),
    "unknown-user": lambda t, c, s: sign({**c, "sub": str(ObjectId())}, s),
    "no-exp": lambda t, c, s: sign({k: v for k, v in c.items() if k != "exp"}, s),
    "not-a-jwt": lambda t, c, s: "not.a.jwt",
}


@pytest.mark.parametrize("name", FORGERIES)
async def test_forged_tokens_are_401(client, admin, settings, name):
    token = admin["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, settings.secret, algorithms=["HS256"], issuer=settings.token_issuer)
    assert await status(client, bearer(sign(claims, settings.secret))) == 200  # re-signing as such is fine
    r = await client.get(THINGS, headers=bearer(FORGERIES[name](token, claims, settings.secret)))
    assert_error(r, 401, "error_unauthorized")


@pytest.mark.parametrize("header", ["Basic {t}", "Token {t}", "JWT {t}", "{t}", "Bearer"])
async def test_authorization_must_be_bearer(client, admin, header):
    token = admin["Authorization"].removeprefix("Bearer ")
    r = await client.get(THINGS, headers={"Authorization": header.format(t=token)})
    assert_error(r, 401, "error_unauthorized")


# --- throttling -----------------------------------------------------------------------------------

async def fail(client: httpx.AsyncClient, login: str, times: int = 5) -> None:
    for _ in range(times):
        r = await client.post("/api/v1/auth/token", json={"login": login, "password": WRONG_PASSWORD})
        assert_error(r, 401, *CREDENTIALS)


async def test_four_failures_do_not_throttle(client):
    await fail(client, ADMIN_LOGIN, 4)
    await token_answer(client)


@pytest.mark.parametrize("login", [ADMIN_LOGIN, "ghost"])
async def test_after_five_failures_a_login_is_throttled_and_others_are_not(client, users, login):
    await users.user("bob")
    await fail(client, login)
    for path in ("/api/v1/auth/token", "/api/v1/auth"):
        r = await client.post(path, json={"login": login, "password": ADMIN_PASSWORD})
        assert_error(r, 429, "error_too_many_requests")
        assert 1 <= int(r.headers["retry-after"]) <= 15 * 60
        assert "set-cookie" not in r.headers
    assert await status(client, await token_for(client, "bob", PASSWORD)) == 200


async def test_throttling_ends_when_the_window_passes(settings, seen):
    async with other_app(settings, seen, login_window_seconds=1) as c:
        await fail(c, ADMIN_LOGIN)
        r = await c.post("/api/v1/auth/token", json=ADMIN)
        assert_error(r, 429, "error_too_many_requests")
        assert r.headers["retry-after"] == "1"
        await asyncio.sleep(1.05)
        assert await status(c, await token_for(c, ADMIN_LOGIN, ADMIN_PASSWORD)) == 200


# --- credentials ending with user changes ----------------------------------------------------------

async def test_a_deactivated_user_is_locked_out_at_once(client, admin, users):
    ann_id, token = await users.user("ann")
    answer = await token_answer(client, "ann", PASSWORD)
    credentials = [token, await session(client, "ann", PASSWORD), await api_key(client, token)]
    for headers in credentials:
        assert await status(client, headers) == 200
    r = await client.patch(f"/api/v1/users/{ann_id}", json={"active": False}, headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False
    for headers in credentials:
        assert_error(await client.get(THINGS, headers=headers), 401, "error_unauthorized")
    for path in ("/api/v1/auth", "/api/v1/auth/token"):
        r = await client.post(path, json={"login": "ann", "password": PASSWORD})
        assert r.status_code == 401 and "set-cookie" not in r.headers
    assert (await refresh(client, answer["refreshToken"])).status_code == 401
    assert await status(client, admin) == 200


@pytest.mark.parametrize("via", ["token", "session", "admin"])
async def test_a_password_change_ends_the_users_other_sessions_and_tokens(client, admin, users, via):
    ann_id, first_token = await users.user("ann")
    answer = await token_answer(client, "ann", PASSWORD)
    own = {"token": first_token, "session": await session(client, "ann", PASSWORD), "admin": admin}
    used = own.pop(via)
    others = [*(h for h in own.values() if h is not admin), bearer(answer["token"]),
              await token_for(client, "ann", PASSWORD), await session(client, "ann", PASSWORD)]
    r = await client.patch(f"/api/v1/users/{ann_id}", json={"password": NEW_PASSWORD}, headers=used)
    assert r.status_code == 200 and "password" not in r.json()
    assert await status(client, used) == 200  # the credential used for the change keeps working
    for headers in others:
        assert_error(await client.get(THINGS, headers=headers), 401, "error_unauthorized")
    assert (await refresh(client, answer["refreshToken"])).status_code == 401
    assert_error(await client.post("/api/v1/auth/token", json={"login": "ann", "password": PASSWORD}),
                 401, *CREDENTIALS)
    assert await status(client, await token_for(client, "ann", NEW_PASSWORD)) == 200
    assert await status(client, admin) == 200
