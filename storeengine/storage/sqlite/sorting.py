"""Sort specifications -> SQL ORDER BY, in MongoDB's order across types.

The sort key of a value is one SQL value whose order (SQLite's: NULL < numbers < TEXT < BLOB,
TEXT and BLOB bytewise) is MongoDB's: null and missing (NULL, equal), numbers, strings (TEXT
below the codec's tags), objects and arrays (`se_key`, a BLOB starting 0x40 / 0x50), then
ObjectIds, booleans and dates (their tagged TEXT cast to BLOB: UTF-8 of U+10FFFD..U+10FFFF,
which starts 0xF4, above every `se_key`, and keeps their order). An array field sorts by its
smallest element ascending, its largest descending, and an empty array before everything
(MongoDB's rules): a first ORDER BY term puts empty arrays apart. A path that never held an
object or an array (the collection's shapes say so) sorts by its plain value.
"""

from __future__ import annotations

from collections.abc import Sequence

from storeengine.storage.sqlite.codec import OID, Shapes
from storeengine.storage.sqlite.sql import Node, literal

_TAGGED = literal(OID)  # TEXT at or above it is an ObjectId, a boolean or a date


def _key(kind: str, value: str, json: str) -> str:
    return (f"CASE WHEN {kind} IN ('object', 'array') THEN se_key({json}) "
            f"WHEN {kind} = 'text' AND {value} >= {_TAGGED} THEN CAST({value} AS BLOB) ELSE {value} END")


def order_by(sort: Sequence[tuple[str, int]], shapes: Shapes) -> str:
    terms: list[str] = []
    for field, direction in sort:
        way = "DESC" if direction < 0 else "ASC"
        node = Node.root().child_path(field) if field != "_id" else None
        if node is None:
            terms.append(f"id {way}")  # scalars only: the column's own order is MongoDB's
        elif not _may_nest(field, shapes):
            # Only scalars ever held here: the field's SQL value is its sort key, and an index on
            # the field serves the ORDER BY (no sort step; a LIMIT stops early).
            terms.append(f"{node.value} {way}")
        elif "." in field:  # through sub-documents and arrays: MongoDB's rule, in Python
            terms.append(f"se_sortkey(doc, {literal(field)}, {int(direction < 0)}) {way}")
        else:
            terms += [f"{term} {way}" for term in _keys(node, way, shapes.may_be_array(field))]
    return ", ".join(terms)


def _may_nest(field: str, shapes: Shapes) -> bool:
    """May the path hold (or pass through) an array, or hold an object?"""
    parts = field.split(".")
    prefixes = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return shapes.may_be_object(field) or any(shapes.may_be_array(p) for p in prefixes)


def _keys(node: Node, way: str, may_array: bool) -> list[str]:
    value, kind = node.value, node.type
    if not may_array:
        return [_key(kind, value, value)]
    element = (f"(SELECT {_key('a.type', 'a.atom', 'a.value')} AS k FROM json_each({node.src}, {node.path}) AS a "
               f"ORDER BY k {way} LIMIT 1)")
    empty = f"CASE WHEN {kind} = 'array' AND json_array_length({node.src}, {node.path}) = 0 THEN 0 ELSE 1 END"
    return [empty, f"CASE WHEN {kind} = 'array' THEN {element} ELSE {_key(kind, value, value)} END"]
