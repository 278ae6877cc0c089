"""MongoDB queries -> an SQL WHERE clause over the stored JSON, with MongoDB's semantics.

The model (MongoDB's, see its jstests/core/null_query_semantics.js):

- A dotted path reaches a set of *leaves*. Stepping into an object reads its field (missing
  if absent); stepping into a scalar or a missing value gives a missing leaf; stepping into an
  array steps into each of its elements that is an object (a numeric step also takes that
  position). So `{"a.b": null}` matches `a: 4` and `a: [{b: 3}, {}]`, not `a: [1, null]`.
- A condition holds when it holds for some leaf, and a condition on a leaf that is an array
  also holds when it holds for one of its elements (`{tags: "x"}`, `{n: {$gt: 2}}`).
- `$ne`, `$nin`, `$not` and `$exists: false` are the negations of `$eq`, `$in`, the operators
  and `$exists: true`: missing fields satisfy them.
- Comparisons are type-bracketed: `{$gt: 5}` sees numbers only, `{$lt: "b"}` strings only.
  With the codec's encoding a class of values is a range of SQL values (numbers, or a range of
  TEXT), so a comparison is SQLite's `<` plus that range, and an expression index on the field
  serves it. `null`: `{$eq: null}` is "missing or null"; `$gte`/`$lte` null equal it; `$gt`/`$lt`
  null match nothing.

Array branches are generated only where the collection has ever held an array at that path
(the storage tracks the paths, as MongoDB tracks multikey indexes): for the engine's own scalar
fields a query stays a plain indexed comparison, and `(store, seq)` is one range scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId

from storeengine.core.errors import BadRequest
from storeengine.core.regex import compile_linear
from storeengine.storage.sqlite.codec import OID, TEXT_RANGES, dumps_value, encode_value
from storeengine.storage.sqlite.sql import FALSE, ID, TRUE, Leaf, Node, and_, not_, or_

Arrays = Callable[[str], bool]  # may the collection hold an array at this dotted path?
Predicate = Callable[[Leaf], str]
Apply = Callable[[Predicate], str]  # "some leaf of this field satisfies the predicate"

_COMPARE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def every_path(path: str) -> bool:
    return True


def value_class(value: Any) -> str:
    """MongoDB's comparison class of a literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, ObjectId):
        return "objectid"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    raise BadRequest(f"a value of type {type(value).__name__} cannot be compared")


