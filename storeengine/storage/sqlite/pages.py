"""A page answered as JSON bytes (collection.find_answer): the SQL that reads it and the reading
of its rows, rewritten into the answer's form without decoding (answer.py), with the column of
each field a page's `expand` follows (store/encoded.py)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from storeengine.core.jsonio import dumps
from storeengine.storage.sqlite import answer, codec
from storeengine.storage.sqlite.sql import Node

Doc = dict[str, Any]
Column = tuple[list[Any], dict[Any, Any]]  # each row's code, and the value of each code (store/encoded.py)
Page = tuple[list[bytes], list[Column], Doc | None]
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # spliced into a JSON path
BATCH = 500  # rows decoded between two deadline checks


class PageSql:
    """What the SELECT of a page reads: each document (without the top-level members `drop`,
    left out by SQLite's json_remove) and the fields SQLite extracts; a plain top-level member is
    read from the rows' bytes instead (answer.top_level)."""

    def __init__(self, fields: Sequence[str], drop: Sequence[str]) -> None:
        if not droppable(drop):
            raise ValueError("find_answer: drop takes plain top-level names")
        removed = "".join(f", '$.\"{name}\"'" for name in drop)
        body = f"json_remove(doc{removed})" if drop else "doc"
        self.fields = list(fields)
        self.in_sql = [f for f in fields if f == "_id" or not PLAIN_NAME.fullmatch(f)]
        # As BLOB: the UTF-8 bytes as stored, never decoded into a str.
        self.columns = f"CAST({body} AS BLOB)" + "".join(f", {_extracted(f)}" for f in self.in_sql)

    def empty(self) -> Page:
        return [], [([], {}) for _ in self.fields], None

    def read(self, cursor: sqlite3.Cursor, opened: bool, check_deadline: Callable[[], None]) -> Page:
        """The rows in the answer's form (`opened`: without their closing brace), the columns, and
        the last document decoded (a page's keyset token is made from it)."""
        found: list[tuple[Any, ...]] = []
        rows: list[bytes] = []
        read: dict[str, list[bytes | None]] = {f: [] for f in self.fields if f not in self.in_sql}
        while batch := cursor.fetchmany(BATCH):
            check_deadline()
            found += batch
            # Batch by batch: each rewrite is a few C calls holding the GIL, kept short so that
            # the event loop runs between them (a page of 10,000 in one would stall it).
            stored = [row[0] for row in batch]
            for name, values in read.items():
                values += answer.top_level(stored, name)
            rewritten = answer.each(stored, opened)
            if rewritten is None:  # a stored string the byte rewrite leaves alone: decode and encode
                rewritten = [dumps(codec.decode(row))[:-1 if opened else None] for row in stored]
            rows += rewritten
        raw = {f: [row[i] for row in found] for i, f in enumerate(self.in_sql, 1)} | read
        columns = [_column(raw[f], codec.decode_atom if f == "_id" else codec.decode_value) for f in self.fields]
        return rows, columns, codec.decode(found[-1][0]) if found else None


def droppable(names: Iterable[str]) -> bool:
    """May a page leave these top-level fields out? Plain names only: spliced into SQL's JSON paths."""
    return all(PLAIN_NAME.fullmatch(name) for name in names)


def _extracted(field: str) -> str:
    """A field's value as JSON text (`->`: one parse of the document; NULL when missing), as BLOB
    (bytes cost less to make than a str holding the codec's tags); `_id` from its column (the
    codec's SQL value)."""
    return "id" if field == "_id" else f"CAST(doc -> {Node.root().child_path(field).path} AS BLOB)"


def _column(raw: list[Any], decode: Callable[[Any], Any]) -> Column:
    """A column of `_extracted` values: each row's SQL value as its code, and each distinct code
    decoded once (a reference shared by many rows; a list decoded once is shared by its rows)."""
    return raw, {code: None if code is None else decode(code) for code in set(raw)}
