"""JSON in and out: fast encoding of BSON values, and strict parsing of request bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bson import ObjectId

from storeengine.core.errors import BadRequest, Invalid

MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what MongoDB stores as an integer
EPOCH = datetime(1970, 1, 1)
_OPTS = orjson.OPT_PASSTHROUGH_DATETIME
_NATIVE_DATE = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
_Fragment = orjson.Fragment


def iso_ms(value: datetime) -> str:
    """Naive-UTC datetime -> `2026-11-22T10:04:05.123Z` (the contract's format)."""
    return value.isoformat(timespec="milliseconds") + "Z"


def epoch_ms(value: datetime) -> int:
    return (value - EPOCH) // timedelta(milliseconds=1)


def _default(value: Any) -> Any:
    # Called by orjson only for types it does not know: ObjectId and (passed through) datetime,
    # ~50,000 times for a 10,000-entity page, so each call must be cheap. A date is formatted by
    # orjson itself (a fifth of datetime.isoformat's cost) as `"...:05[.ffffff]Z"`, cut to
    # milliseconds and handed back as ready JSON (a Fragment), never as a new str.
    kind = type(value)
    if kind is ObjectId:
        # its 12 bytes, read from the slot: `.binary` (a property) or str() cost 5 to 6 times as much
        return value._ObjectId__id.hex()
    if kind is datetime and value.tzinfo is None:
        raw = orjson.dumps(value, option=_NATIVE_DATE)
        return _Fragment(raw[:24] + b'Z"' if len(raw) > 22 else raw[:20] + b'.000Z"')
    if isinstance(value, datetime):
        return iso_ms(value.astimezone(UTC).replace(tzinfo=None))
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTS)


def encoded(value: Any) -> orjson.Fragment:
    """`value` as ready JSON: encoded once, copied as bytes wherever it is embedded again."""
    return _Fragment(dumps(value))


def to_json_form(value: Any) -> Any:
    """BSON document -> the plain JSON values a client sees (for merge patches and events)."""
    return orjson.loads(dumps(value))


def parse_body(raw: bytes) -> dict[str, Any]:
    """Parse a request body: a JSON object, at most MAX_DEPTH deep, no `$` or dotted keys."""
    try:
        value = loads_exact(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise BadRequest("Body must be a JSON object")
    check_document(value)
    return value


def loads_exact(raw: bytes | str, limit: int = MAX_DEPTH) -> Any:
    """orjson.loads, refusing nesting deeper than `limit` (400), except that integers beyond
    64 bits, which orjson reads as floats, stay exact integers (to be refused by
    `check_document`, never stored as another number). Nothing here recurses on the value:
    orjson stops at its own depth limit (1024), the walk below keeps its own stack."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg or "recursion" in exc.msg.lower():  # orjson's own limit (1024)
            raise BadRequest(f"Nesting deeper than {limit} levels") from None
        raise
    if _walk(value, limit):
        try:
            value = json.loads(raw)  # valid JSON of bounded depth already (checked above); exact integers
        except ValueError:  # an integer of more than 4300 digits
            raise BadRequest("An integer does not fit in a signed 64-bit integer") from None
    return value


# A protocol packet wraps what a handler checks as a body (a `subscribe`'s filter: the event's
# array, its payload object): room for that, and for a body too deep, which the handler then
# refuses with its own 400 (an ack) instead of the socket being closed for a malformed packet.
PACKET_DEPTH = 2 * MAX_DEPTH


def loads_bounded(raw: bytes | str) -> Any:
    """`loads_exact` for protocol packets, PACKET_DEPTH deep: a ValueError where it is a 400
    (integers beyond 64 bits kept exact, for the handler to refuse: a float would pass)."""
    try:
        return loads_exact(raw, PACKET_DEPTH)
    except BadRequest as exc:
        raise ValueError(exc.message) from None


def _walk(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Check the depth of a parsed JSON value without recursion (400 past `limit` levels of
    objects and arrays); True if it holds a float that may be a rounded integer beyond 64 bits."""
    huge = _huge_float(value)
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise BadRequest(f"Nesting deeper than {limit} levels")
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            elif not huge:
                huge = _huge_float(child)
    return huge


def _huge_float(value: Any) -> bool:
    return type(value) is float and not -(2.0**63) < value < 2.0**63  # such a float may be a rounded integer


def check_int64(value: Any, where: str) -> None:
    """400 naming `where` for an integer MongoDB cannot store (outside signed 64 bits)."""
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        raise Invalid(fields={where or "(body)": "must be an integer that fits in signed 64 bits"})


def check_document(value: Any, path: str = "", depth: int = 1) -> None:
    """Reject nesting deeper than MAX_DEPTH, keys that MongoDB would read as operators, and
    integers it cannot store."""
    check_int64(value, path)
    if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
        raise BadRequest(f"Nesting deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("$") or "." in key or "\x00" in key:
                where = f"{path}.{key}" if path else key
                raise BadRequest(f"Key not allowed (starts with '$' or contains '.'): {where}")
            check_document(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_document(item, f"{path}.{index}", depth + 1)
