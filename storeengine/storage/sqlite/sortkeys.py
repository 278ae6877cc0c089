"""The sort key of a dotted path, MongoDB's way, for `se_sortkey` (sorting on `a.b`).

The path reaches a set of values as in a query (through arrays of sub-documents; a missing
value counts as null); an array value stands for its elements. Ascending takes the smallest,
descending the largest; an empty array sorts before everything (before null).
"""

from __future__ import annotations

from typing import Any

from storeengine.storage.sqlite.codec import bson_key

_EMPTY = b""  # an empty array: before null and missing


def _reached(value: Any, steps: list[str]) -> list[Any]:
    """The values at `steps` under `value` (None for missing)."""
    if not steps:
        return [value]
    step, rest = steps[0], steps[1:]
    if isinstance(value, dict):
        return _reached(value.get(step), rest)
    if isinstance(value, list):
        found: list[Any] = []
        for item in value:
            if isinstance(item, dict):
                found += _reached(item.get(step), rest)
        if step.isdigit() and int(step) < len(value):
            found += _reached(value[int(step)], rest)
        return found
    return [None]


def dotted_sort_key(doc: dict[str, Any], path: str, descending: bool) -> bytes:
    keys: list[bytes] = []
    for value in _reached(doc, path.split(".")):
        if isinstance(value, list):
            keys += [bson_key(item) for item in value] if value else [_EMPTY]
        else:
            keys.append(bson_key(value))
    if not keys:
        return bson_key(None)
    return max(keys) if descending else min(keys)
