"""`expand=a,b.c` -> a checked tree of reference paths (API.md section 13). No I/O.

Each node is one reference property and the store it refers to; fetching a node costs one query
for a whole page (store/references.py), so the tree's size bounds a request's cost: at most
`MAX_PATHS` paths of at most `MAX_DEPTH` levels. `a.b.a` is allowed: it is only depth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from storeengine.core.errors import BadRequest, NotFound
from storeengine.model.references import Reference
from storeengine.model.schema import StoreSchema

MAX_PATHS = 10
MAX_DEPTH = 3
# The list parameters of section 13, read apart from section 7's (a property with one of these
# names is filtered through `filter` only).
EXPAND, VIA = "expand", "via"


@dataclass(frozen=True)
class Node:
    """One expanded reference: `ref` of the parent store, the store it refers to, and deeper paths."""

    ref: Reference
    target: StoreSchema
    children: dict[str, Node] = field(default_factory=dict)


Expansion = Mapping[str, Node]
Lookup = Callable[[str], StoreSchema]  # a store by name; raises NotFound (Registry.get)


def parse_expand(raw: str, store: StoreSchema, lookup: Lookup) -> dict[str, Node]:
    """The tree of `expand=<paths>`; 400 for an empty, unknown, too deep or too many path."""
    paths = raw.split(",")
    if len(paths) > MAX_PATHS:
        raise BadRequest(f"expand: at most {MAX_PATHS} paths")
    tree: dict[str, Node] = {}
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_DEPTH:
            raise BadRequest(f"expand: {path!r} is deeper than {MAX_DEPTH} levels")
        level, schema = tree, store
        for part in parts:
            node = level.get(part) or _node(part, path, schema, lookup)
            level[part] = node
            level, schema = node.children, node.target
    return tree


def _node(prop: str, path: str, store: StoreSchema, lookup: Lookup) -> Node:
    ref = store.references.get(prop)
    if ref is None or prop in store.hidden:
        raise BadRequest(f"expand: {path!r}: {prop!r} is not a reference of {store.name}")
    try:
        return Node(ref, lookup(ref.target))
    except NotFound:
        raise BadRequest(f"expand: {path!r}: {prop!r} refers to {ref.target}, which does not exist") from None


def split_params(params: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Section 7's parameters apart from `expand` and `via` (each at most once: 400 otherwise)."""
    rest: list[tuple[str, str]] = []
    ours: dict[str, str] = {}
    for key, value in params:
        if key not in (EXPAND, VIA):
            rest.append((key, value))
        elif key in ours:
            raise BadRequest(f"Parameter given more than once: {key}")
        else:
            ours[key] = value
    return rest, ours


def with_reference_fields(projection: dict[str, int] | None, tree: Expansion) -> dict[str, int] | None:
    """`only=` narrows what is read: keep the references being expanded in it."""
    if projection is None or not tree:
        return projection
    # A sub-field of a reference (`only=a.x`) would collide with the reference itself in MongoDB.
    kept = {path: v for path, v in projection.items() if path.split(".", 1)[0] not in tree}
    return {**kept, **{prop: 1 for prop in tree}}
