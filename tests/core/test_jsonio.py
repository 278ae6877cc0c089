"""Unit tests of storeengine/jsonio.py: encoding BSON values, and strict parsing of request bodies."""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from bson import ObjectId

from storeengine.core.errors import BadRequest
from storeengine.core.jsonio import (
    MAX_DEPTH,
    PACKET_DEPTH,
    dumps,
    epoch_ms,
    iso_ms,
    loads_bounded,
    loads_exact,
    parse_body,
    to_json_form,
)

HEX = "0123456789abcdef01234567"


def test_bson_values_encode_as_the_contract_says():
    moment = datetime(2026, 11, 22, 10, 4, 5, 123000)
    doc = {"_id": ObjectId(HEX), "at": moment, "list": [ObjectId(HEX)], "n": 1.5, "s": "é"}
    assert json.loads(dumps(doc)) == {"_id": HEX, "at": "2026-11-22T10:04:05.123Z", "list": [HEX], "n": 1.5, "s": "é"}
    assert to_json_form(doc) == json.loads(dumps(doc))


def test_aware_datetimes_are_written_in_utc():
    aware = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert json.loads(dumps({"at": aware})) == {"at": "2026-01-01T00:00:00.000Z"}
    assert json.loads(dumps({"at": datetime(2026, 1, 1, tzinfo=UTC)})) == {"at": "2026-01-01T00:00:00.000Z"}


def test_unknown_types_are_refused():
    with pytest.raises(TypeError):
        dumps({"x": {1, 2}})


def test_time_helpers():
    assert iso_ms(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 1, 500000)) == 1500


def nested(levels: int) -> dict:
    """`levels` nested objects; the innermost holds a scalar (a scalar is not a level)."""
    doc: dict = {"a": 1}
    for _ in range(levels - 1):
        doc = {"x": doc}
    return doc


def test_a_body_is_a_json_object_of_bounded_depth():
    assert parse_body(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert parse_body(json.dumps(nested(MAX_DEPTH)).encode()) == nested(MAX_DEPTH)
    with pytest.raises(BadRequest, match="deeper"):
        parse_body(json.dumps(nested(MAX_DEPTH + 1)).encode())
    with pytest.raises(BadRequest, match="deeper"):
        parse_body(b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}")


@pytest.mark.parametrize("raw,match", [
    (b"", "Malformed"), (b'{"a": ', "Malformed"), (b"{'a': 1}", "Malformed"), (b'{"a": NaN}', "Malformed"),
    (b'{"a": "\xff"}', "Malformed"), (b"[1]", "object"), (b'"x"', "object"), (b"null", "object"),
    (b'{"$set": 1}', r"\$set"), (b'{"a": {"b.c": 1}}', r"a\.b\.c"), (b'{"a": [{"$ne": 1}]}', r"a\.0\.\$ne"),
    (b'{"a\\u0000b": 1}', "Key not allowed"),
])
def test_bad_bodies_are_400_naming_the_problem(raw, match):
    with pytest.raises(BadRequest, match=match):
        parse_body(raw)


@contextlib.contextmanager
def little_stack(frames: int = 40) -> Iterator[None]:
    """Python's recursion limit just above the caller's depth: a walk that recursed once per level
    of a 33-level value would hit RecursionError here."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def deep(depth: int, kind: str) -> bytes:
    inner = b"[" * depth + b"]" * depth if kind == "arrays" else b'{"a": ' * depth + b"1" + b"}" * depth
    return b'{"x": ' + inner + b"}"


@pytest.mark.parametrize("kind", ["arrays", "objects"])
@pytest.mark.parametrize("depth", [MAX_DEPTH, 330, 1000, 5000, 100_000])
def test_deep_json_is_refused_without_recursion(depth: int, kind: str) -> None:
    """Issue 19: the float check of loads_exact recursed into a RecursionError (a 500 and a 100 kB
    traceback) before the depth check ran. Now nothing walks a parsed value recursively."""
    raw = deep(depth, kind)
    with little_stack():
        for parse in (parse_body, loads_exact):
            with pytest.raises(BadRequest, match=f"deeper than {MAX_DEPTH}"):
                parse(raw)
        if depth + 1 > PACKET_DEPTH:
            with pytest.raises(ValueError, match=r"deeper|depth"):
                loads_bounded(raw)  # the Socket.IO packets' parser
        else:  # a packet wraps a body: it may be deeper, for the handler's own 400
            assert loads_bounded(raw) == json.loads(raw)
        ok = deep(MAX_DEPTH - 2, kind)  # 31 levels inside {"x": ...}
        assert parse_body(ok) == json.loads(ok) == loads_bounded(ok)


def test_a_packet_keeps_integers_beyond_64_bits_exact() -> None:
    """orjson reads them as floats: a filter sent over a socket then passed for a number."""
    assert loads_bounded(b'[1, {"a": 18446744073709551617, "b": [-9223372036854775809]}]') \
        == [1, {"a": 2**64 + 1, "b": [-(2**63) - 1]}]
    assert type(loads_bounded(b'{"a": 1.5e300}')["a"]) is float


def test_huge_integers_at_the_deepest_level_are_still_exact() -> None:
    raw = b'{"a": ' * (MAX_DEPTH - 1) + b"[18446744073709551617]" + b"}" * (MAX_DEPTH - 1)
    value = loads_exact(raw)
    for _ in range(MAX_DEPTH - 1):
        value = value["a"]
    assert value == [2**64 + 1]
