"""One collection on SQLite: the seam's operations (storage/api.py CollectionAPI).

Reads compile the query with the collection's array paths read in the same read transaction
(so they cover every document the read can see). Writes run on the writer thread; every
read-modify-write (compare-and-swap, counters, upserts) is one `BEGIN IMMEDIATE` transaction,
atomic against other threads and other processes sharing the folder.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from bson import ObjectId

from storeengine.core.errors import BadRequest
from storeengine.storage.sqlite import codec, schema
from storeengine.storage.sqlite.codec import AnyShape, Shapes
from storeengine.storage.sqlite.compiler import Compiler, pinned_ids, pins_id
from storeengine.storage.sqlite.group import transaction
from storeengine.storage.sqlite.grouping import run_pipeline
from storeengine.storage.sqlite.pages import BATCH, Page, PageSql, droppable
from storeengine.storage.sqlite.projection import project
from storeengine.storage.sqlite.sorting import order_by
from storeengine.storage.sqlite.sql import Leaf, Node, and_
from storeengine.storage.sqlite.templates import compile_any_shape
from storeengine.storage.sqlite.updates import PullMatcher, apply_update, upsert_base

if TYPE_CHECKING:
    from storeengine.storage.sqlite.storage import SqliteStorage

Doc = dict[str, Any]
Sort = Sequence[tuple[str, int]]
R = TypeVar("R")
# A read of at most this many rows, each found by `_id` (primary key), is short: it may run on the
# event loop's thread (runner.py). A reference check (a write's few ids) and a page's expansion
# (its distinct referenced ids: 100 rows cost ~0.1 ms of SQLite, less than a hop to a thread).
SHORT_ROWS = 100


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    return str(exc).startswith("no such table")


def _key(doc: Mapping[str, Any]) -> Any:
    key = codec.encode_value(doc["_id"])
    if isinstance(key, dict | list):
        raise BadRequest("_id must be a scalar value")
    return key


class SqliteCollection:
    def __init__(self, storage: SqliteStorage, name: str) -> None:
        self.name = name
        self._storage = storage
        self._runner = storage.runner
        self._table = schema.table(name)
        self._primary_key = schema.primary_key(name)
        self._created = False  # the table exists (made by this process's writer)
        self._known = Shapes()  # the array and object paths this writer has recorded

    def forget(self) -> None:
        """A group's transaction failed as a whole (group.py): what its writes recorded is gone, so
        the table and paths are recorded again by the next write that needs them."""
        self._created, self._known = False, Shapes()

    # --- reads ------------------------------------------------------------------------------

    async def find_one(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None = None,
                       sort: Sort | None = None) -> Doc | None:
        docs = await self.find(query, projection, sort, 0, 1)
        return docs[0] if docs else None

    async def find(self, query: Mapping[str, Any], projection: Mapping[str, Any] | None = None,
                   sort: Sort | None = None, skip: int = 0, limit: int = 0) -> list[Doc]:
        query, sort = dict(query), list(sort or ())

        ids_only = projection is not None and dict(projection) == {"_id": 1}  # from the `id` column, not decoded
        pinned = pinned_ids(query)

        def run(conn: sqlite3.Connection) -> list[Doc]:
            def select(shapes: Shapes) -> list[Doc]:
                where, params = _compiled(query, shapes)
                order = f" ORDER BY {order_by(sort, shapes)}" if sort else ""
                sql = (f"SELECT {'id' if ids_only else 'doc'} FROM {self._source(pinned)} WHERE {where}{order} "
                       "LIMIT :limit OFFSET :skip")
                cursor = conn.execute(sql, {**params, "limit": limit or -1, "skip": skip})
                docs: list[Doc] = []
                while rows := cursor.fetchmany(BATCH):
                    self._runner.check_deadline()
                    if ids_only:
                        docs += [{"_id": codec.decode_atom(row[0])} for row in rows]
                    else:
                        docs += [project(codec.decode(row[0]), projection) for row in rows]
                return docs

            return self._read(conn, query, select, [], pinned, needs_shapes=any(k != "_id" for k, _ in sort))

        return await self._runner.read(run, self._storage.query_timeout_ms, short=_short(pinned))

    def can_drop(self, names: Iterable[str]) -> bool:
        """May find_answer leave these top-level fields out? (store/encoded.py)"""
        return droppable(names)

    async def find_answer(self, query: Mapping[str, Any], sort: Sort | None = None, skip: int = 0, limit: int = 0,
                          fields: Sequence[str] = (), drop: Sequence[str] = (), opened: bool = False,
                          ) -> Page:
        """`find` with at most an exclusion of top-level fields (`drop`, left out by SQLite's
        json_remove), each document as the answer's JSON (core/jsonio.py's form; `opened`:
        without its closing brace), made from the stored text without decoding it (answer.py);
        with the column of each of `fields` (`expand` follows them: store/encoded.py), and the
        last document decoded (a page's keyset token is made from it). Not in the seam: the
        service asks for it where a backend has it. Short, as `find`, when it is pinned to a few ids."""
        query, sort = dict(query), list(sort or ())
        page = PageSql(fields, drop)
        pinned = pinned_ids(query)

        def run(conn: sqlite3.Connection) -> Page:
            def select(shapes: Shapes) -> Page:
                where, params = _compiled(query, shapes)
                order = f" ORDER BY {order_by(sort, shapes)}" if sort else ""
                sql = f"SELECT {page.columns} FROM {self._source(pinned)} WHERE {where}{order} " \
                      "LIMIT :limit OFFSET :skip"
                cursor = conn.execute(sql, {**params, "limit": limit or -1, "skip": skip})
                return page.read(cursor, opened, self._runner.check_deadline)

            return self._read(conn, query, select, page.empty(), pinned, needs_shapes=any(k != "_id" for k, _ in sort))

        return await self._runner.read(run, self._storage.query_timeout_ms, short=_short(pinned))

    async def explain(self, query: Mapping[str, Any], sort: Sort | None = None) -> list[str]:
        """SQLite's plan for `find(query, sort=sort)` (EXPLAIN QUERY PLAN lines; not in the seam:
        for tests and for looking into a slow list)."""
        query, sort = dict(query), list(sort or ())
        pinned = pinned_ids(query)

        def run(conn: sqlite3.Connection) -> list[str]:
            def plan(shapes: Shapes) -> list[str]:
                compiler = Compiler(shapes.may_be_array)
                order = f" ORDER BY {order_by(sort, shapes)}" if sort else ""
                where = compiler.query(query)
                sql = f"EXPLAIN QUERY PLAN SELECT doc FROM {self._source(pinned)} WHERE {where}{order} LIMIT 10"
                return [str(row[3]) for row in conn.execute(sql, compiler.params)]

            return self._read(conn, query, plan, [], pinned, needs_shapes=bool(sort))

        return await self._runner.read(run, self._storage.query_timeout_ms)

    async def count(self, query: Mapping[str, Any]) -> int:
        query = dict(query)
        pinned = pinned_ids(query)

        def run(conn: sqlite3.Connection) -> int:
            def select(shapes: Shapes) -> int:
                where, params = _compiled(query, shapes)
                sql = f"SELECT count(*) FROM {self._source(pinned)} WHERE {where}"
                return int(conn.execute(sql, params).fetchone()[0])

            return self._read(conn, query, select, 0, pinned)

        return await self._runner.read(run, self._storage.query_timeout_ms)

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]], timeout_ms: int | None = None) -> list[Doc]:
        """The `$match` compiled to SQL like every query; the stages after it (storage/api.py)
        evaluated over the matching documents as they stream (grouping.py)."""
        stages = list(pipeline)
        query = dict(stages[0]["$match"]) if stages and "$match" in stages[0] else {}
        rest = stages[1:] if stages and "$match" in stages[0] else stages

        def run(conn: sqlite3.Connection) -> list[Doc]:
            def select(shapes: Shapes) -> list[Doc]:
                compiler = Compiler(shapes.may_be_array)
                sql = f"SELECT doc FROM {self._table} WHERE {compiler.query(query)}"
                cursor = conn.execute(sql, compiler.params)
                docs = (codec.decode(row[0]) for rows in iter(lambda: cursor.fetchmany(BATCH), []) for row in rows)
                return run_pipeline(docs, rest, self._runner.check_deadline)

            return self._read(conn, query, select, run_pipeline((), rest, self._runner.check_deadline),
                              pinned_ids(query))

        return await self._runner.read(run, timeout_ms or self._storage.query_timeout_ms)

    def _source(self, pinned: int | None) -> str:
        """The table, through its primary key when the query pins a few ids: SQLite would rather
        follow an index of the access rules' fields (`owner`, `access`: MULTI-INDEX OR) once the ids
        number ~20 or more (it has no statistics), reading every entity the caller owns (50,000
        owned: 14 ms for 100 ids instead of ~0.2 ms)."""
        return f"{self._table} INDEXED BY {self._primary_key}" if pinned else self._table

    def _read(self, conn: sqlite3.Connection, query: Mapping[str, Any], select: Callable[[Shapes], R],
              empty: R, pinned: int | None, needs_shapes: bool = False) -> R:
        """`select` with the collection's shapes, read in the same read transaction (they then cover
        every document the read can see); `empty` if the collection has no table yet."""
        try:
            if not needs_shapes and (pinned is not None or not any(k != "_id" for k in _fields(query))):
                return select(AnyShape())  # rows found by `_id`, or no field that could hold an array
            with transaction(conn, "BEGIN"):
                return select(schema.shapes(conn, self.name))
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return empty
            raise

    # --- writes -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """A write transaction whose table and array/object paths this process remembers only if
        it commits: a refused write (a duplicate, a full disk) rolls back what it recorded, and
        remembering it anyway would skip recording it with the next write that holds it (then a
        restart, or another worker, would not know that path may hold arrays)."""
        created, known = self._created, Shapes(self._known.arrays, self._known.objects)
        try:
            with transaction(conn):
                yield
        except BaseException:
            self._created, self._known = created, known
            raise

    def _ensure_table(self, conn: sqlite3.Connection) -> None:
        if not self._created:
            schema.create_table(conn, self.name)
            self._created = True

    def _note_shapes(self, conn: sqlite3.Connection, seen: Shapes) -> None:
        new = Shapes(seen.arrays - self._known.arrays, seen.objects - self._known.objects)
        if new.arrays or new.objects:
            schema.record_shapes(conn, self.name, new)
            self._known.arrays |= new.arrays
            self._known.objects |= new.objects

    async def insert(self, doc: Doc) -> None:
        if "_id" not in doc:
            doc["_id"] = ObjectId()  # as the driver does, the caller's document gets its id

        def run(conn: sqlite3.Connection) -> None:
            seen = Shapes()
            # `_id` first, as MongoDB stores it (the driver moves it to the front).
            text, key = codec.encode({"_id": doc["_id"], **doc}, seen), _key(doc)
            if self._created and seen <= self._known:  # one statement, its own transaction
                conn.execute(f"INSERT INTO {self._table} (id, doc) VALUES (?, ?)", (key, text))
                return
            with self._transaction(conn):
                self._ensure_table(conn)
                self._note_shapes(conn, seen)
                conn.execute(f"INSERT INTO {self._table} (id, doc) VALUES (?, ?)", (key, text))

        await self._runner.write(run, short=True)

    async def insert_many(self, docs: Sequence[Doc]) -> None:
        """Many inserts in one transaction (bulk loads: benchmarks, tests; not part of the seam)."""
        for doc in docs:
            doc.setdefault("_id", ObjectId())

        def run(conn: sqlite3.Connection) -> None:
            with self._transaction(conn):
                self._ensure_table(conn)
                seen = Shapes()
                rows = [(_key(doc), codec.encode({"_id": doc["_id"], **doc}, seen)) for doc in docs]
                self._note_shapes(conn, seen)
                conn.executemany(f"INSERT INTO {self._table} (id, doc) VALUES (?, ?)", rows)

        await self._runner.write(run)

    async def update_if(self, query: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
        matched, _ = await self._update(query, update, many=False, upsert=False)
        return matched == 1

    async def update(self, query: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False) -> int:
        matched, _ = await self._update(query, update, many=True, upsert=upsert)
        return matched

    async def increment(self, query: Mapping[str, Any], update: Mapping[str, Any]) -> Doc:
        _, doc = await self._update(query, update, many=False, upsert=True)
        assert doc is not None
        return doc

    async def _update(self, query: Mapping[str, Any], update: Mapping[str, Any], *, many: bool,
                      upsert: bool) -> tuple[int, Doc | None]:
        query, update = dict(query), dict(update)

        def run(conn: sqlite3.Connection) -> tuple[int, Doc | None]:
            with self._transaction(conn):
                self._ensure_table(conn)
                compiler = Compiler(schema.shapes(conn, self.name).may_be_array)
                where = compiler.query(query)
                limit = "" if many else " LIMIT 1"
                rows = conn.execute(f"SELECT rowid, doc FROM {self._table} WHERE {where}{limit}",
                                    compiler.params).fetchall()
                doc: Doc | None = None
                for rowid, text in rows:
                    doc = apply_update(codec.decode(text), update, inserting=False, pull=_puller(conn, text))
                    conn.execute(f"UPDATE {self._table} SET doc = ? WHERE rowid = ?", (self._encode(conn, doc), rowid))
                if not rows and upsert:
                    doc = upsert_base(query)
                    doc = apply_update(doc, update, inserting=True, pull=lambda path, cond: set())
                    doc.setdefault("_id", ObjectId())
                    doc = {"_id": doc.pop("_id"), **doc}
                    conn.execute(f"INSERT INTO {self._table} (id, doc) VALUES (?, ?)",
                                 (_key(doc), self._encode(conn, doc)))
                return len(rows), doc

        return await self._runner.write(run, short=pins_id(query))

    def _encode(self, conn: sqlite3.Connection, doc: Doc) -> str:
        seen = Shapes()
        text = codec.encode(doc, seen)
        self._note_shapes(conn, seen)
        return text

    async def delete(self, query: Mapping[str, Any]) -> int:
        query = dict(query)

        def run(conn: sqlite3.Connection) -> int:
            def remove(shapes: Shapes) -> int:
                compiler = Compiler(shapes.may_be_array)
                return conn.execute(f"DELETE FROM {self._table} WHERE {compiler.query(query)}",
                                    compiler.params).rowcount

            return self._write_where(conn, query, remove, 0)

        return await self._runner.write(run, short=pins_id(query))

    async def find_one_and_delete(self, query: Mapping[str, Any]) -> Doc | None:
        query = dict(query)

        def run(conn: sqlite3.Connection) -> Doc | None:
            def remove(shapes: Shapes) -> Doc | None:
                compiler = Compiler(shapes.may_be_array)
                rows = conn.execute(f"DELETE FROM {self._table} WHERE rowid = (SELECT rowid FROM {self._table} "
                                    f"WHERE {compiler.query(query)} LIMIT 1) RETURNING doc", compiler.params).fetchall()
                return codec.decode(rows[0][0]) if rows else None  # fetchall: the statement ends, and commits

            return self._write_where(conn, query, remove, None)

        return await self._runner.write(run, short=pins_id(query))

    def _write_where(self, conn: sqlite3.Connection, query: Mapping[str, Any], write: Callable[[Shapes], R],
                     empty: R) -> R:
        try:
            if pins_id(query):
                return write(AnyShape())  # one statement, its own transaction
            with transaction(conn):
                return write(schema.shapes(conn, self.name))
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return empty
            raise

    async def ensure_index(self, keys: Sequence[tuple[str, int]], *, unique: bool = False,
                           expire_after: int | None = None) -> None:
        keys = list(keys)

        def run(conn: sqlite3.Connection) -> None:
            with self._transaction(conn):
                self._ensure_table(conn)
                for statement in schema.index_statements(self.name, keys, unique):
                    conn.execute(statement)
                schema.record_index(conn, self.name, keys, unique)
                if expire_after is not None:
                    schema.record_ttl(conn, self.name, keys[0][0], expire_after)

        await self._runner.write(run)

    async def index_keys(self) -> list[tuple[list[tuple[str, int]], bool]]:
        """The indexes made by `ensure_index`: (keys, unique) each (MongoDB's listIndexes, roughly)."""
        return await self._runner.read(lambda conn: schema.indexes(conn, self.name), self._storage.query_timeout_ms)


def _compiled(query: Mapping[str, Any], shapes: Shapes) -> tuple[str, dict[str, Any]]:
    """The WHERE clause and its parameters; kept by shape where no array path is known (templates.py)."""
    if type(shapes) is AnyShape:
        return compile_any_shape(query)
    compiler = Compiler(shapes.may_be_array)
    return compiler.query(query), compiler.params


def _short(pinned: int | None) -> bool:
    return pinned is not None and pinned <= SHORT_ROWS


def _fields(query: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for key, cond in query.items():
        if key in ("$and", "$or", "$nor"):
            for sub in cond:
                found += _fields(sub)
        elif not key.startswith("$"):
            found.append(key)
    return found


def _puller(conn: sqlite3.Connection, text: str) -> PullMatcher:
    """$pull's matcher: the positions of the elements its condition matches, found by SQL over
    the stored JSON (the same compiler as every query: MongoDB's semantics for the condition)."""
    def positions(path: str, cond: Any) -> set[int]:
        compiler = Compiler(AnyShape().may_be_array)
        element = Leaf.element("d.doc", "p", None)
        if isinstance(cond, Mapping) and cond and not any(str(k).startswith("$") for k in cond):
            assert element.node is not None
            test = and_(["p.type IN ('object', 'array')", compiler.query(cond, element.node, None)])
        else:
            test = compiler.condition(cond, lambda predicate: predicate(element))
        node = Node.root("d.doc").child_path(path)
        sql = f"WITH d(doc) AS (SELECT :doc) SELECT p.key FROM d, json_each(d.doc, {node.path}) AS p WHERE {test}"
        return {int(row[0]) for row in conn.execute(sql, {**compiler.params, "doc": text}) if isinstance(row[0], int)}

    return positions

