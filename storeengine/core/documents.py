"""Pure helpers on entity documents: system fields, merge patch, versions. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from storeengine.core.errors import Invalid
from storeengine.core.formats import parse_objectid, utcnow
from storeengine.core.jsonio import epoch_ms
from storeengine.core.types import Doc

# Fields the server manages on every entity (API.md section 1).
SYSTEM_FIELDS = ("_id", "owner", "group", "access", "branch", "createdAt", "updatedAt")
ACCESS_FIELDS = ("group", "access", "branch")
# The change an entity carries in its own document (store/carried.py): internal, never shown.
CARRIED = "_change"
_ONE_MS = timedelta(milliseconds=1)


def version(doc: Mapping[str, Any]) -> str:
    """An entity's version (its ETag): every write moves `updatedAt` strictly forward."""
    return format(epoch_ms(doc["updatedAt"]), "x")


def next_update_time(previous: datetime) -> datetime:
    """Now, but always after `previous`, so a version is never reused (it guards our CAS)."""
    return max(utcnow(), previous + _ONE_MS)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, `null` removes a member."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def split(doc: Mapping[str, Any]) -> tuple[Doc, Doc]:
    """(system and internal fields, body fields) of a stored entity."""
    system = {k: v for k, v in doc.items() if k in SYSTEM_FIELDS or k.startswith("_")}
    body = {k: v for k, v in doc.items() if k not in system}
    return system, body


def forbidden_fields(body: Mapping[str, Any], names: Iterable[str], why: str) -> dict[str, str]:
    """Each forbidden key (and any `_`-prefixed key) with the reason."""
    bad = {k: why for k in body if k in names}
    bad.update({k: "is reserved" for k in body if k.startswith("_") and k not in bad})
    return bad


def reject_fields(body: Mapping[str, Any], names: Iterable[str], why: str) -> None:
    """400 with `fields` naming each forbidden key."""
    if bad := forbidden_fields(body, names, why):
        raise Invalid(fields=bad)


def id_list(value: Any, name: str) -> list[ObjectId]:
    ids = [parse_objectid(v) for v in value] if isinstance(value, list) else None
    if ids is None or any(i is None for i in ids):
        raise Invalid(fields={name: "must be an array of ObjectId strings"})
    return list(dict.fromkeys(ids))  # type: ignore[arg-type]


def optional_id(value: Any, name: str) -> ObjectId | None:
    if value is None:
        return None
    parsed = parse_objectid(value)
    if parsed is None:
        raise Invalid(fields={name: "must be an ObjectId string or null"})
    return parsed


def path_id(raw: str) -> ObjectId | None:
    """A path id; None for anything that is not 24 lowercase hex (answered as 404)."""
    return parse_objectid(raw) if raw == raw.lower() else None
