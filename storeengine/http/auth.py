"""Endpoints of /api/v1/auth: logins, tokens, logout, me, API keys."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from storeengine.http.context import context
from storeengine.http.requests import authenticate, read_json
from storeengine.http.responses import json_response


async def login_session(request: Request) -> Response:
    ctx = context(request)
    user = await ctx.auth.login(await read_json(request))
    sid, _ = await ctx.auth.start_session(user["_id"])
    response = json_response({"success": True})
    response.set_cookie("sid", sid, max_age=None, expires=ctx.settings.session_ttl_seconds, path="/",
                        secure=ctx.settings.cookie_secure, httponly=True, samesite="Lax")
    return response


async def login_token(request: Request) -> Response:
    ctx = context(request)
    user = await ctx.auth.login(await read_json(request))
    return json_response(await ctx.auth.issue_tokens(user["_id"]))


async def refresh(request: Request) -> Response:
    ctx = context(request)
    return json_response(await ctx.auth.refresh(await read_json(request)))


async def logout(request: Request) -> Response:
    principal = await authenticate(request)
    ctx = context(request)
    await ctx.auth.logout(principal)
    response = json_response({"success": True})
    response.delete_cookie("sid", path="/", secure=ctx.settings.cookie_secure, httponly=True, samesite="Lax")
    return response


async def me(request: Request) -> Response:
    principal = await authenticate(request)
    return json_response(await context(request).service.get(principal, "users", principal.user_id))


async def keys(request: Request) -> Response:
    principal = await authenticate(request)
    ctx = context(request)
    if request.method == "GET":
        return json_response(await ctx.auth.list_keys(principal))
    created = await ctx.auth.create_key(principal, await read_json(request))
    return json_response(created, 201, {"Location": f"/api/v1/auth/keys/{created['_id']}"})


async def delete_key(request: Request) -> Response:
    principal = await authenticate(request)
    deleted = await context(request).auth.delete_key(principal, request.path_params["id"])
    return json_response({"success": True, "_id": deleted})
