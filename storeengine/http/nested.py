"""References over HTTP (API.md section 13): `expand` on entity and list reads, and nested lists
`GET /api/v1/:store/:id/:child` (the `:child` entities whose reference to `:store` holds `:id`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from storeengine.core.documents import path_id
from storeengine.core.errors import BadRequest, NotFound
from storeengine.http.context import Context, context
from storeengine.http.responses import list_response
from storeengine.model.access import Principal
from storeengine.model.expand import EXPAND, VIA, Node, parse_expand, split_params, with_reference_fields
from storeengine.model.query import ListQuery, parse_list_query
from storeengine.model.references import Reference
from storeengine.model.schema import StoreSchema
from storeengine.store.expanded import EXPANDED
from storeengine.store.service import Page


def read_expand(ctx: Context, request: Request, store: StoreSchema, principal: Principal) -> dict[str, Node]:
    """The `expand` tree of an entity read (other parameters are ignored there, as before)."""
    if not request.scope["query_string"]:  # most reads: no parameters to parse
        return {}
    _, ours = split_params(request.query_params.multi_items())
    return parse_expand(ours[EXPAND], store.seen_by(principal), ctx.registry.get) if EXPAND in ours else {}


def list_query(ctx: Context, request: Request, store: StoreSchema,
               principal: Principal) -> tuple[ListQuery, dict[str, Node], str | None]:
    """Section 7's query, the `expand` tree and `via` of a list request, over the properties this
    caller may query (section 15: others are unknown, as undeclared fields are)."""
    store = store.seen_by(principal)
    rest, ours = split_params(request.query_params.multi_items())
    tree = parse_expand(ours[EXPAND], store, ctx.registry.get) if EXPAND in ours else {}
    query = parse_list_query(rest, store)
    if tree and query.projection is not None:
        query = query.model_copy(update={"projection": with_reference_fields(query.projection, tree)})
    return query, tree, ours.get(VIA)


async def list_answer(ctx: Context, principal: Principal, store: StoreSchema, query: ListQuery,
                      tree: dict[str, Node]) -> Response:
    # With `expand`: each entity read without its closing brace nor a member `_expand` of its own,
    # with the values of the references followed, for `_expand` to be spliced in.
    result = await ctx.service.list_entities(principal, store, query, encoded=True, fields=list(tree),
                                             opened=bool(tree), replaced=(EXPANDED,) if tree else ())
    headers = {"X-Change-Cursor": result.cursor} if result.cursor is not None else {}
    if isinstance(result, Page) and result.next_after is not None:
        headers["X-Next-After"] = result.next_after
    if isinstance(result, Page) and result.encoded is not None:  # JSON already: `expand` is spliced in
        if tree and result.columns is not None:
            body = await ctx.service.references.expand_encoded(principal, result.encoded, result.columns, tree)
        else:
            body = b"[" + b",".join(result.encoded) + b"]"
        return await list_response(body, headers)
    docs = result.to_json()
    await ctx.service.references.expand(principal, docs if isinstance(docs, list) else [docs["first"], docs["last"]],
                                        tree)
    return await list_response(docs, headers)


async def nested(request: Request, principal: Principal) -> Response:
    """`GET /:store/:id/:child`: the parent's readability is the gate (404 as for the parent itself)."""
    ctx = context(request)
    parent = ctx.registry.get(request.path_params["store"])
    child = ctx.registry.get(request.path_params["child"])
    query, tree, via = list_query(ctx, request, child, principal)
    ref = _via(parent, child.seen_by(principal), via)  # a reference the caller may not read is not one
    found = await ctx.service.get(principal, parent, path_id(request.path_params["id"]))
    where = {ref.prop: found["_id"]}
    query = query.model_copy(update={"filter": {"$and": [query.filter, where]} if query.filter else where})
    return await list_answer(ctx, principal, child, query, tree)


def _via(parent: StoreSchema, child: StoreSchema, via: str | None) -> Reference:
    """The reference of `child` to `parent`: the only one, or the one `via` names."""
    refs = [r for r in child.references.values() if r.target == parent.name and r.prop not in child.hidden]
    if not refs:
        raise NotFound(f"{child.name} has no reference to {parent.name}")
    names = ", ".join(r.prop for r in refs)
    if via is not None:
        chosen = next((r for r in refs if r.prop == via), None)
        if chosen is None:
            raise BadRequest(f"via: {via!r} is not a reference of {child.name} to {parent.name} (use one of: {names})")
        return chosen
    if len(refs) > 1:
        raise BadRequest(f"{child.name} refers to {parent.name} through several properties: give via= one of {names}")
    return refs[0]
