"""Compiled queries kept by shape (storage/sqlite/templates.py): a query compiled from its shape's
template is exactly what compiling it gives, ids in their own parameters, whatever the ids."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from bson import ObjectId

from storeengine.storage.sqlite.compiler import Compiler, every_path
from storeengine.storage.sqlite.templates import compile_any_shape

Ids = Callable[[], ObjectId]

SHAPES: list[Callable[[Ids], dict[str, Any]]] = [
    lambda i: {"_id": i()},
    lambda i: {"_id": {"$in": [i(), i(), i()]}, "$or": [{"owner": i()}, {"access": {"$in": [i(), i()]}}]},
    lambda i: {"$and": [{"_id": {"$eq": i()}}, {"group": {"$in": [i()]}, "n": {"$gt": 2}}]},
    lambda i: {"_id": i(), "owner": None, "flag": True, "n": 1, "x": 1.0, "s": "[not json"},
    lambda i: {"ref": {"$ne": i()}, "at": {"$lt": i()}, "tags": {"$all": [i(), i()]}},
    # An id inside an object's JSON (a whole-array equality): not kept, compiled every time.
    lambda i: {"_id": i(), "access": [i(), i()], "meta": {"by": i()}},
    lambda i: {"_id": i(), "items": {"$elemMatch": {"ref": i(), "n": {"$size": 2}}}},
]


def compiled(query: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    compiler = Compiler(every_path)
    return compiler.query(query), compiler.params


@pytest.mark.parametrize("shape", SHAPES)
def test_a_kept_shape_compiles_each_query_as_the_compiler_does(shape: Callable[[Ids], dict[str, Any]]) -> None:
    for _ in range(3):  # the first compiles and keeps the shape, the next ones fill it in
        query = shape(ObjectId)
        assert compile_any_shape(query) == compiled(query)


def test_the_same_id_twice_and_values_of_other_types_are_not_confused() -> None:
    same = ObjectId()
    for query in ({"_id": {"$in": [same, same]}, "owner": same},
                  {"_id": ObjectId(), "n": 1}, {"_id": ObjectId(), "n": True}, {"_id": ObjectId(), "n": 1.0},
                  {"_id": ObjectId(), "n": "1"}, {"_id": ObjectId(), "at": datetime(2026, 1, 1)}):
        assert compile_any_shape(query) == compiled(query)
        assert compile_any_shape(query) == compiled(query)
