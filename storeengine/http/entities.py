"""Endpoints of the generic store routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from storeengine.acl import Principal
from storeengine.entities import Doc, path_id, version
from storeengine.errors import MethodNotAllowed, NotFound
from storeengine.http.context import Context, context
from storeengine.http.requests import authenticate, if_match, read_json
from storeengine.http.responses import json_response
from storeengine.query import parse_list_query
from storeengine.schemas import StoreSchema


def entity_response(store: str, doc: Doc, status: int = 200) -> Response:
    headers = {"ETag": f'"{version(doc)}"'}
    if status == 201:
        headers["Location"] = f"/api/v1/{store}/{doc['_id']}"
    return json_response(doc, status, headers)


async def caller_and_store(request: Request) -> tuple[Principal, Context, StoreSchema]:
    """Authenticate first (an anonymous caller learns nothing, not even which stores exist),
    then find the store: 404 if unknown, 405 for the auth routes' other methods."""
    principal = await authenticate(request)
    ctx, name = context(request), request.path_params["store"]
    if name == "auth":
        known = {"token", "refresh", "logout", "me", "keys"}
        if request.path_params.get("id", "") in known or "id" not in request.path_params:
            raise MethodNotAllowed()
        raise NotFound("No such route")
    return principal, ctx, ctx.registry.get(name)


async def collection(request: Request) -> Response:
    principal, ctx, store = await caller_and_store(request)
    name = store.name
    if request.method == "GET":
        query = parse_list_query(request.query_params.multi_items(), store)
        headers = await ctx.service.feed.cursor_header(store)  # read before the list: no gap after it
        return json_response(await ctx.service.list(principal, name, query), headers=headers)
    body = await read_json(request)
    return entity_response(name, await ctx.service.create(principal, name, body), 201)


async def entity(request: Request) -> Response:
    principal, ctx, store = await caller_and_store(request)
    name = store.name
    entity_id = path_id(request.path_params["id"])
    service = ctx.service
    if request.method == "GET":
        return entity_response(name, await service.get(principal, name, entity_id))
    if request.method == "DELETE":
        deleted = await service.delete(principal, name, entity_id, if_match(request))
        return json_response({"success": True, "_id": deleted})
    body = await read_json(request)
    if request.method == "PATCH":
        doc = await service.patch(principal, name, entity_id, body, if_match(request))
    else:
        doc = await service.put(principal, name, entity_id, body, if_match(request))
    return entity_response(name, doc)


async def entity_acl(request: Request) -> Response:
    principal, ctx, store = await caller_and_store(request)
    body = await read_json(request)
    doc = await ctx.service.set_acl(principal, store.name, path_id(request.path_params["id"]), body, if_match(request))
    return entity_response(store.name, doc)


async def schemas(request: Request) -> Response:
    await authenticate(request)
    return json_response(context(request).registry.status())


async def health(request: Request) -> Response:
    if await context(request).storage.ping():
        return json_response({"status": "ok", "database": "ok"})
    body = {"success": False, "code": "503", "message": "Database unavailable", "tags": ["error_unavailable"],
            "status": "unavailable", "database": "unavailable"}
    return json_response(body, 503)
