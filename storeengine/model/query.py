"""List parameters -> a typed query. Only whitelisted operators over known fields get through."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from storeengine.core.errors import BadRequest, Invalid
from storeengine.core.formats import DATETIME, OBJECTID, convert, parse_datetime, parse_ms, parse_objectid
from storeengine.core.jsonio import INT64_MAX, INT64_MIN, MAX_DEPTH, check_document, check_int64, loads_exact
from storeengine.core.regex import compile_linear
from storeengine.model.schema import StoreSchema

MAX_LIMIT = 10000
MAX_REGEX = 256
_COMPARE = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}
_LISTS = {"$in", "$nin", "$all"}
_LOGICAL = {"$and", "$or", "$nor"}
_PARAMS = {"offset", "limit", "only", "meta", "from", "to", "begin", "end", "filter", "sort", "after"}
# Parameters of later sections (13, 14) that no property may take over either (API.md 7): a
# property named like any of these is filtered through `filter` only.
RESERVED_PARAMS = frozenset({*_PARAMS, "expand", "after", "via"})


class ListQuery(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    offset: int = 0
    limit: int = MAX_LIMIT
    meta: bool = False
    projection: dict[str, int] | None = None
    filter: dict[str, Any] = {}
    sort: list[tuple[str, int]] = [("_id", 1)]
    after: str | None = None  # a keyset token (model/keyset.py), checked by the service


def parse_list_query(params: Sequence[tuple[str, str]], store: StoreSchema) -> ListQuery:
    seen: dict[str, str] = {}
    for key, value in params:
        if key in seen:
            raise BadRequest(f"Parameter given more than once: {key}")
        seen[key] = value
    clauses: list[dict[str, Any]] = []
    for key, value in seen.items():
        if key in RESERVED_PARAMS - _PARAMS:
            raise BadRequest(f"Parameter not taken by this request: {key}")
        if key not in _PARAMS:
            clauses.append(_property_equality(key, value, store))
    meta = _paging(seen)
    created = _created_range(seen)
    if created:
        clauses.append({"createdAt": created})
    if "filter" in seen:
        clauses.append(parse_filter(seen["filter"], store))
    query = clauses[0] if len(clauses) == 1 else ({"$and": clauses} if clauses else {})
    return ListQuery(
        offset=_int(seen, "offset", 0, 0, None),
        limit=_int(seen, "limit", MAX_LIMIT, 1, MAX_LIMIT),
        meta=meta,
        projection=_projection(seen["only"], store) if "only" in seen else None,
        filter=query,
        sort=_sort(seen["sort"], store) if "sort" in seen else [("_id", 1)],
        after=seen.get("after"),
    )


def _paging(seen: dict[str, str]) -> bool:
    """Check how `meta`, `offset`, `limit` and `after` combine; whether `meta` is on."""
    if "meta" in seen and seen["meta"] not in ("true", "false"):
        raise BadRequest("meta must be true or false")
    meta = seen.get("meta") == "true"
    if meta and ("offset" in seen or "limit" in seen):
        raise BadRequest("meta cannot be combined with offset or limit")
    if "after" in seen and ("offset" in seen or "meta" in seen):
        raise BadRequest("after cannot be combined with offset or meta")
    if seen.get("after") == "":
        raise BadRequest("after must be a token from X-Next-After")
    return meta


def _int(seen: dict[str, str], key: str, default: int, low: int, high: int | None) -> int:
    if key not in seen:
        return default
    raw = seen[key]
    high = INT64_MAX if high is None else high  # what the database takes
    if not re.fullmatch(r"\d{1,19}", raw, re.ASCII) or not low <= int(raw) <= high:
        bound = f"{low}..{high}" if high != INT64_MAX else f">= {low} (64 bits)"
        raise BadRequest(f"{key} must be an integer {bound}")
    return int(raw)


def _field_list(raw: str, what: str, store: StoreSchema) -> list[str]:
    names = raw.split(",")
    for name in names:
        bare = name[1:] if what == "sort" and name.startswith("-") else name
        _check_path(bare, what)
        if not bare or not store.knows_field(bare):
            raise BadRequest(f"{what}: unknown or forbidden field {bare!r}")
    if len(set(names)) != len(names):
        raise BadRequest(f"{what}: a field is named twice")
    return names


def _check_path(path: str, what: str) -> None:
    """A dotted path of at most MAX_DEPTH segments: deeper ones would only reach the database's
    own recursive path handling (a RecursionError in the embedded one), never a stored field."""
    if path.count(".") >= MAX_DEPTH:
        raise BadRequest(f"{what}: a field path deeper than {MAX_DEPTH} levels")


def _projection(raw: str, store: StoreSchema) -> dict[str, int]:
    fields = _field_list(raw, "only", store)
    for a in fields:
        if any(b.startswith(a + ".") for b in fields):
            raise BadRequest(f"only: {a!r} already includes its sub-fields")
    return {"_id": 1, **{f: 1 for f in fields}}


def _sort(raw: str, store: StoreSchema) -> list[tuple[str, int]]:
    keys = [(n[1:], -1) if n.startswith("-") else (n, 1) for n in _field_list(raw, "sort", store)]
    if len({k for k, _ in keys}) != len(keys):
        raise BadRequest("sort: a field is named twice")
    if all(k != "_id" for k, _ in keys):
        keys.append(("_id", 1))  # a total order, so offset paging never skips or repeats
    return keys


def _time(key: str, raw: str) -> datetime:
    value = parse_ms(raw) or parse_datetime(raw)
    if value is None:
        raise BadRequest(f"{key} must be Unix milliseconds or ISO 8601 (YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm])"
                         + _plus_hint(raw))
    return value


def _plus_hint(raw: str) -> str:
    """A `+` left unencoded in a URL arrives as a space: say how to send it."""
    if " " in raw and parse_datetime(raw.replace(" ", "+")) is not None:
        return "; a '+' in a URL query is read as a space: write the zone's '+' as %2B"
    return ""


def _created_range(seen: dict[str, str]) -> dict[str, datetime]:
    bounds: dict[str, datetime] = {}
    for name, alias, op in (("from", "begin", "$gte"), ("to", "end", "$lt")):
        if name in seen and alias in seen:
            raise BadRequest(f"Give {name} or {alias}, not both")
        key = name if name in seen else alias
        if key in seen:
            bounds[op] = _time(key, seen[key])
    if "$gte" in bounds and "$lt" in bounds and bounds["$gte"] >= bounds["$lt"]:
        raise BadRequest("from must be before to")
    return bounds


def _property_equality(key: str, raw: str, store: StoreSchema) -> dict[str, Any]:
    prop = store.properties.get(key)
    if prop is None or key in store.hidden:
        raise BadRequest(f"Unknown parameter: {key}")
    schema = prop if isinstance(prop, dict) else {}  # `true` (any value) is a valid property schema
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        schema = schema["items"]  # equality on an array matches any element
    if schema.get("format") in (OBJECTID, DATETIME):
        kinds = [schema["format"]]
    else:
        declared = schema.get("type")
        kinds = [t for t in declared if t != "null"] if isinstance(declared, list) else [declared]
    # A property of several types (`["integer", "string"]`) matches the value as each reads it.
    values = list(dict.fromkeys(v for kind in kinds or ["string"] if (v := _reading(key, raw, kind)) is not None))
    if not values:
        kind = " or ".join(str(k) for k in kinds)
        raise BadRequest(f"{key}: {raw!r} is not a valid {kind}" + (_plus_hint(raw) if DATETIME in kinds else ""))
    return {key: values[0] if len(values) == 1 else {"$in": values}}


def _reading(key: str, raw: str, kind: Any) -> Any:
    """The parameter's value as a property of type (or format) `kind` holds it; None if it is not one."""
    if kind == "integer":
        return _int64(key, raw)
    if kind == "number":
        return _number(key, raw)
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw)
    if kind == OBJECTID:
        return parse_objectid(raw)
    if kind == DATETIME:
        return parse_ms(raw) or parse_datetime(raw)
    return raw


