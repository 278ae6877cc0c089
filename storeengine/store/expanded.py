"""`_expand` spliced into entities that are JSON already (API.md section 13), as text.

A page of 1,000 entities leaves the embedded database as JSON bytes (storage/sqlite/answer.py);
decoding it to add `_expand` and encoding it again would cost more than the page itself. So the
`_expand` member is made once per distinct value of the references followed (a parent shared by
many children: one member for them all, keyed by the codes of the page's dictionary-encoded
columns, encoded.py) and put in front of each entity's closing `}`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId

from storeengine.core.jsonio import dumps
from storeengine.store.encoded import Column

EXPANDED = "_expand"
_MEMBER = b'"' + EXPANDED.encode() + b'"'


def members(props: Sequence[str], columns: Sequence[Column],
            found: Sequence[Mapping[bytes, bytes]]) -> tuple[list[Any], dict[Any, bytes]]:
    """Each row's key, and each key's `_expand` object (JSON): for each of `props`, the entity of
    `found` (by its id's bytes) that the row's value in the prop's column refers to, left out when
    there is none; for a list of ids, the found ones in order."""
    names = [dumps(prop) + b":" for prop in props]
    if len(columns) == 1:
        (keys, values), = columns
        return keys, {code: _object([_part(names[0], value, found[0])]) for code, value in values.items()}
    keys = list(zip(*(codes for codes, _ in columns), strict=True))
    return keys, {key: _object([_part(name, values[code], entities) for name, code, (_, values), entities
                                in zip(names, key, columns, found, strict=True)])
                  for key in dict.fromkeys(keys)}


def closed(rows: Sequence[bytes], keys: Sequence[Any], objects: Mapping[Any, bytes]) -> list[bytes]:
    """Each row, a JSON object without its closing brace (find_answer's `opened`, read without a
    member `_expand` of its own), closed with `"_expand": <its key's object>` as its last member."""
    tails = {key: b"," + _MEMBER + b":" + obj + b"}" for key, obj in objects.items()}
    return list(map(bytes.__add__, rows, map(tails.__getitem__, keys)))


def array(rows: Sequence[bytes], keys: Sequence[Any], objects: Mapping[Any, bytes]) -> bytes:
    """`closed` rows as one JSON array, copied once: each row then its tail, joined (C loops, no
    Python step per row)."""
    if not rows:
        return b"[]"
    tails = {key: b"," + _MEMBER + b":" + obj + b"}," for key, obj in objects.items()}
    pieces = [b"[", *itertools.chain.from_iterable(zip(rows, map(tails.__getitem__, keys), strict=True))]
    pieces[-1] = pieces[-1][:-1] + b"]"  # the last tail's comma closes the array instead
    return b"".join(pieces)


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