class Compiler:
    """One compilation: SQL text with named placeholders (`:p1`), and `params` by name. Named, so
    that a term dropped by simplification (`x AND 0` -> `0`) leaves no parameter out of step."""

    def __init__(self, arrays: Arrays = every_path) -> None:
        self.arrays = arrays
        self.params: dict[str, Any] = {}
        self._aliases = 0

    def _param(self, value: Any) -> str:
        name = f"p{len(self.params) + 1}"
        self.params[name] = value
        return ":" + name

    def _alias(self) -> str:
        self._aliases += 1
        return f"e{self._aliases}"

    # --- queries and fields ------------------------------------------------------------------

    def query(self, query: Mapping[str, Any], root: Node | None = None, prefix: str | None = "") -> str:
        """`root` None: the document itself (`_id` is the id column); else a sub-document (an
        element examined by $elemMatch or $pull) at dotted path `prefix` (None: unknown)."""
        if root is None and len(query) == 1 and type(query.get("_id")) is ObjectId:
            # A read by id, the commonest query: what the walk below writes for it, at once.
            return f"id = {self._param(encode_value(query['_id']))}"
        clauses = []
        for key, cond in query.items():
            if key in ("$and", "$or", "$nor"):
                if not isinstance(cond, list | tuple) or not cond:
                    raise BadRequest(f"{key} takes a non-empty array")
                parts = [self.query(c, root, prefix) for c in cond]
                clauses.append(and_(parts) if key == "$and" else or_(parts) if key == "$or" else not_(or_(parts)))
            elif key.startswith("$"):
                raise BadRequest(f"query operator not supported: {key}")
            else:
                clauses.append(self.condition(cond, self._field(key, root, prefix)))
        return and_(clauses)

    def _field(self, key: str, root: Node | None, prefix: str | None) -> Apply:
        if root is None and key == "_id":
            return lambda predicate: predicate(ID)
        parts = key.split(".")
        start = root or Node.root()
        return lambda predicate: self._descend(start, parts, prefix, predicate, False)

    def _descend(self, node: Node, parts: list[str], at: str | None, predicate: Predicate,
                 node_may_array: bool) -> str:
        """Some leaf reached from `node` (at dotted path `at`) along `parts` satisfies `predicate`."""
        step, rest = parts[0], parts[1:]
        child_at = None if at is None else f"{at}.{step}" if at else step
        child_may_array = child_at is None or self.arrays(child_at)
        child = node.child(step)
        if rest:
            direct = self._descend(child, rest, child_at, predicate, child_may_array)
        else:
            direct = predicate(Leaf.field(child, child_may_array, child_at))
        if not node_may_array:
            return direct
        kind, alias = node.type, self._alias()
        into = self._descend(Node.walked(node.src, f"{alias}.fullkey"), parts, at, predicate, False)
        branches = [f"({kind} IS NOT 'array' AND {direct})",
                    f"({kind} = 'array' AND EXISTS (SELECT 1 FROM json_each({node.src}, {node.path}) AS {alias} "
                    f"WHERE {alias}.type = 'object' AND {into}))"]
        if step.isdigit():  # `a.0`: also the element at that position
            at_position = node.index(int(step))
            positional = (self._descend(at_position, rest, None, predicate, True) if rest
                          else predicate(Leaf.field(at_position, True, None)))
            branches.append(f"({kind} = 'array' AND {positional})")
        return or_(branches)

    # --- conditions ------------------------------------------------------------------------------

    def condition(self, cond: Any, apply: Apply) -> str:
        if isinstance(cond, Mapping) and cond and all(isinstance(k, str) and k.startswith("$") for k in cond):
            return and_(self._operator(op, arg, apply) for op, arg in cond.items())
        return apply(lambda leaf: self._eq(leaf, cond))

    def _operator(self, op: str, arg: Any, apply: Apply) -> str:
        if op in _COMPARE:
            return apply(lambda leaf: self._compare(leaf, _COMPARE[op], arg))
        method = _OPERATORS.get(op)
        if method is None:
            raise BadRequest(f"query operator not supported: {op}")
        return method(self, arg, apply)

    def _op_eq(self, arg: Any, apply: Apply) -> str:
        return apply(lambda leaf: self._eq(leaf, arg))

    def _op_ne(self, arg: Any, apply: Apply) -> str:
        return not_(self._op_eq(arg, apply))

    def _op_in(self, arg: Any, apply: Apply) -> str:
        values = _list("$in", arg)
        return apply(lambda leaf: self._in(leaf, values))

    def _op_nin(self, arg: Any, apply: Apply) -> str:
        return not_(self._op_in(arg, apply))

    def _op_all(self, arg: Any, apply: Apply) -> str:
        values = _list("$all", arg)
        return and_(self._op_eq(value, apply) for value in values) if values else FALSE

    def _op_exists(self, arg: Any, apply: Apply) -> str:
        found = apply(_exists)
        return found if arg else not_(found)

    def _op_size(self, arg: Any, apply: Apply) -> str:
        if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
            raise BadRequest("$size takes a non-negative integer")
        return apply(lambda leaf: self._size(leaf, arg))

    def _op_regex(self, arg: Any, apply: Apply) -> str:
        if not isinstance(arg, str):
            raise BadRequest("$regex takes a string")
        compile_linear(arg)  # 400 here rather than an error inside SQLite
        return apply(lambda leaf: self._expand(leaf, lambda one: self._regex(one, arg)))

    def _op_not(self, arg: Any, apply: Apply) -> str:
        if not isinstance(arg, Mapping) or not arg:
            raise BadRequest("$not takes an operator object")
        return not_(self.condition(arg, apply))

    def _op_type(self, arg: Any, apply: Apply) -> str:
        """`$type` by MongoDB's aliases, for the engine's own queries (keyset paging across the
        types a key has held; not a filter operator of the contract): a field of one of the
        types, or an array holding an element of one, as MongoDB matches it."""
        names = _list("$type", arg) if isinstance(arg, list | tuple) else [arg]
        if unknown := [n for n in names if n not in _TYPE_RANGES and n not in ("number", "object")]:
            raise BadRequest(f"$type: unsupported type {unknown[0]!r}")
        return apply(lambda leaf: self._expand(leaf, lambda one: or_([self._of_type(one, n) for n in names])))

    def _of_type(self, leaf: Leaf, name: str) -> str:
        if name == "number":
            return f"typeof({leaf.value}) IN ('integer', 'real')"
        if name == "object":
            return f"{leaf.type} = 'object'"
        low, high = TEXT_RANGES[_TYPE_RANGES[name]]
        test = [f"{leaf.value} >= {self._param(low)}"] + ([f"{leaf.value} < {self._param(high)}"] if high else [])
        if name == "string" and not leaf.atom:
            test.append(f"{leaf.type} = 'text'")  # not the JSON text of an object or array
        return and_(test)

    def _op_elem_match(self, arg: Any, apply: Apply) -> str:
        if not isinstance(arg, Mapping) or not arg:
            raise BadRequest("$elemMatch takes an object")
        return apply(lambda leaf: self._elem_match(leaf, arg))

    # --- leaf predicates ---------------------------------------------------------------------------

    def _expand(self, leaf: Leaf, one: Predicate) -> str:
        """`one` holds for the leaf, or (a field that may be an array) for one of its elements."""
        if not (leaf.expand and leaf.may_array and leaf.node is not None):
            return one(leaf)
        return or_([one(leaf), self._some_element(leaf, one)])

    def _some_element(self, leaf: Leaf, one: Predicate) -> str:
        """One element of the leaf (an array) satisfies `one`. The first two terms are those of the
        field's partial index of non-empty arrays (schema.py), so SQLite looks up only the
        documents that have elements there (an `access: []` is not one of them)."""
        assert leaf.node is not None
        alias = self._alias()
        element = Leaf.element(leaf.node.src, alias, leaf.at)
        node = leaf.node
        return (f"({leaf.type} = 'array' AND json_array_length({node.src}, {node.path}) > 0 AND EXISTS (SELECT 1 "
                f"FROM json_each({node.src}, {node.path}) AS {alias} WHERE {one(element)}))")

    def _eq(self, leaf: Leaf, value: Any) -> str:
        if value is None:
            return self._expand(leaf, _is_null)
        return self._expand(leaf, lambda one: self._equal(one, value))

    def _equal(self, leaf: Leaf, value: Any) -> str:
        """One value (no array expansion) equals `value`, MongoDB's way (1 == 1.0)."""
        kind = value_class(value)
        if kind in ("object", "array"):
            return f"({leaf.type} = '{kind}' AND se_cmp({leaf.json}, {self._param(dumps_value(value))}) = 0)"
        encoded = encode_value(value)
        test = f"{leaf.value} = {self._param(encoded)}"
        if kind == "string" and not leaf.atom and encoded[:1] in ("[", "{"):
            test = f"({test} AND {leaf.type} = 'text')"  # not the JSON text of an object or array
        return test

    def _in(self, leaf: Leaf, values: list[Any]) -> str:
        """Equal to one of `values`: one SQL `IN` for the plain scalars (index-friendly)."""
        def one(single: Leaf) -> str:
            listed, others = [], []
            for value in values:
                if type(value) is ObjectId:  # the common case (a page's ids): never a container
                    listed.append(OID + str(value))
                    continue
                encoded = None if value_class(value) in ("null", "object", "array") else encode_value(value)
                if encoded is None or (not single.atom and isinstance(encoded, str) and encoded[:1] in "[{"):
                    others.append(value)
                else:
                    listed.append(encoded)
            terms = [f"{single.value} IN ({', '.join(self._param(v) for v in listed)})"] if listed else []
            terms += [_is_null(single) if v is None else self._equal(single, v) for v in others]
            return or_(terms)

        return self._expand(leaf, one) if values else FALSE

    def _compare(self, leaf: Leaf, op: str, value: Any) -> str:
        if value is None:  # only null (and missing) is >= and <= null
            return self._eq(leaf, None) if op in (">=", "<=") else FALSE
        return self._expand(leaf, lambda one: self._compare_one(one, op, value))

    def _compare_one(self, leaf: Leaf, op: str, value: Any) -> str:
        kind = value_class(value)
        if kind in ("object", "array"):
            return f"({leaf.type} = '{kind}' AND se_cmp({leaf.json}, {self._param(dumps_value(value))}) {op} 0)"
        test = [f"{leaf.value} {op} {self._param(encode_value(value))}"]
        upward = op in (">", ">=")
        if kind == "number":
            if upward:
                test.append(f"{leaf.value} < ''")  # every TEXT sorts above every number
        else:
            low, high = TEXT_RANGES[kind]
            if upward and high is not None:
                test.append(f"{leaf.value} < {self._param(high)}")
            elif not upward:
                test.append(f"{leaf.value} >= {self._param(low)}")
            if kind == "string" and not leaf.atom:
                test.append(f"{leaf.type} = 'text'")  # not the JSON text of an object or array
        return and_(test)

    def _size(self, leaf: Leaf, size: int) -> str:
        if not leaf.may_array or leaf.node is None:
            return FALSE
        return f"({leaf.type} = 'array' AND json_array_length({leaf.node.src}, {leaf.node.path}) = {size})"

    def _regex(self, leaf: Leaf, pattern: str) -> str:
        high = self._param(TEXT_RANGES["string"][1])
        return f"({leaf.type} = 'text' AND {leaf.value} < {high} AND se_regex({self._param(pattern)}, {leaf.value}))"

    def _elem_match(self, leaf: Leaf, arg: Mapping[str, Any]) -> str:
        if not leaf.may_array or leaf.node is None:
            return FALSE
        alias = self._alias()
        element = Leaf.element(leaf.node.src, alias, leaf.at)
        if all(k.startswith("$") for k in arg):  # conditions on the element itself
            test = self.condition(arg, lambda predicate: predicate(element))
        else:  # a query on the element as a document (its fields share the array's path)
            assert element.node is not None
            test = and_([f"{alias}.type IN ('object', 'array')", self.query(arg, element.node, leaf.at)])
        return (f"({leaf.type} = 'array' AND EXISTS (SELECT 1 FROM json_each({leaf.node.src}, {leaf.node.path}) "
                f"AS {alias} WHERE {test}))")


