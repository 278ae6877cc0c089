"""The OpenAPI 3.1 document of API.md, built from the live schema registry.

Each store gets its own paths (so each has its own entity schema); the auth routes, the error
envelope per status and the three security schemes are the same for every document. The
document is cached per registry version: a changed schema file shows up on the next request."""

from __future__ import annotations

from typing import Any

from storeengine.core.jsonio import dumps
from storeengine.http import openapi_refs as refs
from storeengine.http import openapi_shapes as schemas
from storeengine.model import access as acl
from storeengine.model.access import SYSTEM, Principal
from storeengine.model.query import MAX_LIMIT
from storeengine.model.schema import Registry, StoreSchema
from storeengine.store.checks import MAX_LIMIT as CHECK_LIMIT
from storeengine.store.history import MAX_VERSIONS

Op = dict[str, Any]

ERRORS: dict[int, tuple[str, tuple[str, ...]]] = {
    400: ("Bad request or validation failed (`fields` names every failing field)",
          ("error_bad_request", "error_validation")),
    401: ("Missing, invalid, expired or revoked credentials", ("error_unauthorized",)),
    403: ("Forbidden by the access rules, or a cookie write from another origin", ("error_forbidden",)),
    404: ("No such store, entity or route", ("error_not_found",)),
    409: ("Conflicts with a unique index, or the entity keeps changing", ("error_conflict",)),
    410: ("The cursor is older than the retained history", ("error_gone",)),
    412: ("If-Match does not match the entity's ETag", ("error_precondition_failed",)),
    413: ("Body larger than the limit", ("error_payload_too_large",)),
    415: ("Content-Type is not JSON", ("error_unsupported_media_type",)),
    429: ("Too many failed logins, or too many event streams of one credential (see Retry-After)",
          ("error_too_many_requests",)),
    500: ("Internal error", ("error_internal",)),
    503: ("The database is unavailable", ("error_unavailable",)),
}
ALWAYS = (401, 500, 503)
WRITE = (400, 403, 413, 415)
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "cookie": {"type": "apiKey", "in": "cookie", "name": "sid"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    # API.md 12: a tenant's key selects its database; credentials issued there select it by themselves.
    "tenant": {"type": "apiKey", "in": "header", "name": "Api-Key",
               "description": "A tenant's key: the request is served by that tenant's database (its users, "
                              "stores, feed). Unknown, rotated or deleted -> 401; a tenant being provisioned "
                              "-> 503 with Retry-After. Credentials issued inside a tenant select it by "
                              "themselves and are 401 with another tenant's key."},
}
ENTITY_HEADERS = {"ETag": {"description": "the entity's version", "schema": {"type": "string"}}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
            "description": "refuse (412) unless the entity's ETag matches"}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
      "description": "the entity's `_id` (24 hex characters; anything else is 404)"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answer(description: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, **extra}
    if schema is not None:
        answer["content"] = _json(schema)
    return answer


def _op(summary: str, tag: str, ok: dict[int, dict[str, Any]], errors: tuple[int, ...], *,
        body: dict[str, Any] | None = None, params: list[dict[str, Any]] | None = None, public: bool = False) -> Op:
    responses: dict[str, Any] = {str(code): answer for code, answer in ok.items()}
    for code in sorted({*errors, *(() if public else ALWAYS), 500, 503}):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    op: Op = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if public:
        op["security"] = []
    return op