def _int64(key: str, raw: str) -> int | None:
    """An integer parameter; 400 naming it when it does not fit MongoDB's signed 64 bits."""
    if not re.fullmatch(r"-?\d{1,400}", raw, re.ASCII):
        return None
    value = int(raw)
    if not INT64_MIN <= value <= INT64_MAX:
        raise BadRequest(f"{key}: {raw} does not fit in a signed 64-bit integer")
    return value


def _number(key: str, raw: str) -> float | int | None:
    if re.fullmatch(r"-?\d+", raw, re.ASCII):
        return _int64(key, raw)
    if re.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", raw, re.ASCII):
        value = float(raw)
        if not math.isfinite(value):  # 1e400: out of float range, not infinity
            raise BadRequest(f"{key}: {raw} is out of the range of a number")
        return value
    return None


def parse_filter(raw: str, store: StoreSchema) -> dict[str, Any]:
    """`filter=<JSON>`: a MongoDB query restricted to safe operators over known fields."""
    try:
        value = loads_exact(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("filter is not valid JSON") from None
    except BadRequest as exc:
        raise BadRequest(f"filter: {exc.message[:1].lower()}{exc.message[1:]}") from None
    if not isinstance(value, dict):
        raise BadRequest("filter must be a JSON object")
    _check_depth(value)
    return _query(value, store)


def _check_depth(value: Any, depth: int = 1) -> None:
    if depth > MAX_DEPTH:
        raise BadRequest("filter is nested too deeply")
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        _check_depth(child, depth + 1)


def _query(node: Any, store: StoreSchema, prefix: str | None = None) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise BadRequest("filter: a query must be an object")
    out: dict[str, Any] = {}
    for key, cond in node.items():
        if key in _LOGICAL:
            if not isinstance(cond, list) or not cond:
                raise BadRequest(f"filter: {key} takes a non-empty array")
            out[key] = [_query(c, store, prefix) for c in cond]
        elif key.startswith("$"):
            raise BadRequest(f"filter: operator {key} is not allowed here")
        else:
            path = f"{prefix}.{key}" if prefix else key
            _check_path(path, "filter")
            if prefix is None and not store.knows_field(path):
                raise BadRequest(f"filter: unknown or forbidden field {key!r}")
            out[key] = _condition(cond, path, store)
    return out


def _condition(cond: Any, path: str, store: StoreSchema) -> Any:
    fmt = store.field_format(path)
    if not (isinstance(cond, dict) and any(k.startswith("$") for k in cond)):
        return _literal(cond, fmt, path)
    out: dict[str, Any] = {}
    for op, arg in cond.items():
        operand = _OPERANDS.get(op)
        if operand is None:
            raise BadRequest(f"filter: operator {op} is not allowed")
        out[op] = operand(arg, _Field(path, fmt, store), op)
    return out


@dataclass(frozen=True)
class _Field:
    """Where an operator's argument applies: the field's path, its format, and its store."""

    path: str
    fmt: str | None
    store: StoreSchema


def _compare(arg: Any, field: _Field, op: str) -> Any:
    return _literal(arg, field.fmt, field.path)


def _list(arg: Any, field: _Field, op: str) -> Any:
    if not isinstance(arg, list):
        raise BadRequest(f"filter: {op} takes an array")
    return [_literal(a, field.fmt, field.path) for a in arg]


def _exists(arg: Any, field: _Field, op: str) -> Any:
    if not isinstance(arg, bool):
        raise BadRequest("filter: $exists takes true or false")
    return arg


def _size(arg: Any, field: _Field, op: str) -> Any:
    if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg <= INT64_MAX:
        raise BadRequest("filter: $size takes a non-negative integer")
    return arg


def _not(arg: Any, field: _Field, op: str) -> Any:
    if not isinstance(arg, dict) or not arg or not all(k.startswith("$") for k in arg):
        raise BadRequest("filter: $not takes an operator object")
    return _condition(arg, field.path, field.store)


def _elem_match(arg: Any, field: _Field, op: str) -> Any:
    if not isinstance(arg, dict) or not arg:
        raise BadRequest("filter: $elemMatch takes an object")
    if all(k.startswith("$") for k in arg):
        return _condition(arg, field.path, field.store)
    return _query(arg, field.store, prefix=field.path)


# Each allowed operator and the check that turns its argument into the MongoDB form.
_OPERANDS: dict[str, Callable[[Any, _Field, str], Any]] = {
    **dict.fromkeys(_COMPARE, _compare),
    **dict.fromkeys(_LISTS, _list),
    "$exists": _exists,
    "$size": _size,
    "$regex": lambda arg, field, op: _regex(arg),
    "$not": _not,
    "$elemMatch": _elem_match,
}


def _regex(arg: Any) -> str:
    if not isinstance(arg, str) or len(arg) > MAX_REGEX:
        raise BadRequest(f"filter: $regex takes a string of at most {MAX_REGEX} characters")
    compile_linear(arg)  # 400 for what RE2 refuses (it could not be matched in linear time)
    return arg


def _literal(value: Any, fmt: str | None, path: str) -> Any:
    if isinstance(value, dict):
        try:
            check_document(value, f"filter.{path}")
        except Invalid:
            raise
        except BadRequest:
            raise BadRequest("filter: operators are not allowed inside a value") from None
        return value
    check_int64(value, f"filter.{path}")
    if isinstance(value, list):
        return [_literal(v, fmt, path) for v in value]
    if fmt and isinstance(value, str):
        converted = convert(fmt, value)
        if converted is value:
            raise BadRequest(f"filter: {value!r} is not a valid {fmt}")
        return converted
    return value

