"""`_expand` spliced into entities that are JSON already (API.md section 13), as text.

A page of 1,000 entities leaves the embedded database as JSON bytes (storage/sqlite/answer.py);
decoding it to add `_expand` and encoding it again would cost more than the page itself. So the
`_expand` member is made once per distinct value of the references followed (a parent shared by
many children: one member for them all, from the page's dictionary-encoded columns, encoded.py)
and put in front of each entity's closing `}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from bson import ObjectId

from storeengine.core.jsonio import dumps
from storeengine.store.encoded import Column

EXPANDED = "_expand"
_MEMBER = b'"' + EXPANDED.encode() + b'"'


def splice(rows: Sequence[bytes], props: Sequence[str], columns: Sequence[Column],
           found: Sequence[Mapping[bytes, bytes]]) -> list[bytes]:
    """Each row (a JSON object) with `"_expand": {prop: entity, ...}` added as its last member:
    for each of `props`, the entity of `found` (by its id's bytes) that the row's value in the
    prop's column refers to, left out when there is none; for a list of ids, the found ones in order."""
    names = [dumps(prop) + b":" for prop in props]
    if len(columns) == 1:
        (per_row, values), = columns
        members = {code: _object([_part(names[0], value, found[0])]) for code, value in values.items()}
    else:
        per_row = list(zip(*(codes for codes, _ in columns), strict=True))
        members = {key: _object([_part(name, values[code], entities) for name, code, (_, values), entities
                                 in zip(names, key, columns, found, strict=True)])
                   for key in dict.fromkeys(per_row)}
    if _MEMBER not in b"".join(rows):
        tails = {key: b"," + _MEMBER + b":" + member + b"}" for key, member in members.items()}
        return [row[:-1] + tails[key] for row, key in zip(rows, per_row, strict=True)]
    return [_merged(row, members[key]) if _MEMBER in row else row[:-1] + b"," + _MEMBER + b":" + members[key] + b"}"
            for row, key in zip(rows, per_row, strict=True)]


def _part(name: bytes, value: Any, entities: Mapping[bytes, bytes]) -> bytes | None:
    if type(value) is ObjectId:
        entity = entities.get(value.binary)
        return None if entity is None else name + entity
    if isinstance(value, list):
        shown = (entities.get(i.binary) for i in value if type(i) is ObjectId)
        return name + b"[" + b",".join(e for e in shown if e is not None) + b"]"
    return None


def _object(parts: list[bytes | None]) -> bytes:
    return b"{" + b",".join(p for p in parts if p is not None) + b"}"


def _merged(row: bytes, member: bytes) -> bytes:
    """A row holding a member named `_expand` already (stored, never a declared property): the
    expansion is merged into it, as decoding the entity and adding to it would."""
    doc = orjson.loads(row)
    held = doc.get(EXPANDED)
    doc[EXPANDED] = {**(held if isinstance(held, dict) else {}), **orjson.loads(member)}
    return dumps(doc)
