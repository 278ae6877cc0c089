"""`_expand` spliced into entities that are JSON already (API.md section 13), as text.

A page of 1,000 entities leaves the embedded database as JSON bytes (storage/sqlite/answer.py);
decoding it to add `_expand` and encoding it again would cost more than the page itself. So each
entity's `_expand` member is made once per distinct combination of referenced ids (a parent
shared by many children: one member for them all) and put in front of the entity's closing `}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from bson import ObjectId

from storeengine.core.jsonio import dumps

EXPANDED = "_expand"
_MEMBER = b'"' + EXPANDED.encode() + b'"'
Key = bytes | tuple[bytes | None, ...] | None  # an id's bytes, a list's ids, or no reference


def splice(rows: Sequence[bytes], props: Sequence[str], columns: Sequence[Sequence[Any]],
           found: Sequence[Mapping[bytes, bytes]]) -> list[bytes]:
    """Each row (a JSON object) with `"_expand": {prop: entity, ...}` added as its last member:
    for each of `props`, the entity of `found` its value refers to (left out when there is none),
    or for a list of ids the found ones in order. `columns` holds each prop's value of each row."""
    names = [dumps(prop) + b":" for prop in props]
    keys: list[Any] = [[_key(value) for value in column] for column in columns]
    per_row = keys[0] if len(keys) == 1 else list(zip(*keys, strict=True))
    single = len(keys) == 1

    def member(key: Any) -> bytes:
        parts = (_part(name, k, entities) for name, k, entities in zip(names, (key,) if single else key, found,
                                                                          strict=True))
        return b"{" + b",".join(p for p in parts if p is not None) + b"}"

    members = {key: member(key) for key in dict.fromkeys(per_row)}
    if not any(_MEMBER in row for row in rows):
        tails = {key: b"," + _MEMBER + b":" + value + b"}" for key, value in members.items()}
        return [row[:-1] + tails[key] for row, key in zip(rows, per_row, strict=True)]
    return [_merged(row, members[key]) if _MEMBER in row else row[:-1] + b"," + _MEMBER + b":" + members[key] + b"}"
            for row, key in zip(rows, per_row, strict=True)]


def _key(value: Any) -> Key:
    if type(value) is ObjectId:
        return value.binary
    if isinstance(value, list):
        return tuple(i.binary if type(i) is ObjectId else None for i in value)
    return None


def _part(name: bytes, key: Key, entities: Mapping[bytes, bytes]) -> bytes | None:
    if type(key) is bytes:
        entity = entities.get(key)
        return None if entity is None else name + entity
    if type(key) is tuple:
        return name + b"[" + b",".join(entities[i] for i in key if i is not None and i in entities) + b"]"
    return None


def _merged(row: bytes, member: bytes) -> bytes:
    """A row holding a member named `_expand` already (stored, never a declared property): the
    expansion is merged into it, as decoding the entity and adding to it would."""
    doc = orjson.loads(row)
    held = doc.get(EXPANDED)
    doc[EXPANDED] = {**(held if isinstance(held, dict) else {}), **orjson.loads(member)}
    return dumps(doc)
