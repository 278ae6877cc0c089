"""The SQL functions every connection registers: RE2 matching and MongoDB's order of objects.

All are deterministic and never raise into SQLite: a value they cannot read gives NULL (which
no comparison matches), so a stray value can only fail to match, never abort a query.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any

from storeengine.core.regex import compile_linear
from storeengine.storage.sqlite.codec import ESC, bson_key, decode, decode_value
from storeengine.storage.sqlite.sortkeys import dotted_sort_key


@functools.lru_cache(maxsize=256)
def _program(pattern: str) -> Any:
    return compile_linear(pattern)


def regex(pattern: str, value: Any) -> int | None:
    """`$regex` (RE2, linear time) on a stored string (escaped strings lose their escape)."""
    if not isinstance(value, str):
        return None
    if value and value[0] == ESC:
        value = value[1:]
    try:
        return 1 if _program(pattern).search(value) else 0
    except Exception:
        return None


def key(text: Any) -> bytes | None:
    """The BSON-order key of an object or array given as its JSON text."""
    try:
        return bson_key(decode_value(text))
    except Exception:
        return None


def compare(left: Any, right: Any) -> int | None:
    """-1, 0, 1: two objects or arrays (JSON text) in BSON's order."""
    a, b = key(left), key(right)
    if a is None or b is None:
        return None
    return (a > b) - (a < b)


def sort_key(doc: Any, path: str, descending: int) -> bytes | None:
    try:
        return dotted_sort_key(decode(doc), path, bool(descending))
    except Exception:
        return None


def register(conn: sqlite3.Connection) -> None:
    conn.create_function("se_regex", 2, regex, deterministic=True)
    conn.create_function("se_key", 1, key, deterministic=True)
    conn.create_function("se_cmp", 2, compare, deterministic=True)
    conn.create_function("se_sortkey", 3, sort_key, deterministic=True)
