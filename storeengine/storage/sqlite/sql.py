"""Small SQL building blocks: quoting, JSON paths, and the places a value is read from.

A `Node` is a JSON value inside a JSON text: `json_extract(doc, '$.a.b')`. Its path is a
literal wherever it can be (so that `json_extract(doc, '$.owner')` in a query is the very
expression of an index), and an SQL expression inside an array walk (`e1.fullkey || '.b'`).
A `Leaf` is what an operator looks at: a field's value, an array element, or the `_id` column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from storeengine.core.errors import BadRequest

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TRUE, FALSE = "1", "0"


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def segment(key: str) -> str:
    """One JSON path step for an object key."""
    if _PLAIN_KEY.fullmatch(key):
        return "." + key
    if not key or '"' in key or any(ord(ch) < 0x20 for ch in key):
        # SQLite's JSON paths cannot name such a key (there is no escape inside `."..."`).
        raise BadRequest(f"field name not supported by the embedded database: {key!r}")
    return f'."{key}"'


def and_(terms: Iterable[str]) -> str:
    parts = [t for t in terms if t != TRUE]
    if FALSE in parts:
        return FALSE
    if not parts:
        return TRUE
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def or_(terms: Iterable[str]) -> str:
    parts = [t for t in terms if t != FALSE]
    if TRUE in parts:
        return TRUE
    if not parts:
        return FALSE
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def not_(term: str) -> str:
    """Negation that treats NULL (an unknown comparison) as false first: NOT NULL is NULL,
    which would drop a row MongoDB's $ne / $nin / $not keep."""
    if term == TRUE:
        return FALSE
    if term == FALSE:
        return TRUE
    return f"NOT ifnull({term}, 0)"


@dataclass(frozen=True)
class Node:
    """A JSON value: `src` is the SQL expression of the JSON text, `path` the SQL expression of
    the JSON path in it; `text` is that path as a Python string when it is a literal."""

    src: str
    path: str
    text: str | None

    @classmethod
    def root(cls, src: str = "doc") -> Node:
        return cls(src, literal("$"), "$")

    @classmethod
    def walked(cls, src: str, path_sql: str) -> Node:
        return cls(src, path_sql, None)

    def child(self, key: str) -> Node:
        step = segment(key)
        if self.text is not None:
            return Node(self.src, literal(self.text + step), self.text + step)
        return Node(self.src, f"({self.path} || {literal(step)})", None)

    def child_path(self, dotted: str) -> Node:
        node = self
        for key in dotted.split("."):
            node = node.child(key)
        return node

    def index(self, position: int) -> Node:
        step = f"[{position}]"
        if self.text is not None:
            return Node(self.src, literal(self.text + step), self.text + step)
        return Node(self.src, f"({self.path} || {literal(step)})", None)

    @property
    def value(self) -> str:
        return f"json_extract({self.src}, {self.path})"

    @property
    def type(self) -> str:
        return f"json_type({self.src}, {self.path})"


@dataclass(frozen=True)
class Leaf:
    """What an operator examines. `value` is the SQL value (JSON text for an object or array
    unless `atom`), `type` the JSON type (NULL: missing), `json` the JSON text of a container.
    `expand`: a condition on it also matches its elements (a field's value; not an element
    being examined by $elemMatch, nor the `_id` column)."""

    value: str
    type: str
    json: str
    node: Node | None
    may_array: bool
    may_missing: bool
    expand: bool
    atom: bool = False  # `value` is NULL for an object or array (json_each's `atom`)
    at: str | None = None  # the dotted path of a field (None: unknown, inside an array walk)

    @classmethod
    def field(cls, node: Node, may_array: bool, at: str | None) -> Leaf:
        return cls(node.value, node.type, node.value, node, may_array, True, may_array, at=at)

    @classmethod
    def element(cls, src: str, alias: str, at: str | None) -> Leaf:
        node = Node.walked(src, f"{alias}.fullkey")
        return cls(f"{alias}.atom", f"{alias}.type", node.value, node, True, False, False, atom=True, at=at)


ID = Leaf("id", "typeof(id)", "id", None, False, False, False, at="_id")
