"""JSON Schemas for the OpenAPI document: each store's entity and bodies, and the shared shapes.

A store's schema file is already JSON Schema 2020-12, which OpenAPI 3.1 uses as is; what no
library does is add our system fields, split request from response shapes and point the
file's own `$ref`s at where the file now lives inside the document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from storeengine.core.formats import DATETIME, OBJECTID
from storeengine.model.query import MAX_LIMIT, RESERVED_PARAMS
from storeengine.model.schema import StoreSchema

Schema = dict[str, Any]

OBJECT_ID: Schema = {"type": "string", "format": OBJECTID, "pattern": "^[0-9a-f]{24}$"}
TIME: Schema = {"type": "string", "format": DATETIME, "examples": ["2026-11-22T10:04:05.123Z"]}
NULLABLE_ID: Schema = {"anyOf": [OBJECT_ID, {"type": "null"}]}
ID_LIST: Schema = {"type": "array", "items": OBJECT_ID}

SYSTEM_PROPERTIES: Schema = {
    "_id": {**OBJECT_ID, "readOnly": True},
    "owner": {**NULLABLE_ID, "readOnly": True, "description": "user id of the creator, or null"},
    "group": {**NULLABLE_ID, "description": "group id, or null"},
    "access": {**ID_LIST, "description": "user and group ids that may read (and, by default, update)"},
    "branch": {**ID_LIST, "description": "group ids whose members may read"},
    "createdAt": {**TIME, "readOnly": True},
    "updatedAt": {**TIME, "readOnly": True},
}
ACCESS_BODY: Schema = {
    "type": "object",
    "properties": {"owner": {**NULLABLE_ID, "description": "admins only"}, "group": NULLABLE_ID,
                   "access": ID_LIST, "branch": ID_LIST},
    "additionalProperties": False,
}

ERROR: Schema = {
    "type": "object",
    "description": "The error envelope (API.md section 2); `fields` only for validation errors.",
    "properties": {
        "success": {"const": False},
        "code": {"type": "string", "pattern": "^[0-9]{3}$"},
        "message": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["success", "code", "message", "tags"],
}
SUCCESS: Schema = {"type": "object", "properties": {"success": {"const": True}}, "required": ["success"]}
DELETED: Schema = {"type": "object", "properties": {"success": {"const": True}, "_id": OBJECT_ID},
                   "required": ["success", "_id"]}
NON_EMPTY: Schema = {"type": "string", "minLength": 1}
LOGIN: Schema = {"type": "object", "properties": {"login": NON_EMPTY, "password": NON_EMPTY},
                 "required": ["login", "password"]}
REFRESH: Schema = {"type": "object", "properties": {"refreshToken": NON_EMPTY},
                   "required": ["refreshToken"]}
TOKENS: Schema = {
    "type": "object",
    "properties": {"success": {"const": True}, "type": {"const": "access"}, "token": {"type": "string"},
                   "issuedAt": {"type": "integer"}, "expiresAt": {"type": "integer"},
                   "refreshToken": {"type": "string"}, "refreshExpiresAt": {"type": "integer"}},
    "required": ["success", "type", "token", "issuedAt", "expiresAt", "refreshToken", "refreshExpiresAt"],
}
KEY_NAME: Schema = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}},
                    "required": ["name"]}
KEY: Schema = {"type": "object", "properties": {"_id": OBJECT_ID, "name": {"type": "string"}, "createdAt": TIME},
               "required": ["_id", "name"]}
NEW_KEY: Schema = {**KEY, "properties": {**KEY["properties"], "key": {"type": "string", "description": "shown once"}},
                   "required": ["_id", "name", "key"]}
SCHEMA_STATUS: Schema = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {"schema": {"type": ["object", "null"]}, "error": {"type": ["string", "null"]}},
        "required": ["schema", "error"],
    },
}
_FAILING: Schema = {"type": "array", "maxItems": 100, "items": {
    "type": "object", "required": ["_id", "fields"],
    "properties": {"_id": OBJECT_ID, "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}}
CHECK_REPORT: Schema = {
    "type": "object", "required": ["checked", "invalid", "entities", "next"],
    "properties": {"checked": {"type": "integer", "minimum": 0}, "invalid": {"type": "integer", "minimum": 0},
                   "entities": _FAILING, "next": {"type": ["string", "null"],
                                                  "description": "`after` of the next call; null at the store's end"}},
}
SCHEMA_CHECK: Schema = {
    "type": "object", "required": ["state", "checked", "invalid", "entities", "startedAt", "finishedAt", "error"],
    "properties": {"state": {"enum": ["running", "done", "failed"]}, "checked": {"type": "integer", "minimum": 0},
                   "invalid": {"type": "integer", "minimum": 0}, "entities": _FAILING, "startedAt": TIME,
                   "finishedAt": {"anyOf": [TIME, {"type": "null"}]}, "error": {"type": ["string", "null"]}},
}
HEALTH: Schema = {"type": "object", "properties": {"status": {"type": "string"}, "database": {"type": "string"}},
                  "required": ["status", "database"]}
CHANGE: Schema = {
    "type": "object",
    "properties": {
        "seq": {"type": "string", "description": "opaque cursor; later changes sort after earlier ones"},
        "store": {"type": "string"},
        "op": {"enum": ["create", "update", "delete", "enter", "leave"]},
        "_id": OBJECT_ID,
        "entity": {"type": ["object", "null"], "description": "after the change; before it for delete; null for leave"},
        "at": TIME,
        "by": NULLABLE_ID,
    },
    "required": ["seq", "store", "op", "_id", "entity", "at"],
}
CHANGES: Schema = {
    "type": "object",
    "properties": {"changes": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
                   "cursor": {"type": ["string", "null"]}, "more": {"type": "boolean"}},
    "required": ["changes", "cursor", "more"],
}
TENANT: Schema = {
    "type": "object",
    "properties": {"_id": OBJECT_ID, "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,30}$"},
                   "status": {"enum": ["provisioning", "ready", "deleting"]}, "createdAt": TIME},
    "required": ["_id", "name", "status", "createdAt"],
}
NEW_TENANT: Schema = {**TENANT, "properties": {**TENANT["properties"],
                                               "key": {"type": "string", "description": "shown once"}},
                      "required": ["_id", "name", "status", "createdAt", "key"]}
TENANT_CREATE: Schema = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,30}$"},
                   "admin": LOGIN, "copy": {"type": "boolean", "default": True,
                                            "description": "copy the public database's groups and entities"}},
    "required": ["name", "admin"],
}
TENANT_KEY: Schema = {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}
SHARED: Mapping[str, Schema] = {
    "Error": ERROR, "Success": SUCCESS, "Deleted": DELETED, "Login": LOGIN, "Refresh": REFRESH, "Tokens": TOKENS,
    "KeyName": KEY_NAME, "Key": KEY, "NewKey": NEW_KEY, "SchemaStatus": SCHEMA_STATUS, "Health": HEALTH,
    "Change": CHANGE, "Changes": CHANGES, "Access": ACCESS_BODY, "Tenant": TENANT, "NewTenant": NEW_TENANT,
    "TenantCreate": TENANT_CREATE, "TenantKey": TENANT_KEY, "CheckReport": CHECK_REPORT,
    "SchemaCheck": SCHEMA_CHECK,
}


def _relocate(node: Any, base: str) -> Any:
    """The file's `$ref: "#/..."` pointers, rewritten to where the file sits in the document."""
    if isinstance(node, dict):
        out = {k: _relocate(v, base) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            out["$ref"] = base + ref[1:]
        return out
    if isinstance(node, list):
        return [_relocate(v, base) for v in node]
    return node


def _with_id_patterns(node: Any) -> Any:
    """`format: objectid` is ours: add the pattern so generic clients know (and generate) its shape."""
    if isinstance(node, dict):
        out = {k: _with_id_patterns(v) for k, v in node.items()}
        if out.get("format") == OBJECTID and "pattern" not in out:
            out["pattern"] = OBJECT_ID["pattern"]
        return out
    if isinstance(node, list):
        return [_with_id_patterns(v) for v in node]
    return node


def body_schema(store: StoreSchema) -> Schema:
    """The store's file, without engine keywords, as a component named after the store."""
    raw = {k: v for k, v in store.raw.items() if not k.startswith("x-")}
    body: Schema = _with_id_patterns(_relocate(raw, f"#/components/schemas/{store.name}.body"))
    return body


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


SOME_ENTITIES = ("Shown only on the entities whose `x-read` rules you pass; you may not filter, sort or group "
                 "by it.")


def store_schemas(store: StoreSchema, never: frozenset[str] = frozenset(),
                  some: frozenset[str] = frozenset()) -> dict[str, Schema]:
    """Components of one store: body (the file), entity (answers), partial (lists), create, patch.

    Answers are the caller's view (API.md 15): a property they read on no entity is left out, as
    if undeclared; one they read on some entities only is optional and says so. Request bodies
    stay the file's: writing is `x-write`'s business."""
    name = store.name
    body = body_schema(store)
    shown = {k: v for k, v in store.properties.items() if k not in store.hidden and k not in never}
    visible = {k: _with_id_patterns(_relocate(v, f"#/components/schemas/{name}.body")) for k, v in shown.items()}
    for k in some & visible.keys():
        visible[k] = {"allOf": [visible[k]], "description": SOME_ENTITIES} if "$ref" in visible[k] else \
            {**visible[k], "description": " ".join(filter(None, (visible[k].get("description"), SOME_ENTITIES)))}
    required = [r for r in body.get("required", []) if r not in store.hidden and r not in never and r not in some]
    closed = body.get("additionalProperties") is False
    entity: Schema = {
        "type": "object",
        "properties": {**visible, **SYSTEM_PROPERTIES},
        "required": [*required, *SYSTEM_PROPERTIES],
    }
    if closed:
        entity["additionalProperties"] = False
    partial = {**entity, "required": ["_id"], "description": "an entity, or with `only` just `_id` and those fields"}
    create: Schema = {"allOf": [_ref(f"{name}.body")],
                      "properties": {k: ACCESS_BODY["properties"][k] for k in ("group", "access", "branch")}}
    if closed:
        # additionalProperties does not see through allOf: name the body's properties here too.
        create["properties"] = {**{k: True for k in store.properties}, **create["properties"]}
        create["additionalProperties"] = False
    patch: Schema = {
        "type": "object",
        "description": "JSON merge patch (RFC 7396): null removes a field; the merged result must validate",
        "properties": {k: {"anyOf": [{"$ref": f"#/components/schemas/{name}.body/properties/{_pointer(k)}"},
                                     {"type": "null"}]}
                       for k in store.properties},
    }
    if closed:
        patch["additionalProperties"] = False
    return {f"{name}.body": body, name: entity, f"{name}.partial": partial, f"{name}.create": create,
            f"{name}.patch": patch}


def _pointer(key: str) -> str:
    """A property name as a segment of a `$ref`: a JSON Pointer token (RFC 6901) in a URI fragment."""
    return quote(key.replace("~", "~0").replace("/", "~1"), safe="")


def list_answer(name: str) -> Schema:
    item = _ref(f"{name}.partial")
    meta = {"type": "object", "properties": {"total": {"type": "integer", "minimum": 0},
                                             "first": {"anyOf": [item, {"type": "null"}]},
                                             "last": {"anyOf": [item, {"type": "null"}]}},
            "required": ["total", "first", "last"], "description": "with meta=true"}
    return {"anyOf": [{"type": "array", "items": item}, meta]}


def _param_schema(prop: Mapping[str, Any]) -> Schema:
    """How `<property>=<value>` is read: by the property's (or its items') type and format."""
    schema = prop
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        schema = schema["items"]
    fmt = schema.get("format")
    if fmt == OBJECTID:
        return dict(OBJECT_ID)
    if fmt == DATETIME:
        return {"type": "string", "description": "Unix milliseconds or ISO 8601"}
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((t for t in kind if t != "null"), "string")
    return {"type": kind if kind in ("integer", "number", "boolean") else "string"}


def list_parameters(store: StoreSchema, unqueryable: frozenset[str] = frozenset()) -> list[Schema]:
    """The list's query parameters; `unqueryable`: properties the caller may not query (no
    equality parameter: it would be the 400 of an undeclared field)."""
    def query(name: str, schema: Schema, description: str) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    time = {"type": "string", "description": "Unix milliseconds or ISO 8601"}
    params = [
        query("offset", {"type": "integer", "minimum": 0, "default": 0}, "skip that many"),
        query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": MAX_LIMIT},
              "at most that many"),
        query("only", {"type": "string"}, "`a,b.c`: each entity holds just `_id` and those fields"),
        query("meta", {"type": "boolean"}, "true: `{total, first, last}` instead of the list (not with offset/limit)"),
        query("from", time, "createdAt >= from (alias `begin`)"),
        query("to", time, "createdAt < to (alias `end`)"),
        query("begin", time, "alias of `from`"),
        query("end", time, "alias of `to`"),
        query("filter", {"type": "string"}, "a MongoDB query as JSON over declared properties and system fields, "
              "with $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $nor $not $regex $size $all $elemMatch"),
        query("sort", {"type": "string"}, "`a,-b`: sort keys, `-` for descending; default `_id`"),
        query("after", {"type": "string"}, "the `X-Next-After` token of the previous page (same sort and filters; "
              "not with offset/meta): the entities that follow it, without a skip"),
    ]
    for prop, sub in store.properties.items():
        # A property named like a parameter is filtered through `filter` only (API.md 7).
        if prop not in store.hidden and prop not in unqueryable and prop not in RESERVED_PARAMS and \
                prop not in {p["name"] for p in params}:
            params.append(query(prop, _param_schema(sub if isinstance(sub, dict) else {}), f"equality on `{prop}`"))
    return params