def _is_null(leaf: Leaf) -> str:
    if not leaf.may_missing and not leaf.atom and leaf.node is None:
        return FALSE  # the _id column is never null
    # json_extract gives NULL for missing and null only (objects and arrays give their text);
    # an element's `atom` is also NULL for objects and arrays, so there the type decides.
    return f"{leaf.type} = 'null'" if leaf.atom else f"{leaf.value} IS NULL"


def _exists(leaf: Leaf) -> str:
    return f"{leaf.type} IS NOT NULL" if leaf.may_missing else TRUE


_OPERATORS: dict[str, Callable[[Compiler, Any, Apply], str]] = {
    "$eq": Compiler._op_eq, "$ne": Compiler._op_ne, "$in": Compiler._op_in, "$nin": Compiler._op_nin,
    "$all": Compiler._op_all, "$exists": Compiler._op_exists, "$size": Compiler._op_size,
    "$regex": Compiler._op_regex, "$not": Compiler._op_not, "$elemMatch": Compiler._op_elem_match,
    "$type": Compiler._op_type,
}
# `$type` aliases whose values are one TEXT range of the codec (codec.py)
_TYPE_RANGES = {"string": "string", "objectId": "objectid", "bool": "bool", "date": "date"}


def _list(op: str, arg: Any) -> list[Any]:
    if not isinstance(arg, list | tuple):
        raise BadRequest(f"{op} takes an array")
    return list(arg)


