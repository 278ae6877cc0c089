"""Keyset paging (API.md section 14): `X-Next-After` tokens and the range query they resume with.

A token holds the sort-key values of a page's last entity, the store and the sort, signed with
an HMAC of the server secret: a modified token, or one of another store or sort, is a 400, never
a different query. Resuming is an index range (an `$or` of "same keys so far, then after"), not
a skip, so its cost does not grow with the depth.

MongoDB sorts across types (null/missing < numbers < strings < ... < ObjectId < bool < date) and
sorts an array by its least/greatest element, while `$gt`/`$lt` compare within one type only.
Rather than emulate that, keyset paging is offered for sorts whose keys are top-level fields of
ONE scalar type (optionally null): `_id`, `owner`, `group`, `createdAt`, `updatedAt`, and
properties typed string, integer, number or boolean (formats objectid and date-time included).
Within such a key the other "type" is null/missing, which sorts first and is handled exactly
below; and the values of other types it held before its schema changed, reached with `$type`.
Other sorts (arrays, objects, sub-fields, mixed types) get no `X-Next-After`, and `after` with
them is a 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import bson
from bson import ObjectId

from storeengine.core.errors import BadRequest
from storeengine.core.types import Doc, Sort

_SCALAR_SYSTEM = frozenset({"_id", "owner", "group", "createdAt", "updatedAt"})
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})
_NUMBERS = frozenset({"integer", "number"})
_MISSING = {"m": True}  # the stored form of a missing or null sort value (they sort as equals)
NOTHING: dict[str, Any] = {"_id": {"$in": []}}


def pageable(properties: Mapping[str, Mapping[str, Any]], sort: Sort) -> bool:
    """Can this sort be resumed with a keyset token? (Every key a top-level field of one scalar type.)"""
    return all(_scalar(properties, key) for key, _ in sort)


def _scalar(properties: Mapping[str, Mapping[str, Any]], key: str) -> bool:
    if key in _SCALAR_SYSTEM:
        return True
    if "." in key or key not in properties:
        return False
    kind = properties[key].get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    kinds.discard("null")
    if kinds <= _NUMBERS:  # integer and number are one bracket: they compare numerically
        kinds = {"number"} if kinds else set()
    return len(kinds) == 1 and kinds <= _SCALAR_TYPES | {"number"}


def _sort_spec(sort: Sort) -> str:
    return ",".join(("-" if d < 0 else "") + k for k, d in sort)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyset:
    """Signs and reads `after` tokens with a key derived from the server secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"storeengine keyset token\0" + secret.encode()).digest()

    def derived(self, tag: str) -> Keyset:
        """Another database's (a tenant's, API.md 12): its tokens are unknown here and ours there."""
        return Keyset(self._key.hex() + "\0" + tag)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:18]

    def token(self, store: str, sort: Sort, entity: Mapping[str, Any]) -> str:
        values = [_MISSING if entity.get(k) is None else {"v": entity[k]} for k, _ in sort]
        payload = bson.encode({"s": store, "k": _sort_spec(sort), "v": values})
        return _b64(payload) + "." + _b64(self._mac(payload))

    def resume(self, token: str, store: str, sort: Sort) -> Doc:
        """The filter of the entities after the token's position, in this store and sort; 400 for
        a token that was modified or belongs to another store or sort."""
        try:
            body, mac = token.split(".")
            payload, given = _unb64(body), _unb64(mac)
        except (ValueError, binascii.Error):
            raise BadRequest("after: not a valid token") from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise BadRequest("after: not a valid token (it was modified or is not from this server)")
        decoded = bson.decode(payload)
        if decoded.get("s") != store:
            raise BadRequest("after: the token belongs to another store")
        if decoded.get("k") != _sort_spec(sort):
            raise BadRequest("after: the token belongs to another sort; give the same sort as the first page")
        values = [None if v == _MISSING else v["v"] for v in decoded["v"]]
        return after_filter(sort, values)


def after_filter(sort: Sort, values: list[Any]) -> Doc:
    """Entities strictly after `values` in `sort` order (each key one scalar type or null)."""
    branches: list[Doc] = []
    for i, (key, direction) in enumerate(sort):
        beyond = _beyond(key, direction, values[i])
        if beyond is not None:
            ties = [{k: values[j]} for j, (k, _) in enumerate(sort[:i])]  # {k: None} = null or missing
            branches.append({"$and": [*ties, beyond]} if ties else beyond)
    if not branches:
        return NOTHING
    return branches[0] if len(branches) == 1 else {"$or": branches}


def _beyond(key: str, direction: int, value: Any) -> Doc | None:
    """This key strictly after `value`: null/missing sort before every value. `$gt`/`$lt` stay
    within the value's type, so the types MongoDB sorts after it (before it, descending) are
    added by `$type`: a key declared of one type still holds the values of another written
    before its schema changed (API.md 15), and paging skipped them."""
    if direction > 0:
        if value is None:
            return {key: {"$ne": None}}
        later = _TYPES[_RANK[_kind(value)] + 1:]
        return {"$or": [{key: {"$gt": value}}, {key: {"$type": list(later)}}]} if later else {key: {"$gt": value}}
    if value is None:
        return None
    earlier = _TYPES[:_RANK[_kind(value)]]
    return {"$or": [{key: {"$lt": value}}, *([{key: {"$type": list(earlier)}}] if earlier else []), {key: None}]}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", ObjectId: "objectId", datetime: "date"}.get(type(value), "object")


# The scalar types an entity holds, in MongoDB's sort order (`$type` aliases); an object sorts
# between strings and ObjectIds. Arrays sort by an element, so they have no place of their own.
_TYPES = ("number", "string", "object", "objectId", "bool", "date")
_RANK = {kind: i for i, kind in enumerate(_TYPES)}
