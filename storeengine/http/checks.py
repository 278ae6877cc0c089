"""`POST /api/v1/_schemas/:store/_check` (API.md 15): a dry run of a candidate schema file (or
the store's current one) over the stored entities, a page of at most `limit` entities a call.

`GET` on the same path (our addition, for the console) answers at once with the report of the
background check of the store's current schema (store/check_cache.py), finished or so far."""

from __future__ import annotations

import orjson
from bson import ObjectId
from starlette.requests import Request
from starlette.responses import Response

from storeengine.core.errors import BadRequest, Forbidden, Invalid, NotFound, UnsupportedMediaType
from storeengine.core.formats import parse_objectid
from storeengine.core.jsonio import loads_exact
from storeengine.http.context import context
from storeengine.http.responses import json_response
from storeengine.model.access import Principal
from storeengine.model.schema import SchemaError, StoreSchema, compile_schema
from storeengine.store.check_cache import CachedCheck
from storeengine.store.checks import MAX_LIMIT, check_entities

BUILTIN = ("users", "groups")


async def check(request: Request, principal: Principal) -> Response:
    if not principal.is_admin:
        raise Forbidden("Only admins may check schemas")
    ctx = context(request)
    current = ctx.registry.get(request.path_params["store"])  # 404 for an unknown store
    if request.method != "POST":
        return cached(request, current)
    limit, after = _paging(request)
    schema = await _candidate(request, current)
    report = await check_entities(ctx.storage, schema, limit=limit, after=after)
    return json_response(report.to_json())


def cached(request: Request, store: StoreSchema) -> Response:
    """The background check's report; never waits for it."""
    if request.query_params:
        raise BadRequest(f"Unknown parameter: {sorted(request.query_params)[0]}")
    if store.name in BUILTIN:
        raise NotFound(f"{store.name} has no schema file: POST checks it")
    report = context(request).checks.report(store.name)
    if report is None:  # the file's load has not been seen yet (the first tick of a start)
        report = CachedCheck()
    return json_response(report.to_json())


def _paging(request: Request) -> tuple[int, ObjectId | None]:
    params = request.query_params
    if unknown := sorted(k for k in params if k not in ("limit", "after") or len(params.getlist(k)) > 1):
        raise BadRequest(f"Unknown or repeated parameter: {unknown[0]}")
    raw = params.get("limit")
    if raw is not None and (not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT):
        raise BadRequest(f"limit must be an integer 1..{MAX_LIMIT}")
    after = params.get("after")
    parsed = parse_objectid(after) if after is not None else None
    if after is not None and (parsed is None or after != after.lower()):
        raise BadRequest("after must be the `next` of an earlier answer")
    return (int(raw) if raw is not None else MAX_LIMIT), parsed


async def _candidate(request: Request, current: StoreSchema) -> StoreSchema:
    """The schema of the body, or the current one for an empty body; 400 with every problem."""
    body = await request.body()
    if not body.strip():
        return current
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType()
    try:
        raw = loads_exact(body)  # not parse_body: a schema's own keys start with `$` ($defs, $ref)
    except orjson.JSONDecodeError as exc:
        raise _invalid([f"not JSON: {exc.msg}"]) from None
    try:
        return compile_schema(current.name, raw, builtin=current.name in BUILTIN)
    except SchemaError as exc:
        raise _invalid(exc.problems) from None
    except RecursionError:
        raise _invalid(["nested too deeply"]) from None


def _invalid(problems: list[str]) -> Invalid:
    return Invalid("The candidate is not a valid schema file",
                   fields={f"schema[{i}]": problem for i, problem in enumerate(problems)})
