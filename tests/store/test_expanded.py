"""`_expand` spliced into entities that are JSON already (store/expanded.py): the same bytes as
decoding each entity, adding `_expand` and encoding it again."""

from __future__ import annotations

from typing import Any

import orjson
from bson import ObjectId

from storeengine.core.jsonio import dumps
from storeengine.store.encoded import Column
from storeengine.store.expanded import array, closed, members


def splice(rows: list[bytes], props: list[str], columns: list[Column], found: list[dict[bytes, bytes]]) -> list[bytes]:
    """Both ways of splicing, which must agree: row by row, and the page as one array (the rows
    read without their closing brace, as the embedded database gives them for this)."""
    keys, objects = members(props, columns, found)
    opened = [row[:-1] for row in rows]
    each = closed(opened, keys, objects)
    assert array(opened, keys, objects) == b"[" + b",".join(each) + b"]"
    return each


def column(values: list[Any]) -> Column:
    """Dictionary-encoded as the embedded database gives it (each value's JSON as its code)."""
    codes = [None if v is None else dumps(v) for v in values]
    return codes, {code: v for code, v in zip(codes, values, strict=True)}


def test_expansions_are_spliced_as_the_last_member_as_decoding_would_add_them() -> None:
    parent, other = {"_id": ObjectId(), "name": "p"}, {"_id": ObjectId(), "name": "o"}
    found = {parent["_id"].binary: dumps(parent), other["_id"].binary: dumps(other)}
    missing = ObjectId()
    docs = [{"_id": ObjectId(), "n": 1, "parent": parent["_id"], "many": [parent["_id"], missing, other["_id"]]},
            {"_id": ObjectId(), "n": 2, "parent": missing, "many": []},
            {"_id": ObjectId(), "n": 3},
            {"_id": ObjectId(), "n": 4, "parent": other["_id"], "many": "not a list of ids"}]
    columns = [column([doc.get("parent") for doc in docs]), column([doc.get("many") for doc in docs])]
    rows = splice([dumps(doc) for doc in docs], ["parent", "many"], columns, [found, found])
    expected = [{**docs[0], "_expand": {"parent": parent, "many": [parent, other]}},
                {**docs[1], "_expand": {"many": []}},
                {**docs[2], "_expand": {}},
                {**docs[3], "_expand": {"parent": other}}]
    assert rows == [dumps(doc) for doc in expected]


def test_rows_that_refer_to_the_same_entities_share_one_member() -> None:
    parent = {"_id": ObjectId(), "name": "p"}
    docs = [{"_id": ObjectId(), "parent": parent["_id"]} for _ in range(3)]
    rows = splice([dumps(doc) for doc in docs], ["parent"], [column([doc["parent"] for doc in docs])],
                  [{parent["_id"].binary: dumps(parent)}])
    assert [orjson.loads(row)["_expand"] for row in rows] == [{"parent": orjson.loads(dumps(parent))}] * 3


def test_an_empty_page_is_an_empty_array() -> None:
    assert array([], [], {}) == b"[]"