def auth_paths() -> dict[str, Any]:
    login_errors = (400, 401, 413, 415, 429)
    return {
        "/api/v1/auth": {"post": _op(
            "Sign in: starts a cookie session (Set-Cookie: sid)", "auth",
            {200: _answer("signed in", _ref("Success"), headers={"Set-Cookie": {"schema": {"type": "string"}}})},
            login_errors, body=_ref("Login"), public=True)},
        "/api/v1/auth/token": {"post": _op(
            "Sign in for a JWT and a refresh token", "auth", {200: _answer("tokens", _ref("Tokens"))},
            login_errors, body=_ref("Login"), public=True)},
        "/api/v1/auth/refresh": {"post": _op(
            "Trade a refresh token for new tokens (the old one stops working)", "auth",
            {200: _answer("tokens", _ref("Tokens"))}, (400, 401, 413, 415), body=_ref("Refresh"), public=True)},
        "/api/v1/auth/logout": {"post": _op(
            "End the session, token or key used", "auth", {200: _answer("signed out", _ref("Success"))}, (403,))},
        "/api/v1/auth/me": {"get": _op("The caller's user entity", "auth", {200: _answer("you", _ref("users"))}, ())},
        "/api/v1/auth/keys": {
            "get": _op("The caller's API keys, without secrets", "auth",
                       {200: _answer("keys", {"type": "array", "items": _ref("Key")})}, ()),
            "post": _op("Create an API key: the key is shown once", "auth",
                        {201: _answer("created", _ref("NewKey"))}, WRITE, body=_ref("KeyName")),
        },
        "/api/v1/auth/keys/{id}": {"delete": _op(
            "Revoke an API key", "auth", {200: _answer("revoked", _ref("Deleted"))}, (403, 404), params=[ID])},
    }


TENANT_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "the tenant's name"}


def tenant_paths() -> dict[str, Any]:
    """API.md 12: admins of the public database only (anyone else, a tenant's admins included: 403)."""
    return {
        "/api/v1/_tenants": {
            "get": _op("The tenants, without keys", "tenants",
                       {200: _answer("tenants", {"type": "array", "items": _ref("Tenant")})}, (403,)),
            "post": _op("Create a tenant (a copy of the public data unless copy is false); the key is shown once",
                        "tenants", {201: _answer("created", _ref("NewTenant"),
                                                 headers={"Location": {"schema": {"type": "string"}}})},
                        (*WRITE, 409), body=_ref("TenantCreate")),
        },
        "/api/v1/_tenants/{name}": {
            "get": _op("One tenant", "tenants", {200: _answer("the tenant", _ref("Tenant"))}, (403, 404),
                       params=[TENANT_NAME]),
            "delete": _op("Delete a tenant: its database is dropped, its credentials end", "tenants",
                          {200: _answer("deleted", _ref("Success"))}, (403, 404), params=[TENANT_NAME]),
        },
        "/api/v1/_tenants/{name}/key": {"post": _op(
            "A new key for the tenant; the old one stops working", "tenants",
            {200: _answer("the new key", _ref("TenantKey"))}, (403, 404, 409), params=[TENANT_NAME])},
    }


def service_paths() -> dict[str, Any]:
    return {
        "/api/v1/_schemas": {"get": _op("Every store's schema and its error, if any", "stores",
                                        {200: _answer("schemas", _ref("SchemaStatus"))}, ())},
        "/api/v1/_schemas/{store}/_check": check_ops(),
        "/api/v1/_openapi.json": {"get": _op("This document", "stores",
                                             {200: _answer("OpenAPI 3.1", {"type": "object"})}, ())},
        "/healthz": {"get": _op("Liveness and database state", "operations",
                                {200: _answer("up", _ref("Health")),
                                 503: _answer("database unavailable", {"type": "object"})}, (), public=True)},
    }


def check_ops() -> dict[str, Op]:
    store = {"name": "store", "in": "path", "required": True, "schema": {"type": "string"}}
    post = _op("Admins: which stored entities fail a candidate schema file (the body; empty: the current schema), "
               "changing nothing", "stores", {200: _answer("the entities checked by this call", _ref("CheckReport"))},
               (400, 403, 404, 413, 415), body={"type": "object", "description": "a schema file"}, params=[
                   store,
                   {"name": "limit", "in": "query", "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": CHECK_LIMIT, "default": CHECK_LIMIT}},
                   {"name": "after", "in": "query", "required": False, "schema": schemas.OBJECT_ID,
                    "description": "the `next` of the previous call"}])
    post["requestBody"]["required"] = False
    get = _op("Admins: the report of the background check of the current schema after its last load, at once",
              "stores", {200: _answer("finished, or so far", _ref("SchemaCheck"))}, (400, 403, 404), params=[store])
    return {"post": post, "get": get}


