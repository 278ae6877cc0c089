"""jsonio's encoder keeps the contract on every value: dates as ISO 8601 UTC with exactly three
fraction digits and `Z`, ObjectIds as 24 lowercase hex; checked against a plain reference."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from bson import ObjectId

from storeengine.core.jsonio import dumps, to_json_form


def reference(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reference(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reference(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    return value


EDGES = [datetime(2026, 11, 22, 10, 4, 5, 123000), datetime(2026, 11, 22, 10, 4, 5),  # no fraction at all
         datetime(2026, 1, 1, 0, 0, 0, 5), datetime(2026, 1, 1, 0, 0, 0, 999999),  # cut, never rounded
         datetime(1, 1, 1), datetime(999, 12, 31, 23, 59, 59, 1000), datetime(9999, 12, 31, 23, 59, 59, 999000),
         datetime(1970, 1, 1), datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))]


def test_dates_and_ids_encode_like_the_reference() -> None:
    rng = random.Random(12)
    values: list[Any] = [*EDGES, ObjectId(), ObjectId("0123456789abcdef01234567")]
    values.extend(datetime(1, 1, 1) + timedelta(microseconds=rng.randrange(0, 315_537_897_600_000_000))
                  for _ in range(2000))
    doc = {"values": values, "nested": {"at": EDGES[0], "ids": [ObjectId(), None, 1.5, "x"]}}
    assert orjson.loads(dumps(doc)) == reference(doc)


def test_the_contract_s_exact_forms() -> None:
    oid = ObjectId("0123456789abcdef01234567")
    assert dumps({"_id": oid, "at": EDGES[0], "z": EDGES[1]}) == \
        b'{"_id":"0123456789abcdef01234567","at":"2026-11-22T10:04:05.123Z","z":"2026-11-22T10:04:05.000Z"}'
    assert to_json_form([EDGES[2], EDGES[8]]) == ["2026-01-01T00:00:00.000Z", "2026-03-01T17:30:00.000Z"]
