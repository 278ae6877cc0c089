"""Encoded list answers with `expand` spliced in (http/responses.py with_expansions)."""

from __future__ import annotations

import orjson
from bson import ObjectId

from storeengine.core.jsonio import dumps
from storeengine.http.responses import with_expansions


def test_expansions_are_spliced_as_the_last_member_as_decoding_would_add_them() -> None:
    parent, other = {"_id": ObjectId(), "name": "p"}, {"_id": ObjectId(), "name": "o"}
    docs = [{"_id": ObjectId(), "n": 1}, {"_id": ObjectId(), "n": 2}, {"_id": ObjectId(), "n": 3}]
    stand_ins = [{"_expand": {"parent": parent, "many": [parent, other]}}, {"_expand": {}}, {}]
    rows = with_expansions([dumps(doc) for doc in docs], stand_ins)
    expected = [{**docs[0], "_expand": {"parent": parent, "many": [parent, other]}}, {**docs[1], "_expand": {}},
                docs[2]]
    assert rows == [dumps(doc) for doc in expected]


def test_a_stored_member_named_like_the_expansion_is_merged_not_repeated() -> None:
    row = dumps({"_id": 1, "_expand": {"kept": 1}})
    (merged,) = with_expansions([row], [{"_expand": {"parent": {"_id": 2}}}])
    assert orjson.loads(merged) == {"_id": 1, "_expand": {"kept": 1, "parent": {"_id": 2}}}
