"""References between stores (API.md section 13): which properties hold ids of which store.

A top-level property `{"type": "string", "format": "objectid", "x-ref": "<store>"}`, or an array
whose `items` is one, refers to `<store>`; the system fields `owner` and `group` refer to `users`
and `groups` without saying so. Read from the schema file once, by `schema.compile_schema`; this
module knows no registry and does no I/O (the checks and `expand` live in `store/references.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storeengine.core.formats import OBJECTID

KEYWORD = "x-ref"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# Names no store can have, so no reference may point there (`users` and `groups` may be referred to).
_NOT_A_STORE = frozenset({"auth", "acl"})


@dataclass(frozen=True)
class Reference:
    """`prop` holds the id (`many`: a list of ids) of entities of the store `target`."""

    prop: str
    target: str
    many: bool = False


# The system fields that refer to the built-in stores.
IMPLICIT: Mapping[str, Reference] = {
    "owner": Reference("owner", "users"),
    "group": Reference("group", "groups"),
}


def parse_references(properties: Mapping[str, Any], problems: list[str]) -> dict[str, Reference]:
    """The declared reference properties; every misuse of `x-ref` appended to `problems`."""
    refs: dict[str, Reference] = {}
    for prop, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        many = sub.get("type") == "array" and isinstance(sub.get("items"), dict)
        holder = sub["items"] if many else sub
        if KEYWORD in holder and (ref := _reference(prop, holder, many, problems)) is not None:
            refs[prop] = ref
        if _stray(sub, holder):
            problems.append(f"property {prop!r}: x-ref is allowed only on a top-level property or its items")
    return refs


def _reference(prop: str, schema: Mapping[str, Any], many: bool, problems: list[str]) -> Reference | None:
    target = schema[KEYWORD]
    where = f"property {prop!r}: x-ref"
    if not isinstance(target, str) or not _NAME.fullmatch(target):
        problems.append(f"{where} must name a store matching {_NAME.pattern}")
        return None
    if target in _NOT_A_STORE:
        problems.append(f"{where}: {target!r} is a reserved name, not a store")
        return None
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "string" not in kinds or not kinds <= {"string", "null"} or schema.get("format") != OBJECTID:
        problems.append(f'{where} needs "type": "string" (or ["string", "null"]) and "format": "{OBJECTID}"')
        return None
    return Reference(prop, target, many)


def _stray(schema: Any, holder: Mapping[str, Any]) -> bool:
    """Is there an `x-ref` anywhere in `schema` but on `holder`? (It would be silently ignored.)"""
    if isinstance(schema, list):
        return any(_stray(item, holder) for item in schema)
    if not isinstance(schema, dict):
        return False
    return (schema is not holder and KEYWORD in schema) or any(_stray(v, holder) for v in schema.values())


def ids_of(value: Any) -> list[Any]:
    """The ids a reference field holds (a single id or a list; None and missing are none)."""
    if value is None:
        return []
    return [v for v in value if v is not None] if isinstance(value, list) else [value]
