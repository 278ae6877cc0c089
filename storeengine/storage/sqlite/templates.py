"""Compiled queries kept by shape, for the queries read by `_id` that the engine repeats.

A GET by id, a reference check and a page's expansion each compile `_id` (one id, or `$in` a
few) ANDed with the caller's read filter (`owner`, `access`, ...): the same query but for its
ids, whose compilation (~25 us of Python) costs more than SQLite's answer. Such a query whose
every value is an ObjectId compiles to the same SQL whatever the ids, with each id in its own
parameters (the compiler decides by class of value, and ObjectIds are one class). So the SQL is
compiled once per shape with stand-in ids, and each parameter remembers which stand-in it
holds; a query of that shape then only fills in its own ids. A shape whose SQL holds an id
anywhere but as a whole parameter (inside an object's JSON, say) is not kept.

Only for a compiler that assumes every path may hold an array (AnyShape: reads pinned to ids),
whose SQL depends on nothing but the query. Measured: 27 -> ~6 us for a reference check's
`{_id: {$in: [a, b]}, $or: [{owner}, {access: {$in}}]}`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from storeengine.storage.sqlite.codec import OID
from storeengine.storage.sqlite.compiler import Compiler, every_path

_MAX = 512  # shapes kept (a few per store and rule set); past it the cache starts over
# shape -> (SQL, [(parameter, index of the id it holds, or -1), ...], the parameters of no id)
_templates: dict[Any, Any] = {}
_lock = threading.Lock()
_UNCACHEABLE = object()


def compile_any_shape(query: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """`Compiler(every_path).query(query)` and its parameters."""
    ids: list[ObjectId] = []
    shape = _shape(query, ids)
    found = _templates.get(shape) if shape is not None else None
    if found is None:
        compiler = Compiler(every_path)
        where = compiler.query(query)
        if shape is not None and ids:
            _remember(shape, query, len(ids))
        return where, compiler.params
    if found is _UNCACHEABLE:
        compiler = Compiler(every_path)
        return compiler.query(query), compiler.params
    sql, slots, constants = found
    params = dict(constants)
    for name, index in slots:
        params[name] = OID + str(ids[index])
    return sql, params


def _shape(value: Any, ids: list[ObjectId]) -> Any:
    """The query with each ObjectId replaced by a marker (collected in order into `ids`); every
    other value stays, with its type (1, 1.0 and True compile differently). None if a value is
    neither a plain scalar, a list nor a mapping."""
    kind = type(value)
    if kind is ObjectId:
        ids.append(value)
        return ObjectId
    if kind is dict:
        items = []
        for key, item in value.items():
            sub = _shape(item, ids)
            if sub is None:
                return None
            items.append((key, sub))
        return (dict, tuple(items))
    if kind is list:
        subs = []
        for item in value:
            sub = _shape(item, ids)
            if sub is None:
                return None
            subs.append(sub)
        return (list, tuple(subs))
    if kind in (str, int, float, bool, type(None)):
        return (kind, value)
    return None


def _remember(shape: Any, query: Mapping[str, Any], count: int) -> None:
    stand_ins = [ObjectId(b"\x00" * 8 + i.to_bytes(4, "big")) for i in range(count)]
    compiler = Compiler(every_path)
    sql = compiler.query(_replaced(query, iter(stand_ins)))
    encoded = {OID + str(stand_in): i for i, stand_in in enumerate(stand_ins)}
    slots: list[tuple[str, int]] = []
    constants: dict[str, Any] = {}
    entry: Any
    for name, value in compiler.params.items():
        if isinstance(value, str) and value in encoded:
            slots.append((name, encoded[value]))
        elif isinstance(value, str | bytes) and any(str(s).encode() in _bytes(value) for s in stand_ins):
            slots = []
            break  # an id inside a parameter: not a shape to keep
        else:
            constants[name] = value
    else:
        entry = (sql, slots, constants)
        _store(shape, entry)
        return
    _store(shape, _UNCACHEABLE)


def _store(shape: Any, entry: Any) -> None:
    with _lock:
        if len(_templates) >= _MAX:
            _templates.clear()
        _templates[shape] = entry


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _replaced(value: Any, stand_ins: Any) -> Any:
    """The query with its ObjectIds replaced, in `_shape`'s order, by the stand-ins."""
    kind = type(value)
    if kind is ObjectId:
        return next(stand_ins)
    if kind is dict:
        return {key: _replaced(item, stand_ins) for key, item in value.items()}
    if kind is list:
        return [_replaced(item, stand_ins) for item in value]
    return value