def store_paths(store: StoreSchema, unqueryable: frozenset[str] = frozenset()) -> dict[str, Any]:
    name = store.name
    base = f"/api/v1/{name}"
    entity = _answer("the entity", _ref(name), headers=ENTITY_HEADERS)
    cursor = {"X-Change-Cursor": {"description": "resume the change feed from here", "schema": {"type": "string"}},
              "X-Next-After": {"description": "on a full page whose sort keys are top-level scalar fields: "
                               "`after=<this>` gives the next page", "schema": {"type": "string"}}}
    paths: dict[str, Any] = {
        base: {
            "get": _op(f"List {name} the caller may read (oldest first)", name,
                       {200: _answer("entities, or `{total, first, last}` with meta=true",
                                     schemas.list_answer(name), headers=cursor)},
                       (400, 404), params=refs.with_expand(schemas.list_parameters(store, unqueryable), store)),
            "post": _op(f"Create one of {name}", name,
                        {201: _answer("created", _ref(name), headers={
                            **ENTITY_HEADERS, "Location": {"schema": {"type": "string"}}})},
                        (*WRITE, 404, 409), body=_ref(f"{name}.create")),
        },
        f"{base}/{{id}}": {
            "get": _op("Read one", name, {200: entity}, (400, 404), params=[ID, refs.expand_parameter(store)]),
            "patch": _op("Update with a JSON merge patch", name, {200: entity}, (*WRITE, 404, 409, 412),
                         body=_ref(f"{name}.patch"), params=[ID, IF_MATCH]),
            "put": _op("Replace the body (system fields kept)", name, {200: entity}, (*WRITE, 404, 409, 412),
                       body=_ref(f"{name}.body"), params=[ID, IF_MATCH]),
            "delete": _op("Delete", name, {200: _answer("deleted", _ref("Deleted"))}, (403, 404, 412),
                          params=[ID, IF_MATCH]),
        },
        f"{base}/{{id}}/acl": {"put": _op(
            "Change access (owner or admin; `owner` admins only)", name, {200: entity}, (*WRITE, 404, 409, 412),
            body=_ref("Access"), params=[ID, IF_MATCH])},
        f"{base}/_changes": {"get": changes_op(name)},
        f"{base}/_aggregate": {"get": aggregate_op(store, unqueryable)},
    }
    if store.raw.get("x-history") is True:
        paths.update(history_paths(store))
    return paths


def aggregate_op(store: StoreSchema, unqueryable: frozenset[str] = frozenset()) -> Op:
    def query(name: str, description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
                "description": description}

    filters = [p for p in schemas.list_parameters(store, unqueryable)
               if p["name"] not in ("offset", "limit", "only", "meta", "sort", "after", "group", "count",
                                    "sum", "avg", "min", "max")]
    row = {"type": "object", "required": ["group"], "properties": {
        "group": {"type": "object"}, "count": {"type": "integer"},
        **{k: {"type": "object"} for k in ("sum", "avg", "min", "max")}}}
    return _op(
        "Group and count what the caller may read (the list filters apply; one aggregation pipeline)",
        store.name, {200: _answer("one row per group, ordered by group", {"type": "array", "items": row})},
        (400, 404, 503), params=[
            query("group", "`a,b,when:day`: up to 5 fields; a date-time field as `field:hour|day|month|year` (UTC)"),
            {"name": "count", "in": "query", "required": False, "schema": {"type": "boolean"},
             "description": "true: count each group"},
            query("sum", "numeric fields to sum"), query("avg", "numeric fields to average"),
            query("min", "fields whose least value to give"), query("max", "fields whose greatest value to give"),
            *filters])


def changes_op(name: str) -> Op:
    return _op(
        "Changes since a cursor (JSON), or a live Server-Sent Events stream with Accept: text/event-stream",
        name, {200: {"description": "changes", "content": {
            "application/json": {"schema": _ref("Changes")},
            "text/event-stream": {"schema": {"type": "string", "description": "id: <seq>, event: change, "
                                             "data: <change JSON>"}}}}},
        (400, 404, 410, 429), params=[
            {"name": "since", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 1000}},
            {"name": "filter", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "the changes through a filter: the JSON of the list's `filter` (enter / leave by it)"},
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}}])


