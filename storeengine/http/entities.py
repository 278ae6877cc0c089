"""Endpoints of the generic store routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from storeengine.core.documents import path_id, version
from storeengine.core.errors import BadRequest
from storeengine.core.types import Doc
from storeengine.http.context import Context, context
from storeengine.http.nested import list_answer, list_query, read_expand
from storeengine.http.requests import if_match, read_json
from storeengine.http.responses import json_response
from storeengine.model.access import Principal
from storeengine.model.aggregate import parse_aggregation
from storeengine.model.schema import StoreSchema


def entity_response(store: str, doc: Doc, status: int = 200) -> Response:
    headers = {"ETag": f'"{version(doc)}"'}
    if status == 201:
        headers["Location"] = f"/api/v1/{store}/{doc['_id']}"
    return json_response(doc, status, headers)


def context_and_store(request: Request) -> tuple[Context, StoreSchema]:
    """The store of the path (the caller is already authenticated, see routes): 404 if unknown.
    The path never names a reserved segment such as `auth` (routes.StoreName)."""
    ctx = context(request)
    return ctx, ctx.registry.get(request.path_params["store"])


async def collection(request: Request, principal: Principal) -> Response:
    ctx, store = context_and_store(request)
    if request.method in ("GET", "HEAD"):
        query, tree, via = list_query(ctx, request, store, principal)
        if via is not None:
            raise BadRequest("via applies to nested lists only (GET /api/v1/:store/:id/:child)")
        return await list_answer(ctx, principal, store, query, tree)
    body = await read_json(request)
    return entity_response(store.name, await ctx.service.create(principal, store, body), 201)


async def aggregate(request: Request, principal: Principal) -> Response:
    ctx, store = context_and_store(request)
    aggregation = parse_aggregation(request.query_params.multi_items(), store.seen_by(principal))
    return json_response(await ctx.service.aggregate(principal, store, aggregation))


async def entity(request: Request, principal: Principal) -> Response:
    ctx, store = context_and_store(request)
    entity_id = path_id(request.path_params["id"])
    service = ctx.service
    if request.method in ("GET", "HEAD"):
        tree = read_expand(ctx, request, store, principal)
        doc = await service.get(principal, store, entity_id)
        await service.references.expand(principal, [doc], tree)
        return entity_response(store.name, doc)
    if request.method == "DELETE":
        deleted = await service.delete(principal, store, entity_id, if_match(request))
        return json_response({"success": True, "_id": deleted})
    body = await read_json(request)
    if request.method == "PATCH":
        doc = await service.patch(principal, store, entity_id, body, if_match(request))
    else:
        doc = await service.put(principal, store, entity_id, body, if_match(request))
    return entity_response(store.name, doc)


async def entity_acl(request: Request, principal: Principal) -> Response:
    ctx, store = context_and_store(request)
    body = await read_json(request)
    doc = await ctx.service.set_acl(principal, store, path_id(request.path_params["id"]), body, if_match(request))
    return entity_response(store.name, doc)


async def schemas(request: Request, principal: Principal) -> Response:
    return json_response(context(request).registry.status())


async def health(request: Request) -> Response:
    if await context(request).storage.ping():
        return json_response({"status": "ok", "database": "ok"})
    body = {"success": False, "code": "503", "message": "Database unavailable", "tags": ["error_unavailable"],
            "status": "unavailable", "database": "unavailable"}
    return json_response(body, 503)
