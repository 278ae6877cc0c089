"""The aggregation stages the engine sends (storage/api.py `aggregate`), evaluated over documents.

SQLite has no `$group`: the `$match` is compiled to SQL like every query, and the matching
documents stream through here, one at a time, on the reader thread. Memory is bounded by the
number of groups (the engine asks at most 10,001 of them), never by the number of documents.
Values compare in BSON order (`codec.bson_key`), as MongoDB's `$min`, `$max` and `$sort` do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from storeengine.core.types import Doc
from storeengine.storage.sqlite.codec import INT64_MAX, INT64_MIN, bson_key

_FORMATS = {"%Y-%m-%dT%H", "%Y-%m-%d", "%Y-%m", "%Y"}


def _at(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; None when missing (an expression path, not a query path)."""
    value: Any = doc
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def _field(expr: Any) -> str:
    if not (isinstance(expr, str) and expr.startswith("$")):
        raise ValueError(f"unsupported aggregation expression: {expr!r}")
    return expr[1:]


def _key_of(spec: Any) -> Callable[[Mapping[str, Any]], Any]:
    """One group key: `{"$ifNull": ["$p", None]}` or `{"$dateToString": {"date": "$p", "format": F}}`."""
    if isinstance(spec, Mapping) and "$ifNull" in spec:
        path = _field(spec["$ifNull"][0])
        return lambda doc: _at(doc, path)
    if isinstance(spec, Mapping) and "$dateToString" in spec:
        path, fmt = _field(spec["$dateToString"]["date"]), spec["$dateToString"]["format"]
        if fmt not in _FORMATS:
            raise ValueError(f"unsupported date format: {fmt!r}")

        def day(doc: Mapping[str, Any]) -> Any:
            value = _at(doc, path)
            return value.strftime(fmt) if isinstance(value, datetime) else None

        return day
    raise ValueError(f"unsupported group key: {spec!r}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Accumulator:
    """One `<out>: {"$sum" | "$avg" | "$min" | "$max": "$<path>" or 1}` of a group."""

    def __init__(self, op: str, arg: Any) -> None:
        self.op, self.path = op, None if arg == 1 else _field(arg)
        self.total: int | float = 0
        self.count = 0
        self.best: Any = None
        self.best_key: bytes | None = None

    def add(self, doc: Mapping[str, Any]) -> None:
        if self.path is None:  # {"$sum": 1}
            self.total += 1
            return
        value = _at(doc, self.path)
        if self.op in ("$sum", "$avg"):
            if _number(value):
                self.total += value
                self.count += 1
                if type(self.total) is int and not INT64_MIN <= self.total <= INT64_MAX:
                    self.total = float(self.total)  # MongoDB's 64-bit sum overflows into a double
        elif value is not None:
            key = bson_key(value)
            if self.best_key is None or (key < self.best_key if self.op == "$min" else key > self.best_key):
                self.best, self.best_key = value, key

    def result(self) -> Any:
        if self.op == "$sum":
            return self.total
        if self.op == "$avg":
            return self.total / self.count if self.count else None
        return self.best


def _sort_key(path: str) -> Callable[[Doc], bytes]:
    return lambda row: bson_key(_at(row, path))


def run_pipeline(docs: Iterable[Doc], stages: list[Mapping[str, Any]], check: Callable[[], None]) -> list[Doc]:
    """`docs` already passed the `$match`; `stages` are the ones after it. `check` is called now
    and then (the read's deadline)."""
    group = next((s["$group"] for s in stages if "$group" in s), None)
    if group is None:
        raise ValueError("an aggregation without $group")
    spec = group["_id"]
    keys = {} if spec is None else {name: _key_of(expr) for name, expr in spec.items()}
    outputs = {out: next(iter(acc.items())) for out, acc in group.items() if out != "_id"}
    groups: dict[tuple[bytes, ...], tuple[Doc | None, dict[str, _Accumulator]]] = {}
    for n, doc in enumerate(docs):
        if n % 1000 == 0:
            check()
        values = {name: key(doc) for name, key in keys.items()}
        ident = tuple(bson_key(v) for v in values.values())
        found = groups.get(ident)
        if found is None:
            found = groups[ident] = (values if spec is not None else None,
                                     {out: _Accumulator(op, arg) for out, (op, arg) in outputs.items()})
        for acc in found[1].values():
            acc.add(doc)
    rows = [{"_id": gid, **{out: acc.result() for out, acc in accs.items()}} for gid, accs in groups.values()]
    for stage in stages:
        if "$sort" in stage:
            for path, direction in reversed(list(stage["$sort"].items())):
                rows.sort(key=_sort_key(path), reverse=direction < 0)
        elif "$limit" in stage:
            rows = rows[: int(stage["$limit"])]
    return rows
