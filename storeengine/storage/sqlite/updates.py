"""MongoDB update operators applied to a decoded document (inside the write transaction).

The engine sends `$set $unset $inc $setOnInsert $push $pull $max` (and `$min` costs nothing
more). `$pull`'s condition is a query on each element; the caller decides which elements match
(with the same SQL compiler as every query, see `collection.py`) and passes their positions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from storeengine.core.errors import BadRequest
from storeengine.storage.sqlite.codec import INT64_MAX, INT64_MIN, bson_key

Doc = dict[str, Any]
# (path, condition) -> positions of the elements of the array at `path` that the condition matches.
PullMatcher = Callable[[str, Any], set[int]]
_MISSING = object()


def apply_update(doc: Doc, update: Mapping[str, Any], *, inserting: bool, pull: PullMatcher) -> Doc:
    if not update or not all(op.startswith("$") for op in update):
        raise BadRequest("an update must use update operators")
    for op, fields in update.items():
        if not isinstance(fields, Mapping):
            raise BadRequest(f"{op} takes an object")
        if op == "$pull":
            for path, cond in fields.items():
                _pull(doc, path, pull(path, cond))
            continue
        apply_one = _OPERATORS.get(op)
        if apply_one is None:
            raise BadRequest(f"update operator not supported: {op}")
        if op == "$setOnInsert" and not inserting:
            continue
        for path, value in fields.items():
            if path == "_id" and not inserting:
                raise BadRequest("_id cannot be changed")
            apply_one(doc, path, value)
    return doc


def _parent(doc: Doc, path: str, create: bool) -> tuple[Any, str]:
    """The container holding the last step of `path` (creating sub-documents if asked)."""
    *steps, last = path.split(".")
    node: Any = doc
    for step in steps:
        if isinstance(node, dict):
            if step not in node or node[step] is None:
                if not create:
                    return None, last
                node[step] = {}
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif create:
            raise BadRequest(f"cannot create field {step!r} in {path!r}")
        else:
            return None, last
    return node, last


def get(doc: Doc, path: str) -> Any:
    parent, last = _parent(doc, path, create=False)
    if isinstance(parent, dict):
        return parent.get(last, _MISSING)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    return _MISSING


def _set(doc: Doc, path: str, value: Any) -> None:
    parent, last = _parent(doc, path, create=True)
    value = copy.deepcopy(value)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and last.isdigit():
        index = int(last)
        parent.extend([None] * (index + 1 - len(parent)))
        parent[index] = value
    else:
        raise BadRequest(f"cannot set {path!r}")


def _unset(doc: Doc, path: str, value: Any) -> None:
    parent, last = _parent(doc, path, create=False)
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        parent[int(last)] = None  # MongoDB keeps the array's length


def _number(value: Any, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{what} needs a number")
    return value


def _inc(doc: Doc, path: str, value: Any) -> None:
    amount = _number(value, "$inc")
    current = get(doc, path)
    if current is _MISSING:
        _set(doc, path, amount)
        return
    total = _number(current, "$inc") + amount
    if isinstance(total, int) and not INT64_MIN <= total <= INT64_MAX:
        raise BadRequest("$inc would overflow a signed 64-bit integer")
    _set(doc, path, total)


def _extreme(larger: bool) -> Callable[[Doc, str, Any], None]:
    def apply(doc: Doc, path: str, value: Any) -> None:
        current = get(doc, path)
        if current is _MISSING:
            _set(doc, path, value)
            return
        new, old = bson_key(value), bson_key(current)
        if (new > old) if larger else (new < old):
            _set(doc, path, value)
    return apply


def _push(doc: Doc, path: str, value: Any) -> None:
    current = get(doc, path)
    if current is _MISSING:
        _set(doc, path, [value])
    elif isinstance(current, list):
        current.append(copy.deepcopy(value))
    else:
        raise BadRequest(f"$push: {path!r} is not an array")


def _pull(doc: Doc, path: str, positions: set[int]) -> None:
    current = get(doc, path)
    if isinstance(current, list) and positions:
        current[:] = [item for index, item in enumerate(current) if index not in positions]


_OPERATORS: dict[str, Callable[[Doc, str, Any], None]] = {
    "$set": _set, "$setOnInsert": _set, "$unset": _unset, "$inc": _inc, "$push": _push,
    "$max": _extreme(True), "$min": _extreme(False),
}


def upsert_base(query: Mapping[str, Any]) -> Doc:
    """The document an upsert starts from: the query's equality conditions (MongoDB's rule)."""
    doc: Doc = {}
    for key, cond in query.items():
        if key == "$and":
            for sub in cond:
                for path, value in upsert_base(sub).items():
                    doc[path] = value
        elif key.startswith("$"):
            continue
        elif isinstance(cond, Mapping) and any(k.startswith("$") for k in cond):
            if "$eq" in cond:
                _set(doc, key, cond["$eq"])
        else:
            _set(doc, key, cond)
    return doc