def history_paths(store: StoreSchema) -> dict[str, Any]:
    name, base = store.name, f"/api/v1/{store.name}/{{id}}"
    version = {"type": "object", "properties": {
        "version": {"type": "string"}, "op": {"type": "string"}, "at": schemas.TIME, "by": schemas.NULLABLE_ID,
        "entity": {"type": ["object", "null"]}}, "required": ["version", "op", "at", "entity"]}
    restored = _answer("restored (it was deleted)", _ref(name),
                       headers={**ENTITY_HEADERS, "Location": {"schema": {"type": "string"}}})
    restore_body = {"type": "object", "properties": {"version": {"type": "string"}}, "required": ["version"]}
    return {
        f"{base}/_versions": {"get": _op(
            "Versions, oldest first, a page at a time", name,
            {200: _answer("versions", {"type": "array", "items": version}, headers={"X-Next-After": {
                "description": "present when more versions follow: pass it as `after` for the next page",
                "schema": {"type": "string"}}})},
            (400, 404), params=[
                ID,
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSIONS, "default": MAX_VERSIONS}},
                {"name": "after", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "a version (X-Next-After of the previous page): the page starts after it"}])},
        f"{base}/_restore": {"post": _op(
            "Restore a version", name, {200: _answer("restored", _ref(name), headers=ENTITY_HEADERS), 201: restored},
            (*WRITE, 404, 409), body=restore_body, params=[ID])},
    }


def error_responses() -> dict[str, Any]:
    out = {}
    for code, (description, tags) in ERRORS.items():
        schema = {"allOf": [_ref("Error")], "properties": {
            "code": {"const": str(code)}, "tags": {"contains": {"enum": list(tags)}}}}
        headers = {"Retry-After": {"schema": {"type": "string"}}} if code == 429 else {}
        out[f"E{code}"] = _answer(description, schema, **({"headers": headers} if headers else {}))
    return out


def build(registry: Registry, principal: Principal = SYSTEM) -> dict[str, Any]:
    """The document as `principal` sees it: the property rules decide what of each store shows."""
    stores = sorted(registry.all(), key=lambda s: s.name)
    components: dict[str, Any] = dict(schemas.SHARED)
    paths: dict[str, Any] = {**auth_paths(), **service_paths(), **tenant_paths()}
    for store in stores:
        never, some = acl.property_view(principal, store)
        components.update(schemas.store_schemas(store, never, some))
        refs.annotate(components, store, registry)
        paths.update(store_paths(store, never | some))
        listing = paths[f"/api/v1/{store.name}"]["get"]
        paths.update(refs.nested_paths(store, registry, schemas.list_parameters(store, never | some),
                                       listing["responses"]["200"],
                                       {k: v for k, v in listing["responses"].items() if k != "200"}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "storeengine", "version": "v1",
                 "description": "Schema-driven stores over MongoDB. Every store below comes from a schema file "
                                "and follows it live. HEAD is answered like GET; a trailing slash names the same "
                                "resource. Change events are also pushed over Socket.IO at /socket.io/."},
        "security": [{"bearer": []}, {"cookie": []}, {"apiKey": []},
                     {"tenant": [], "bearer": []}, {"tenant": [], "cookie": []}, {"tenant": [], "apiKey": []}],
        "tags": [{"name": "auth"}, {"name": "stores"}, {"name": "tenants"}, *({"name": s.name} for s in stores)],
        "paths": paths,
        "components": {"schemas": components, "responses": error_responses(), "securitySchemes": SECURITY_SCHEMES},
    }


MAX_VIEWS = 64  # distinct documents kept per registry version


class DocumentCache:
    """The encoded document per view (callers with the same property rights share one), rebuilt
    only when the registry's version moves."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._version: int | None = None
        self._bodies: dict[tuple[tuple[str, frozenset[str], frozenset[str]], ...], bytes] = {}

    def get(self, principal: Principal = SYSTEM) -> bytes:
        version = self.registry.version
        if version != self._version:
            self._bodies.clear()
            self._version = version
        key = tuple((s.name, *acl.property_view(principal, s)) for s in self.registry.all() if s.read_rules)
        body = self._bodies.get(key)
        if body is None:
            if len(self._bodies) >= MAX_VIEWS:
                self._bodies.pop(next(iter(self._bodies)))
            body = self._bodies[key] = dumps(build(self.registry, principal))
        return body
