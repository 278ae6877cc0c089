"""BENCHMARK (not a test): what the engine's indexes cost an insert on the embedded database (issue 26).

A store gets, for each field of ENGINE_INDEXES (createdAt, owner, group, access, branch, _change.seq),
an expression index and a partial index of the documents where the field holds a non-empty array
(storage/sqlite/schema.py). This inserts the same 3,000 stored entities (the shape of
bench/vs_pocketbase.py's, as the server stores them) one statement each, as a POST does, into
tables that differ only in their indexes, and prints microseconds of wall and CPU per insert:

- none; the indexes as made today; only the expression indexes; only the partial array indexes;
- the expression indexes over generated columns (VIRTUAL, STORED) instead of expressions;
- `group`'s index partial on a value being there (`IS NOT NULL`), and no `group` index at all.

Each variant twice, interleaved. Runs in a few seconds:

    .venv/bin/python bench/embedded_indexes.py
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bson import ObjectId

from storeengine.core.formats import utcnow
from storeengine.storage.sqlite import codec, schema
from storeengine.storage.sqlite.folder import check_database, connect
from storeengine.store.indexes import ENGINE_INDEXES

COUNT = 3000
TABLE = schema.table("items")


def entity(i: int, owner: ObjectId) -> dict[str, Any]:
    now = utcnow()
    return {"_id": ObjectId(), "name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"], "listedAt": now,
            "owner": owner, "group": None, "access": [], "branch": [], "createdAt": now, "updatedAt": now,
            "_change": {"seq": i + 1, "op": "create", "at": now, "by": owner, "before": None}}


def timed(name: str, make: Callable[[sqlite3.Connection], None]) -> None:
    folder = tempfile.mkdtemp(prefix="bench-indexes-")
    path = os.path.join(folder, "x.db")
    conn = connect(path)
    check_database(conn, path)
    make(conn)
    owner = ObjectId()
    rows = [(codec.encode_value(doc["_id"]), codec.encode(doc, codec.Shapes()))
            for doc in (entity(i, owner) for i in range(COUNT))]
    wall, cpu = time.perf_counter(), time.process_time()
    for key, text in rows:
        conn.execute(f"INSERT INTO {TABLE} (id, doc) VALUES (?, ?)", (key, text))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    conn.close()
    print(f"  {name:<52} {wall / COUNT * 1e6:6.1f} us wall {cpu / COUNT * 1e6:6.1f} us CPU per insert", flush=True)


def indexes(statements: list[str]) -> Callable[[sqlite3.Connection], None]:
    def make(conn: sqlite3.Connection) -> None:
        schema.create_table(conn, "items")
        for statement in statements:
            conn.execute(statement)
    return make


def generated(kind: str) -> Callable[[sqlite3.Connection], None]:
    fields = [keys[0][0] for keys in ENGINE_INDEXES]

    def make(conn: sqlite3.Connection) -> None:
        columns = ", ".join(f"g{n} GENERATED ALWAYS AS (json_extract(doc, '$.{field}')) {kind}"
                            for n, field in enumerate(fields))
        conn.execute(f"CREATE TABLE {TABLE} (id NOT NULL PRIMARY KEY, doc TEXT NOT NULL, {columns})")
        for n in range(len(fields)):
            conn.execute(f'CREATE INDEX "g{n}" ON {TABLE} (g{n})')
    return make


def main() -> None:
    today = [s for keys in ENGINE_INDEXES for s in schema.index_statements("items", list(keys), False)]
    expressions = [s for s in today if ":index:" in s]
    arrays = [s for s in today if ":elements:" in s]
    group = "json_extract(doc, '$.group')"
    group_present = [s + f" WHERE {group} IS NOT NULL" if group in s else s for s in expressions]
    variants: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
        ("no index", indexes([])),
        (f"today: {len(expressions)} expression + {len(arrays)} partial array indexes", indexes(today)),
        ("the expression indexes only", indexes(expressions)),
        ("the partial array indexes only", indexes(arrays)),
        ("expression indexes over VIRTUAL generated columns", generated("VIRTUAL")),
        ("expression indexes over STORED generated columns", generated("STORED")),
        ("expression indexes, group's partial (IS NOT NULL)", indexes(group_present)),
        ("expression indexes without group's", indexes([s for s in expressions if group not in s])),
    ]
    print(f"embedded_indexes: {COUNT:,} inserts of a stored entity, one statement each, per variant")
    for _ in range(2):
        for name, make in variants:
            timed(name, make)


if __name__ == "__main__":
    main()
