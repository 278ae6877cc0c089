"""Tables, indexes and the bookkeeping tables of the embedded database.

One table per collection, `"c:<name>"(id PRIMARY KEY, doc TEXT)`: `id` is the `_id`'s SQL value
(the codec's encoding, so ObjectIds sort by time and `id = ?` is one B-tree search), `doc` the
whole document as JSON text. Bookkeeping tables start with `_se_`:

- `_se_paths(coll, path, kind)`: every dotted path at which a document of the collection has
  held an array or an object (codec.Shapes). The query compiler emits array branches only for
  those (MongoDB's "multikey"), and a sort on a path that held neither uses the field's index.
  It is written in the same transaction as the document, so a reader that sees the document
  sees the path too.
- `_se_ttl(coll, field, seconds)`: TTL indexes (`expire_after`), swept by the writer.
- `_se_indexes(coll, keys, uniq)`: the indexes asked for, as MongoDB's listIndexes would list them.

An index over fields [f, g] is `json_extract(doc, '$.f'), json_extract(doc, '$.g')`, the very
expressions the compiler writes, so SQLite uses it for equality, ranges and `IN`. Each field
also gets a partial index of the documents where it holds a non-empty array, so that a query's
"or one of its elements" branch is an index lookup too (SQLite then unions the two: MULTI-INDEX
OR). SQLite has no multikey index: the documents of that partial index are each examined
(json_each), so an access rule on `access` / `branch` costs what the shared entities number,
not the store's size, as long as most entities leave those lists empty.

A unique index is partial on the fields existing (as on MongoDB) and compares values by
MongoDB's equality: 1 == 1.0, two nulls collide, a string never equals an object or array. On
a field holding arrays it compares whole arrays (MongoDB: each element), which the engine
never asks for.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence

from storeengine.storage.sqlite.codec import Shapes
from storeengine.storage.sqlite.sql import Node, identifier

APPLICATION_ID = 0x53544F52  # "STOR": marks a file as ours (PRAGMA application_id)
FORMAT_VERSION = 1  # PRAGMA user_version
TABLE_PREFIX = "c:"

BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS _se_paths (coll TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, "
    "PRIMARY KEY (coll, path, kind)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _se_ttl (coll TEXT NOT NULL, field TEXT NOT NULL, seconds INTEGER NOT NULL, "
    "PRIMARY KEY (coll, field)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _se_indexes (coll TEXT NOT NULL, keys TEXT NOT NULL, uniq INTEGER NOT NULL, "
    "PRIMARY KEY (coll, keys, uniq)) WITHOUT ROWID",
)


def table(collection: str) -> str:
    return identifier(TABLE_PREFIX + collection)


def primary_key(collection: str) -> str:
    """The index SQLite makes for the table's `id PRIMARY KEY` (its name is SQLite's rule)."""
    return identifier(f"sqlite_autoindex_{TABLE_PREFIX}{collection}_1")


def create_table(conn: sqlite3.Connection, collection: str) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table(collection)} (id NOT NULL PRIMARY KEY, doc TEXT NOT NULL)")


def _name(collection: str, kind: str, fields: Iterable[str]) -> str:
    digest = hashlib.sha1("\x00".join(fields).encode()).hexdigest()[:12]
    return identifier(f"{TABLE_PREFIX}{collection}:{kind}:{digest}")


def _unique_value(field: str) -> str:
    """A field's value as a unique index compares it: SQL NULL can never collide, so JSON null
    becomes an empty BLOB; objects and arrays become BLOBs of their text (never equal to a string)."""
    node = Node.root().child_path(field)
    return (f"CASE {node.type} WHEN 'null' THEN x'' WHEN 'object' THEN CAST('o' || {node.value} AS BLOB) "
            f"WHEN 'array' THEN CAST('a' || {node.value} AS BLOB) ELSE {node.value} END")


def index_statements(collection: str, keys: Sequence[tuple[str, int]], unique: bool) -> list[str]:
    fields = [field for field, _ in keys]
    on = table(collection)
    columns = ["id" if f == "_id" else Node.root().child_path(f).value for f in fields]
    statements = []
    if fields != ["_id"]:
        statements.append(f"CREATE INDEX IF NOT EXISTS {_name(collection, 'index', fields)} ON {on} "
                          f"({', '.join(columns)})")
    for field in fields:
        if field != "_id":
            node = Node.root().child_path(field)
            non_empty = f"{node.type} = 'array' AND json_array_length({node.src}, {node.path}) > 0"
            statements.append(f"CREATE INDEX IF NOT EXISTS {_name(collection, 'elements', [field])} ON {on} "
                              f"({node.type}) WHERE {non_empty}")
    if unique and fields != ["_id"]:
        values = ["id" if f == "_id" else _unique_value(f) for f in fields]
        present = " AND ".join(f"{Node.root().child_path(f).type} IS NOT NULL" for f in fields if f != "_id")
        statements.append(f"CREATE UNIQUE INDEX IF NOT EXISTS {_name(collection, 'unique', fields)} ON {on} "
                          f"({', '.join(values)})" + (f" WHERE {present}" if present else ""))
    return statements


def record_index(conn: sqlite3.Connection, collection: str, keys: Sequence[tuple[str, int]], unique: bool) -> None:
    conn.execute("INSERT OR IGNORE INTO _se_indexes (coll, keys, uniq) VALUES (?, ?, ?)",
                 (collection, json.dumps([list(k) for k in keys]), int(unique)))


def indexes(conn: sqlite3.Connection, collection: str) -> list[tuple[list[tuple[str, int]], bool]]:
    rows = conn.execute("SELECT keys, uniq FROM _se_indexes WHERE coll = ?", (collection,)).fetchall()
    return [([(field, direction) for field, direction in json.loads(keys)], bool(uniq)) for keys, uniq in rows]


def shapes(conn: sqlite3.Connection, collection: str) -> Shapes:
    rows = conn.execute("SELECT path, kind FROM _se_paths WHERE coll = ?", (collection,)).fetchall()
    return Shapes((p for p, k in rows if k == "array"), (p for p, k in rows if k == "object"))


def record_shapes(conn: sqlite3.Connection, collection: str, new: Shapes) -> None:
    rows = [*((collection, p, "array") for p in new.arrays), *((collection, p, "object") for p in new.objects)]
    conn.executemany("INSERT OR IGNORE INTO _se_paths (coll, path, kind) VALUES (?, ?, ?)", rows)


def record_ttl(conn: sqlite3.Connection, collection: str, field: str, seconds: int) -> None:
    conn.execute("INSERT INTO _se_ttl (coll, field, seconds) VALUES (?, ?, ?) "
                 "ON CONFLICT (coll, field) DO UPDATE SET seconds = excluded.seconds", (collection, field, seconds))


def ttl_indexes(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    return [(c, f, s) for c, f, s in conn.execute("SELECT coll, field, seconds FROM _se_ttl").fetchall()]


def expire_statement(collection: str, field: str) -> str:
    """Deletes the documents whose date at `field` is before the bound (two parameters: the
    first date tag, and the bound's encoding); dates sort after everything else in TEXT."""
    value = Node.root().child_path(field).value
    return f"DELETE FROM {table(collection)} WHERE {value} >= ? AND {value} < ?"
