"""The change an entity carries, and the feed record derived from it. Pure: no I/O.

A write puts its change into the entity's own document, `_change: {seq, op, at, by, was, new}`,
in the same database write as the entity itself. `was` (the values the write replaced or
removed) and `new` (the properties it added) give back the entity before the write, which readers
need for `enter`/`leave` under access rules and filters (API.md 10, 14), at the cost of the
properties the write changed rather than a second copy of the entity. The record of that change
(what `_changes` keeps and readers see) is a function of the document alone, so whoever holds
the document can write the record: the writer, the next writer of the entity, or a reader that
meets the number (see feed.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from storeengine.core.documents import ACCESS_FIELDS, CARRIED, version
from storeengine.core.formats import utcnow
from storeengine.core.types import Doc
from storeengine.model.schema import StoreSchema

FIELD = CARRIED  # internal (leading underscore): never returned to clients
SEQ = f"{FIELD}.seq"
VOID = "void"
TOMBSTONE = "delete"  # a carried delete: the entity is being removed
_BEFORE_FIELDS = ("_id", "owner", *ACCESS_FIELDS)


def key(store: str, seq: int) -> str:
    """A record's `_id` in `_changes`: one document per number and store, enforced by the database."""
    return f"{store}:{seq:016x}"


def access_of(doc: Mapping[str, Any] | None) -> Doc | None:
    return None if doc is None else {k: doc.get(k) for k in _BEFORE_FIELDS}


def stamp(seq: int, op: str, by: Any, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> Doc:
    """The `_change` a write carries. Its time is never before the version it makes (`updatedAt`
    may run ahead of the clock by a few ms). Of `before`, only what the write changed: `was` (old
    values of the properties it replaced or removed) and `new` (the ones it added)."""
    now = utcnow()
    updated: datetime = after.get("updatedAt") or now
    change: Doc = {"seq": seq, "op": op, "at": max(now, updated), "by": by}
    if before is not None:
        was = {k: v for k, v in before.items() if not k.startswith("_") and (k not in after or after[k] != v)}
        new = [k for k in after if not k.startswith("_") and k not in before]
        if was:
            change["was"] = was
        if new:
            change["new"] = new
    return change


def before_of(doc: Mapping[str, Any]) -> Doc | None:
    """The entity as it was before the change it carries (None for a create)."""
    change = doc[FIELD]
    if change["op"] == "create":
        return None
    added = change.get("new", ())
    return {**{k: v for k, v in doc.items() if k not in added}, **change.get("was", {})}


def seq_of(doc: Mapping[str, Any]) -> int | None:
    """The number an entity carries (None: written before the feed carried changes, or without it)."""
    change = doc.get(FIELD)
    return int(change["seq"]) if isinstance(change, Mapping) else None


def is_tombstone(doc: Mapping[str, Any]) -> bool:
    change = doc.get(FIELD)
    return isinstance(change, Mapping) and change.get("op") == TOMBSTONE


def renumbered(doc: Mapping[str, Any], seq: int) -> Doc:
    """The document carrying the same change under a new number (and a time not before the old one)."""
    change = dict(doc[FIELD])
    change["seq"], change["at"] = seq, max(utcnow(), change["at"])
    return {**doc, FIELD: change}


def public(store: StoreSchema, doc: Mapping[str, Any]) -> Doc:
    """The entity as clients get it: no hidden property, no internal field (`_` but `_id`)."""
    return {k: v for k, v in doc.items() if k not in store.hidden and (k == "_id" or not k.startswith("_"))}


def record(store: StoreSchema, doc: Mapping[str, Any], retention: timedelta | None) -> Doc:
    """The feed record of the change `doc` carries (`retention` None: kept for ever). For a
    tombstone the entity is the one deleted, as a delete's record has always held."""
    change = doc[FIELD]
    was = before_of(doc)
    before = None if was is None else public(store, was)
    out: Doc = {"_id": key(store.name, change["seq"]), "store": store.name, "seq": change["seq"],
                "op": change["op"], "id": doc["_id"], "entity": public(store, doc), "before": before,
                "version": version(doc), "at": change["at"], "by": change.get("by")}
    if retention is not None:
        out["expireAt"] = change["at"] + retention
    return out


def brief(doc: Mapping[str, Any]) -> Doc:
    """Number, time and op of a carried change (positions only)."""
    change = doc[FIELD]
    return {"seq": change["seq"], "at": change["at"], "op": change["op"]}
