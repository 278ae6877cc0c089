"""The in-memory twin of `GET ?filter=`: does a stored entity match a filter from `query.parse_filter`?

A filtered subscription (API.md section 14) decides enter/leave/update from the entity before and
after a write without a database read, so this must answer exactly as MongoDB does for every
operator the list allows: type brackets (a comparison only matches values of the operand's BSON
type class: numbers with numbers, strings with strings, ...), arrays (a condition on an array
field matches the array or any element; paths traverse arrays of documents), missing fields
(`null` matches missing), and `$regex` through RE2 (`core.regex`). tests/model/test_matcher.py
checks it against the database with generated entities and filters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId

from storeengine.core.regex import compile_linear

_MISSING = object()


def matches(entity: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """Does `entity` (stored form: ObjectId, datetime) match `query` (a checked filter)?"""
    for key, cond in query.items():
        if key == "$and":
            ok = all(matches(entity, q) for q in cond)
        elif key == "$or":
            ok = any(matches(entity, q) for q in cond)
        elif key == "$nor":
            ok = not any(matches(entity, q) for q in cond)
        else:
            ok = _field(entity, key, cond)
        if not ok:
            return False
    return True


def _bracket(value: Any) -> int:
    """MongoDB's order of type classes (null < numbers < strings < objects < arrays < ObjectId < bool < date)."""
    if value is None or value is _MISSING:
        return 0
    if isinstance(value, bool):
        return 8
    if isinstance(value, (int, float)):
        return 1
    if isinstance(value, str):
        return 2
    if isinstance(value, dict):
        return 3
    if isinstance(value, list):
        return 4
    if isinstance(value, ObjectId):
        return 7
    if isinstance(value, datetime):
        return 9
    return 99


def _resolve(value: Any, parts: list[str]) -> list[Any]:
    """The values at a dotted path; arrays of documents are traversed (each element)."""
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        return _resolve(value[head], rest) if head in value else [_MISSING]
    if isinstance(value, list):
        out: list[Any] = []
        if head.isdigit() and int(head) < len(value):
            out += _resolve(value[int(head)], rest)
        for item in value:
            if isinstance(item, dict):
                out += [v for v in _resolve(item, parts) if v is not _MISSING]
        return out or [_MISSING]
    return [_MISSING]


def _candidates(values: list[Any]) -> list[Any]:
    """What a value condition is tried on: each value and, for an array, each of its elements."""
    out: list[Any] = []
    for v in values:
        out.append(v)
        if isinstance(v, list):
            out += v
    return out


def _field(entity: Mapping[str, Any], path: str, cond: Any) -> bool:
    values = _resolve(dict(entity), path.split("."))
    if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
        return all(_operator(op, arg, values) for op, arg in cond.items())
    return _eq(values, cond)


def _equal(a: Any, b: Any) -> bool:
    if a is _MISSING:
        a = None
    if _bracket(a) != _bracket(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a.keys()) == list(b.keys()) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _eq(values: list[Any], arg: Any) -> bool:
    return any(_equal(c, arg) for c in _candidates(values))


def _order(op: str) -> Callable[[Any, Any], bool]:
    return {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
            "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}[op]


def _compare(op: str, values: list[Any], arg: Any) -> bool:
    if arg is None:  # $gte/$lte null: equality with null; $gt/$lt null: nothing
        return op in ("$gte", "$lte") and _eq(values, None)
    test = _order(op)
    for c in _candidates(values):
        if c is _MISSING or _bracket(c) != _bracket(arg):
            continue
        if isinstance(arg, (list, dict)):
            continue  # comparisons with array/object operands are not generated (see the test)
        if test(c, arg):
            return True
    return False


def _operator(op: str, arg: Any, values: list[Any]) -> bool:
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _compare(op, values, arg)
    check = _OPERATORS.get(op)
    if check is None:
        raise ValueError(f"operator {op} is not checked by query.parse_filter")
    return check(arg, values)


_OPERATORS: dict[str, Callable[[Any, list[Any]], bool]] = {
    "$eq": lambda arg, values: _eq(values, arg),
    "$ne": lambda arg, values: not _eq(values, arg),
    "$in": lambda arg, values: any(_eq(values, a) for a in arg),
    "$nin": lambda arg, values: not any(_eq(values, a) for a in arg),
    "$exists": lambda arg, values: any(v is not _MISSING for v in values) == arg,
    "$regex": lambda arg, values: _regex_any(values, arg),
    "$size": lambda arg, values: any(isinstance(v, list) and len(v) == arg for v in values),
    "$all": lambda arg, values: bool(arg) and all(_eq(values, a) for a in arg),
    "$not": lambda arg, values: not all(_operator(o, a, values) for o, a in arg.items()),
    "$elemMatch": lambda arg, values: any(isinstance(v, list) and any(_elem(e, arg) for e in v) for v in values),
}


def _elem(element: Any, arg: Mapping[str, Any]) -> bool:
    if all(k.startswith("$") for k in arg):
        return all(_operator(op, a, [element]) for op, a in arg.items())
    return isinstance(element, dict) and matches(element, arg)


def _regex_any(values: list[Any], pattern: str) -> bool:
    program = compile_linear(pattern)
    return any(isinstance(c, str) and program.search(c) is not None for c in _candidates(values))
