"""MongoDB projections, applied to a decoded document.

Inclusion (`{a: 1, "b.c": 1}`) keeps `_id` (unless `_id: 0`) and the named paths, in the
document's own order, through arrays of sub-documents; a named sub-path under an object keeps
that object even when the sub-path is missing (`b: {}`), as MongoDB does. Exclusion
(`{a: 0}`) drops the named paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storeengine.core.errors import BadRequest

Doc = dict[str, Any]
Tree = dict[str, Any]  # path step -> True (the whole value) or a sub-tree
_SKIP = object()


def _tree(paths: list[str]) -> Tree:
    tree: Tree = {}
    for path in paths:
        node = tree
        *parents, last = path.split(".")
        for step in parents:
            sub = node.setdefault(step, {})
            if sub is True:
                break
            node = sub
        else:
            node[last] = True
    return tree


def project(doc: Doc, projection: Mapping[str, Any] | None) -> Doc:
    if not projection:
        return doc
    spec = dict(projection)
    keep_id = spec.pop("_id", None)
    flags = {bool(v) for v in spec.values()}
    if len(flags) > 1:
        raise BadRequest("a projection cannot both include and exclude fields")
    if flags == {True} or (not spec and keep_id):
        paths = [k for k in spec]
        if keep_id is None or keep_id:
            paths.append("_id")
        return _include(doc, _tree(paths))
    paths = [k for k in spec]
    if keep_id is not None and not keep_id:
        paths.append("_id")
    return _exclude(doc, _tree(paths))


def _include(doc: Doc, tree: Tree) -> Doc:
    out: Doc = {}
    for key, value in doc.items():
        sub = tree.get(key)
        if sub is None:
            continue
        kept = value if sub is True else _include_value(value, sub)
        if kept is not _SKIP:
            out[key] = kept
    return out


def _include_value(value: Any, tree: Tree) -> Any:
    if isinstance(value, dict):
        return _include(value, tree)
    if isinstance(value, list):
        return [kept for kept in (_include_value(item, tree) for item in value) if kept is not _SKIP]
    return _SKIP  # a scalar has no sub-fields to keep


def _exclude(doc: Doc, tree: Tree) -> Doc:
    out: Doc = {}
    for key, value in doc.items():
        sub = tree.get(key)
        if sub is True:
            continue
        out[key] = value if sub is None else _exclude_value(value, sub)
    return out


def _exclude_value(value: Any, tree: Tree) -> Any:
    if isinstance(value, dict):
        return _exclude(value, tree)
    if isinstance(value, list):
        return [_exclude_value(item, tree) for item in value]
    return value
