"""Endpoints of /api/v1/auth: logins, tokens, logout, me, API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import Response

from storeengine.auth import credentials
from storeengine.http.context import SCOPE_KEY, context
from storeengine.http.requests import read_json
from storeengine.http.responses import json_response
from storeengine.http.tenancy import Tenancy
from storeengine.model.access import Principal


def _session_cookie(value: str, expires: datetime, secure: bool) -> str:
    """The exact `Set-Cookie` of API.md 3 (Starlette would lower-case `Expires`)."""
    stamp = format_datetime(expires.replace(tzinfo=UTC), usegmt=True)
    return f"sid={value}; Path=/; Expires={stamp}; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")


async def login_session(request: Request) -> Response:
    ctx = context(request)
    user = await ctx.auth.login(await read_json(request))
    sid, expires = await ctx.auth.start_session(user["_id"])
    cookie = _session_cookie(sid, expires, ctx.settings.cookie_secure)
    return json_response({"success": True}, headers={"Set-Cookie": cookie})


async def login_token(request: Request) -> Response:
    ctx = context(request)
    user = await ctx.auth.login(await read_json(request))
    return json_response(await ctx.auth.issue_tokens(user["_id"]))


async def refresh(request: Request) -> Response:
    body = await read_json(request)
    ctx = context(request)
    token = body.get("refreshToken")
    # A refresh token issued in a tenant selects it by itself, as every credential does (API.md 12);
    # with an Api-Key the tenant is chosen already, and another's token is unknown there.
    tag = credentials.tenant_of(token) if isinstance(token, str) else None
    if tag is not None and request.scope.get(SCOPE_KEY) is None:
        tenancy: Tenancy = request.app.state.tenancy
        ctx = await tenancy.select(None, tag) or ctx
    return json_response(await ctx.auth.refresh(body))


async def logout(request: Request, principal: Principal) -> Response:
    ctx = context(request)
    await ctx.auth.logout(principal)
    cleared = _session_cookie("", datetime(1970, 1, 1), ctx.settings.cookie_secure)
    return json_response({"success": True}, headers={"Set-Cookie": cleared + "; Max-Age=0"})


async def me(request: Request, principal: Principal) -> Response:
    ctx = context(request)
    return json_response(await ctx.service.get(principal, ctx.registry.get("users"), principal.user_id))


async def keys(request: Request, principal: Principal) -> Response:
    ctx = context(request)
    if request.method in ("GET", "HEAD"):
        return json_response(await ctx.auth.list_keys(principal))
    created = await ctx.auth.create_key(principal, await read_json(request))
    return json_response(created, 201, {"Location": f"/api/v1/auth/keys/{created['_id']}"})


async def delete_key(request: Request, principal: Principal) -> Response:
    deleted = await context(request).auth.delete_key(principal, request.path_params["id"])
    return json_response({"success": True, "_id": deleted})
