"""References in the OpenAPI document (API.md section 13): which store each reference property
points at, `_expand` on entities, the `expand` and `via` parameters, and the nested list routes."""

from __future__ import annotations

from typing import Any

from storeengine.model.expand import EXPAND, MAX_DEPTH, MAX_PATHS, VIA
from storeengine.model.references import Reference
from storeengine.model.schema import Registry, StoreSchema

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _known(registry: Registry, name: str) -> bool:
    return any(s.name == name for s in registry.all())


def _references(store: StoreSchema) -> list[Reference]:
    return [r for r in store.references.values() if r.prop not in store.hidden]


def annotate(components: dict[str, Schema], store: StoreSchema, registry: Registry) -> None:
    """Add `_expand` to the store's entity shapes, and say on each reference what it refers to."""
    expanded: Schema = {}
    for ref in _references(store):
        target: Schema = _ref(ref.target) if _known(registry, ref.target) else {"type": "object"}
        expanded[ref.prop] = {"type": "array", "items": target} if ref.many else target
    shape: Schema = {
        "type": "object", "readOnly": True, "properties": expanded,
        "description": "with `expand`: the referenced entities the caller may read, each as its own GET "
                       "returns it (missing or unreadable ones left out)",
    }
    for name in (store.name, f"{store.name}.partial"):
        entity = components[name]
        entity["properties"] = {**entity["properties"], "_expand": shape}
        for ref in _references(store):
            if ref.prop in entity["properties"]:
                entity["properties"][ref.prop] = {
                    **entity["properties"][ref.prop], "x-ref": ref.target,
                    "description": f"{'ids' if ref.many else 'id'} of `{ref.target}` entities (section 13)"}


def with_expand(params: list[Schema], store: StoreSchema) -> list[Schema]:
    """List parameters plus `expand` (a property named `expand` or `via` is filtered through `filter` only)."""
    return [*(p for p in params if p["name"] not in (EXPAND, VIA)), expand_parameter(store)]


def expand_parameter(store: StoreSchema) -> Schema:
    names = ", ".join(f"`{r.prop}`" for r in _references(store))
    return {"name": "expand", "in": "query", "required": False, "schema": {"type": "string"},
            "description": f"`a,b.c`: put the referenced entities in `_expand` (references of {store.name}: {names}); "
                           f"at most {MAX_PATHS} paths of at most {MAX_DEPTH} levels"}


def nested_paths(child: StoreSchema, registry: Registry, list_params: list[Schema],
                 answer: Schema, errors: Schema) -> dict[str, Any]:
    """`GET /api/v1/:parent/{id}/:child` for each store `child` refers to (`via` when several)."""
    by_parent: dict[str, list[str]] = {}
    for ref in _references(child):
        if _known(registry, ref.target):
            by_parent.setdefault(ref.target, []).append(ref.prop)
    paths: dict[str, Any] = {}
    for parent, props in by_parent.items():
        params: list[Schema] = [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
             "description": f"the `{parent}` entity (must be readable: 404 otherwise)"},
            *with_expand(list_params, child)]
        if len(props) > 1:
            params.append({"name": "via", "in": "query", "required": False, "schema": {"enum": props},
                           "description": "which reference to the parent: required, since there are several (400)"})
        paths[f"/api/v1/{parent}/{{id}}/{child.name}"] = {"get": {
            "summary": f"List {child.name} whose {' or '.join(props)} refers to this {parent} entity "
                       "(every list parameter applies)",
            "tags": [child.name], "parameters": params, "responses": {"200": answer, **errors}}}
    return paths