def compile_where(query: Mapping[str, Any], arrays: Arrays = every_path) -> tuple[str, dict[str, Any]]:
    compiler = Compiler(arrays)
    return compiler.query(query), compiler.params


def pins_id(query: Mapping[str, Any]) -> bool:
    """Does the query fix `_id` to one value (at its top level or in a top-level $and)? Then at
    most one row is examined, and array branches cost nothing: no need to know the array paths."""
    return pinned_ids(query) == 1


_KEYS = (ObjectId, str, int, float, datetime)  # `_id` values that are a primary key (not null, an object...)


def pinned_ids(query: Mapping[str, Any]) -> int | None:
    """How many `_id` values the query is limited to, by `_id` equal to one or `$in` a list of
    them (at its top level or in a top-level $and), each compiled to a term of the primary key
    (`id = ?`, `id IN (...)`) ANDed with the rest: at most that many rows are examined. None when
    `_id` is not pinned so."""
    cond = query.get("_id")
    if isinstance(cond, _KEYS):
        return 1
    if isinstance(cond, Mapping):
        if isinstance(cond.get("$eq"), _KEYS):
            return 1
        listed = cond.get("$in")
        if isinstance(listed, list | tuple) and all(isinstance(v, _KEYS) for v in listed):
            return len(listed)
    counts = [n for q in query.get("$and", ()) if isinstance(q, Mapping) and (n := pinned_ids(q)) is not None]
    return min(counts) if counts else None


def paths_of(query: Mapping[str, Any]) -> Iterable[str]:
    for key, cond in query.items():
        if key in ("$and", "$or", "$nor"):
            for sub in cond:
                yield from paths_of(sub)
        elif not key.startswith("$"):
            yield key
