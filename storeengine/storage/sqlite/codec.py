"""Documents <-> the JSON text stored in SQLite, keeping every BSON type the engine uses.

JSON has strings, numbers, true/false, null, objects and arrays; the engine also stores
ObjectIds and dates, and MongoDB tells booleans from numbers. Those three become *tagged
strings*: one code point from the very top of Unicode, then a fixed-width text:

    ObjectId  ->  OID  + 24 lowercase hex digits      (12 bytes, big-endian = MongoDB's order)
    bool      ->  BOOL + "0" | "1"
    datetime  ->  DATE + "YYYY-MM-DDThh:mm:ss.mmm"    (UTC, milliseconds, as BSON keeps it)

and a plain string whose first code point is at or above ESC gets ESC in front (vanishingly
rare: U+10FFFC..U+10FFFF are private-use and non-characters).

Why this and not `{"$oid": ...}` objects: SQLite compares TEXT by its UTF-8 bytes, which is
code point order, so with the tags above every plain string, the SQL values of one field sort
exactly in MongoDB's order of types and values:

    NULL (missing, null) < INTEGER/REAL (numbers, compared numerically, int with float)
      < TEXT: plain strings < escaped strings < ObjectIds < booleans < dates

Escaping keeps the order of strings among themselves (an escaped string sorts after every
unescaped one and before every tag, and its own first code point still decides between two
escaped strings). Tagged values are fixed-width, so their text order is their value order:
hex digits for ObjectIds, `0 < 1` for booleans, zero-padded ISO fields for dates (years 1-9999).
So one SQL expression, `json_extract(doc, '$.f')`, is at once the value to compare, the key
of an ordinary expression index and the sort key: a comparison is "the same class of values"
(a range of TEXT, or the numbers) plus SQLite's own `<`, and no per-row conversion runs in
Python. Only objects and arrays need more (their JSON text does not sort as BSON): they get
`bson_key`, a byte string whose order is MongoDB's comparison order, computed by a registered
SQL function when a query compares with a whole object or array, or sorts on one.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bson import ObjectId

from storeengine.core.errors import BadRequest

ESC, OID, BOOL, DATE = "\U0010fffc", "\U0010fffd", "\U0010fffe", "\U0010ffff"
TRUE, FALSE = BOOL + "1", BOOL + "0"
# The TEXT ranges of each class of tagged value, [low, high) (high None: no upper bound).
TEXT_RANGES: dict[str, tuple[str, str | None]] = {
    "string": ("", OID), "objectid": (OID, BOOL), "bool": (BOOL, DATE), "date": (DATE, None),
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Doc = dict[str, Any]


class Shapes:
    """The dotted paths at which a collection's documents have held arrays and objects (array
    elements share their array's path; the document itself is not counted). The compiler writes
    array branches only where an array was seen (MongoDB's "multikey"), and a sort on a path that
    never held an object or array is a plain, index-friendly ORDER BY of the field's value."""

    def __init__(self, arrays: Iterable[str] = (), objects: Iterable[str] = ()) -> None:
        self.arrays, self.objects = set(arrays), set(objects)

    def may_be_array(self, path: str) -> bool:
        return path in self.arrays

    def may_be_object(self, path: str) -> bool:
        return path in self.objects

    def __le__(self, other: Shapes) -> bool:
        return self.arrays <= other.arrays and self.objects <= other.objects


class AnyShape(Shapes):
    """Nothing known: any path may hold anything (a query on one row, or on a value given)."""

    def may_be_array(self, path: str) -> bool:
        return True

    def may_be_object(self, path: str) -> bool:
        return True


def _date_text(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return DATE + value.isoformat(timespec="milliseconds")  # fixed width: years are zero-padded to 4


def _refuse(value: Any) -> BadRequest:
    if type(value) is int:
        return BadRequest("A value cannot be stored (integers must fit in signed 64 bits)")
    if type(value) is float:
        return BadRequest("A value cannot be stored (numbers must be finite)")
    return BadRequest(f"A value cannot be stored (type {type(value).__name__})")


def _string(value: str) -> str:
    return ESC + value if value and value[0] >= ESC else value


def _int(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise _refuse(value)
    return value


def _float(value: float) -> float:
    if not math.isfinite(value):
        raise _refuse(value)
    return value


# Scalars by exact type (the common case: one dict lookup per value).
_SCALARS: dict[type, Any] = {
    str: _string, bool: lambda v: TRUE if v else FALSE, int: _int, float: _float, type(None): lambda v: None,
    ObjectId: lambda v: OID + str(v), datetime: _date_text,
}


def encode_value(value: Any, shapes: Shapes | None = None, path: str = "") -> Any:
    """A Python/BSON value -> its JSON-ready form (tagged strings); `shapes` collects the paths
    of its arrays and objects."""
    kind = type(value)
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return scalar(value)
    if kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
        if shapes is not None and path:
            shapes.objects.add(path)
        return _encode_dict(value, shapes, path)
    if kind is list or kind is tuple:
        if shapes is not None:
            shapes.arrays.add(path)
        return [encode_value(item, shapes, path) for item in value]
    if isinstance(value, datetime):
        return _date_text(value)
    raise _refuse(value)


def _encode_dict(value: Mapping[str, Any], shapes: Shapes | None, path: str) -> Doc:
    out: Doc = {}
    for key, item in value.items():
        if type(key) is not str:
            raise BadRequest("A value cannot be stored (document keys must be strings)")
        scalar = _SCALARS.get(type(item))  # the common case, without building the item's path
        out[key] = scalar(item) if scalar is not None else encode_value(item, shapes, f"{path}.{key}" if path else key)
    return out


def encode(doc: Mapping[str, Any], shapes: Shapes | None = None) -> str:
    """A document -> JSON text."""
    try:
        return orjson.dumps(_encode_dict(doc, shapes, "")).decode()
    except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate in a string
        raise BadRequest("A value cannot be stored (invalid string)") from exc


def dumps_value(value: Any) -> str:
    """One value (an object or array literal of a query) -> JSON text, tagged."""
    try:
        return orjson.dumps(encode_value(value)).decode()
    except orjson.JSONEncodeError as exc:
        raise BadRequest("A value cannot be stored (invalid string)") from exc


def untag(text: str) -> Any:
    """A string as stored -> its value (only strings starting at or above ESC are tagged)."""
    tag = text[0]
    if tag == OID:
        return ObjectId(bytes.fromhex(text[1:]))  # from bytes: a fifth of the cost of from hex text
    if tag == DATE:
        return datetime.fromisoformat(text[1:])
    if tag == BOOL:
        return text == TRUE
    return text[1:]  # ESC: an escaped plain string


def _decode_dict(node: dict[str, Any]) -> dict[str, Any]:
    """Untag the strings of a parsed object, in place (the hot path of every read)."""
    for key, item in node.items():
        kind = item.__class__
        if kind is str:
            if item and item[0] >= ESC:
                node[key] = untag(item)
        elif kind is dict:
            _decode_dict(item)
        elif kind is list and item:
            _decode_list(item)
    return node


def _decode_list(node: list[Any]) -> list[Any]:
    for index, item in enumerate(node):
        kind = item.__class__
        if kind is str:
            if item and item[0] >= ESC:
                node[index] = untag(item)
        elif kind is dict:
            _decode_dict(item)
        elif kind is list and item:
            _decode_list(item)
    return node


def decode(text: str | bytes) -> Doc:
    """JSON text as stored -> the document."""
    return _decode_dict(orjson.loads(text))


def decode_value(text: str | bytes) -> Any:
    """JSON text of any value (an object or array cell) -> the value."""
    value = orjson.loads(text)
    if type(value) is str:
        return untag(value) if value and value[0] >= ESC else value
    if type(value) is dict:
        return _decode_dict(value)
    return _decode_list(value) if type(value) is list else value


def decode_atom(atom: Any) -> Any:
    """A scalar SQL value from `json_extract`/`json_each` -> the value."""
    if type(atom) is str and atom and atom[0] >= ESC:
        return untag(atom)
    return atom


# --- MongoDB's comparison order as bytes ---------------------------------------------------------

# Canonical type ranks (MongoDB: MinKey, null, numbers, strings, objects, arrays, binary, ObjectId,
# booleans, dates, ...). Every key starts with its rank, so values of different types compare by it.
_RANK_NULL, _RANK_NUMBER, _RANK_STRING, _RANK_OBJECT, _RANK_ARRAY = 0x10, 0x20, 0x30, 0x40, 0x50
_RANK_OBJECTID, _RANK_BOOL, _RANK_DATE = 0x70, 0x80, 0x90
_END = b"\x00"  # ends an object or array: shorter sorts first (every element starts with a rank > 0)
_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


def _number_key(value: int | float) -> bytes:
    """Numbers of both kinds in one order: the float's order-preserving bytes, then, for the
    integers a float cannot hold exactly, the remainder (2**53 + 1 sorts after 2**53)."""
    as_float = float(value)
    bits = struct.unpack(">Q", struct.pack(">d", as_float))[0]
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | 0x8000000000000000
    rest = value - int(as_float) if type(value) is int else 0
    return struct.pack(">QQ", bits, rest + 2**63)


def _string_key(text: str) -> bytes:
    # NUL-free and terminated, so that a prefix sorts first: "a" < "a\x00" < "ab".
    return text.encode().replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def bson_key(value: Any) -> bytes:
    """Bytes whose order (memcmp) is MongoDB's order of values, across types."""
    kind = type(value)
    if value is None:
        return bytes((_RANK_NULL,))
    if kind is bool:
        return bytes((_RANK_BOOL, int(value)))
    if kind is int or kind is float:
        return bytes((_RANK_NUMBER,)) + _number_key(value)
    if kind is str:
        return bytes((_RANK_STRING,)) + _string_key(value)
    if kind is dict:
        parts = [bytes((_RANK_OBJECT,))]
        for key, item in value.items():
            item_key = bson_key(item)
            # Per element: its type first, then its name, then its value (BSON's woCompare).
            parts += [item_key[:1], _string_key(key), item_key[1:]]
        return b"".join([*parts, _END])
    if kind is list:
        return b"".join([bytes((_RANK_ARRAY,)), *(bson_key(item) for item in value), _END])
    if kind is ObjectId:
        return bytes((_RANK_OBJECTID,)) + bytes(value.binary)
    if isinstance(value, datetime):
        naive = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
        ms = (naive - _EPOCH) // _MS
        return bytes((_RANK_DATE,)) + struct.pack(">Q", int(ms) + 2**63)
    raise TypeError(f"no order for {kind.__name__}")

