"""Unit tests of storeengine/entities.py: versions, merge patch, system fields, id parsing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from bson import ObjectId

from storeengine.core.documents import (
    forbidden_fields,
    id_list,
    merge_patch,
    next_update_time,
    optional_id,
    path_id,
    reject_fields,
    split,
    version,
)
from storeengine.core.errors import Invalid
from storeengine.core.formats import utcnow

HEX, HEX2 = "0123456789abcdef01234567", "76543210fedcba9876543210"


def test_the_version_is_updated_at_in_hex_milliseconds():
    assert version({"updatedAt": datetime(1970, 1, 1, 0, 0, 1)}) == format(1000, "x")
    assert version({"updatedAt": datetime(2026, 1, 1)}) != version({"updatedAt": datetime(2026, 1, 1, 0, 0, 0, 1000)})


def test_the_next_update_time_always_moves_forward():
    future = utcnow() + timedelta(hours=1)  # a clock that went back, or a write in the same ms
    assert next_update_time(future) == future + timedelta(milliseconds=1)
    past = datetime(2020, 1, 1)
    assert past < next_update_time(past) <= utcnow()


@pytest.mark.parametrize("target,patch,expected", [
    ({"a": 1, "b": 2}, {"a": 3}, {"a": 3, "b": 2}),
    ({"a": 1, "b": 2}, {"a": None}, {"b": 2}),
    ({"a": {"x": 1, "y": 2}}, {"a": {"y": None, "z": 3}}, {"a": {"x": 1, "z": 3}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),  # arrays are replaced, not merged
    ({"a": 1}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ({"a": {"b": 1}}, {"a": 5}, {"a": 5}),
    ({}, {"a": {"b": None}}, {"a": {}}),
    ({"a": 1}, {}, {"a": 1}),
])
def test_merge_patch_follows_rfc_7396(target, patch, expected):
    original = {k: (dict(v) if isinstance(v, dict) else v) for k, v in target.items()}
    assert merge_patch(target, patch) == expected
    assert target == original  # the target is not changed in place


def test_split_separates_system_and_internal_fields_from_the_body():
    doc = {"_id": 1, "owner": 2, "group": 3, "access": [], "branch": [], "createdAt": 4, "updatedAt": 5,
           "_auth": {"k": 1}, "name": "n", "count": 1}
    system, body = split(doc)
    assert body == {"name": "n", "count": 1}
    assert system == {k: v for k, v in doc.items() if k not in body}


def test_forbidden_fields_name_each_key_and_every_underscore_key():
    assert forbidden_fields({"_id": 1, "owner": 2, "_x": 3, "name": 4}, ("_id", "owner"), "is set by the server") == {
        "_id": "is set by the server", "owner": "is set by the server", "_x": "is reserved"}
    assert forbidden_fields({"name": 1}, ("_id",), "why") == {}
    with pytest.raises(Invalid) as info:
        reject_fields({"group": None, "name": 1}, ("group",), "is a system field")
    assert info.value.fields == {"group": "is a system field"}
    reject_fields({"name": 1}, ("group",), "is a system field")


def test_id_lists_are_parsed_and_deduplicated_in_order():
    assert id_list([HEX2, HEX, HEX2], "access") == [ObjectId(HEX2), ObjectId(HEX)]
    assert id_list([], "access") == []
    for bad in ("nope", [HEX, "nope"], [5], None, {"a": HEX}):
        with pytest.raises(Invalid) as info:
            id_list(bad, "access")
        assert set(info.value.fields or {}) == {"access"}


def test_optional_ids():
    assert optional_id(None, "group") is None
    assert optional_id(HEX, "group") == ObjectId(HEX)
    with pytest.raises(Invalid) as info:
        optional_id("nope", "group")
    assert info.value.fields == {"group": "must be an ObjectId string or null"}


def test_path_ids_are_24_lowercase_hex():
    assert path_id(HEX) == ObjectId(HEX)
    for bad in (HEX.upper(), HEX[:-1], HEX + "0", "zz" * 12, ""):
        assert path_id(bad) is None, bad
