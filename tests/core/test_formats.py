"""Unit tests of storeengine/formats.py: objectid and date-time parsing, and the stored form."""

from __future__ import annotations

from datetime import datetime

import pytest
from bson import ObjectId

from storeengine.core.formats import DATETIME, OBJECTID, convert, parse_datetime, parse_ms, parse_objectid, utcnow

HEX = "0123456789abcdef01234567"


def test_objectids():
    oid = ObjectId(HEX)
    assert parse_objectid(HEX) == oid
    assert parse_objectid(HEX.upper()) == oid  # the format accepts either case; paths are stricter
    assert parse_objectid(oid) is oid
    for bad in (HEX[:-1], HEX + "0", "z" * 24, "", None, 5, [HEX]):
        assert parse_objectid(bad) is None, bad


@pytest.mark.parametrize("text,expected", [
    ("2026-01-02T03:04", datetime(2026, 1, 2, 3, 4)),
    ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5)),
    ("2026-01-02T03:04:05.6Z", datetime(2026, 1, 2, 3, 4, 5, 600000)),
    ("2026-01-02T03:04:05.678999Z", datetime(2026, 1, 2, 3, 4, 5, 678000)),  # BSON keeps milliseconds
    ("2026-01-02T05:04+02:00", datetime(2026, 1, 2, 3, 4)),
    ("2026-01-01T23:30-05:30", datetime(2026, 1, 2, 5, 0)),
    ("2026-01-01T00:00+23:59", datetime(2025, 12, 31, 0, 1)),
])
def test_date_times_become_naive_utc_with_ms_precision(text, expected):
    assert parse_datetime(text) == expected


@pytest.mark.parametrize("text", [
    "2026-01-02", "2026-01-02 03:04", "2026-13-01T00:00", "2026-02-30T00:00", "2026-01-01T24:00",
    "2026-01-01T00:60", "2026-01-01T00:00:61", "2026-01-01T00:00+24:00", "2026-01-01T00:00+05:60",
    "2026-01-01T00:00ZZ", "2026-01-01T00:00+1", "yesterday", "",
])
def test_bad_date_times_are_none(text):
    assert parse_datetime(text) is None


def test_non_strings_and_datetimes():
    moment = datetime(2026, 1, 2)
    assert parse_datetime(moment) is moment
    assert parse_datetime(1767225600000) is None


def test_epoch_milliseconds():
    assert parse_ms("0") == datetime(1970, 1, 1)
    assert parse_ms("1767225600001") == datetime(2026, 1, 1, 0, 0, 0, 1000)
    assert parse_ms("-1") == datetime(1969, 12, 31, 23, 59, 59, 999000)
    for bad in ("", "1.5", "1e3", "0x10", "9" * 16, "999999999999999"):
        assert parse_ms(bad) is None, bad


def test_utcnow_is_naive_and_whole_milliseconds():
    now = utcnow()
    assert now.tzinfo is None and now.microsecond % 1000 == 0


def test_convert_only_touches_valid_strings_of_its_format():
    assert convert(OBJECTID, HEX) == ObjectId(HEX)
    assert convert(DATETIME, "2026-01-02T03:04Z") == datetime(2026, 1, 2, 3, 4)
    assert convert(OBJECTID, "nope") == "nope"  # left for validation to refuse
    assert convert(DATETIME, 5) == 5
    assert convert(None, HEX) == HEX
