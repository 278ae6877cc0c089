"""`GET /:store/_aggregate` parameters -> one aggregation pipeline (API.md section 14).

The pipeline uses only what `storage.api.CollectionAPI.aggregate` documents: `$match` (the
caller's access rules ANDed with the filters of section 7), `$group` with `$sum`/`$avg`/`$min`/
`$max` over `$ifNull`-ed field paths and `$dateToString` buckets (UTC), `$sort`, `$limit`.

Choices: null and missing group together (as `null`, first); a date-time bucket is answered as
the ISO instant where it starts (`2026-03-01T00:00:00.000Z` for `when:month`); the group's keys
are the fields as given (`when:month`). Without `group`, one group (`{}`) over everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storeengine.core.errors import BadRequest
from storeengine.core.formats import DATETIME
from storeengine.core.types import Doc
from storeengine.model.query import parse_list_query
from storeengine.model.schema import StoreSchema

MAX_GROUP_FIELDS = 5
MAX_GROUPS = 10000
# Bucket -> the $dateToString format of its start, and how to read that back.
_UNITS = {"hour": ("%Y-%m-%dT%H", "%Y-%m-%dT%H"), "day": ("%Y-%m-%d", "%Y-%m-%d"),
          "month": ("%Y-%m", "%Y-%m"), "year": ("%Y", "%Y")}
_ACCUMULATORS = ("sum", "avg", "min", "max")
_NOT_HERE = {"offset", "limit", "only", "meta", "sort", "after"}
_NUMERIC = {"integer", "number"}


@dataclass(frozen=True)
class Aggregation:
    """A parsed `_aggregate` request: group fields (with an optional date unit), what to compute, the filter."""

    group: list[tuple[str, str | None]]
    count: bool
    fields: dict[str, list[str]]  # accumulator -> fields
    filter: Doc

    def pipeline(self, match: Doc) -> list[Doc]:
        key: Doc | None = {f"g{i}": _group_expr(path, unit) for i, (path, unit) in enumerate(self.group)} or None
        group: Doc = {"_id": key, "count": {"$sum": 1}}  # always: a group of nothing is no group
        for acc, names in self.fields.items():
            for i, name in enumerate(names):
                group[f"{acc}{i}"] = {f"${acc}": f"${name}"}
        stages: list[Doc] = [{"$match": match}, {"$group": group}]
        if key:
            stages.append({"$sort": {f"_id.g{i}": 1 for i in range(len(self.group))}})
        stages.append({"$limit": MAX_GROUPS + 1})
        return stages

    def answer(self, rows: Sequence[Mapping[str, Any]]) -> list[Doc]:
        if len(rows) > MAX_GROUPS:
            raise BadRequest(f"more than {MAX_GROUPS} groups: group by fewer fields or a coarser unit, or filter")
        out = []
        for row in rows:
            if not row.get("count"):  # a group over no documents (some servers answer one `_id: null` row)
                continue
            key = row.get("_id") or {}
            item: Doc = {"group": {_label(p, u): _bucket(key.get(f"g{i}"), u) for i, (p, u) in enumerate(self.group)}}
            if self.count:
                item["count"] = row["count"]
            for acc, names in self.fields.items():
                item[acc] = {name: row.get(f"{acc}{i}") for i, name in enumerate(names)}
            out.append(item)
        return out


def _label(path: str, unit: str | None) -> str:
    return f"{path}:{unit}" if unit else path


def _group_expr(path: str, unit: str | None) -> Any:
    if unit is None:
        return {"$ifNull": [f"${path}", None]}  # missing and null: one group (MongoDB would split them)
    return {"$dateToString": {"date": f"${path}", "format": _UNITS[unit][0]}}


def _bucket(value: Any, unit: str | None) -> Any:
    if unit is None or not isinstance(value, str):
        return value
    return datetime.strptime(value, _UNITS[unit][1])


def parse_aggregation(params: Sequence[tuple[str, str]], store: StoreSchema) -> Aggregation:
    mine: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in params:
        if key in _NOT_HERE:
            raise BadRequest(f"{key} is not a parameter of _aggregate")
        if key in ("group", "count", *_ACCUMULATORS):
            if key in mine:
                raise BadRequest(f"Parameter given more than once: {key}")
            mine[key] = value
        else:
            rest.append((key, value))
    if mine.get("count", "true") not in ("true", "false"):
        raise BadRequest("count must be true or false")
    fields = {acc: _fields(mine[acc], acc, store) for acc in _ACCUMULATORS if acc in mine}
    return Aggregation(group=_group(mine.get("group"), store), count=mine.get("count") == "true",
                       fields=fields, filter=parse_list_query(rest, store).filter)


def _names(raw: str, what: str, store: StoreSchema) -> list[str]:
    names = raw.split(",")
    for name in names:
        if not name or not store.knows_field(name.split(":")[0]):
            raise BadRequest(f"{what}: unknown or forbidden field {name.split(':')[0]!r}")
    if len(set(names)) != len(names):
        raise BadRequest(f"{what}: a field is named twice")
    return names


def _group(raw: str | None, store: StoreSchema) -> list[tuple[str, str | None]]:
    if raw is None:
        return []
    out: list[tuple[str, str | None]] = []
    for name in _names(raw, "group", store):
        path, colon, unit = name.partition(":")
        if colon and (unit not in _UNITS or store.field_format(path) != DATETIME):
            raise BadRequest(f"group: {name!r}: only a date-time field takes :hour, :day, :month or :year")
        out.append((path, unit or None))
    if len(out) > MAX_GROUP_FIELDS:
        raise BadRequest(f"group: at most {MAX_GROUP_FIELDS} fields")
    return out


def _fields(raw: str, acc: str, store: StoreSchema) -> list[str]:
    names = _names(raw, acc, store)
    if acc in ("sum", "avg"):
        for name in names:
            if _type(store, name) - {"null"} - _NUMERIC or not _type(store, name) & _NUMERIC:
                raise BadRequest(f"{acc}: {name!r} is not a numeric field")
    elif any(":" in name for name in names):
        raise BadRequest(f"{acc}: a unit belongs to group fields only")
    return names


def _type(store: StoreSchema, path: str) -> set[str]:
    """The JSON types a (sub-)field is declared with; empty when unknown (system fields, untyped)."""
    node: Mapping[str, Any] | None = {"properties": store.properties}
    for part in path.split("."):
        props = node.get("properties") if node else None
        node = props.get(part) if isinstance(props, Mapping) else None
    kind = node.get("type") if node else None
    return set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()
