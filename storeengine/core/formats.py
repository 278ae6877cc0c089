"""The two value formats the engine stores natively: `objectid` and `date-time`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bson import ObjectId

# Used with fullmatch only: `$` also matches before a final newline ("...0\n" would pass).
_OBJECTID = re.compile(r"[0-9a-fA-F]{24}")
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:\d{2})?", re.ASCII
)

OBJECTID = "objectid"
DATETIME = "date-time"


def parse_objectid(value: Any) -> ObjectId | None:
    """A 24-hex string -> ObjectId; anything else -> None."""
    if isinstance(value, ObjectId):
        return value
    if isinstance(value, str) and _OBJECTID.fullmatch(value):
        return ObjectId(value)
    return None


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 (`YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm]`, no zone = UTC) -> naive UTC, ms precision."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    match = _ISO.fullmatch(value)
    if not match:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        micro = int((frac or "0").ljust(6, "0")) // 1000 * 1000  # BSON dates hold milliseconds
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        try:
            parsed = parsed.replace(tzinfo=timezone(sign * offset)).astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # the zone moves it out of years 1..9999 (9999-12-31T23:59-23:59)
            return None
    return parsed


def parse_ms(value: str) -> datetime | None:
    """Unix milliseconds (as a string of digits) -> naive UTC datetime."""
    if not re.fullmatch(r"-?\d{1,15}", value, re.ASCII):
        return None
    try:
        return datetime(1970, 1, 1) + timedelta(milliseconds=int(value))
    except OverflowError:
        return None


def utcnow() -> datetime:
    """Now, naive UTC, truncated to what BSON stores (milliseconds)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def convert(fmt: str | None, value: Any) -> Any:
    """A JSON value -> its stored form for a field of format `fmt` (unchanged if not a string)."""
    if fmt == OBJECTID and isinstance(value, str):
        return parse_objectid(value) or value
    if fmt == DATETIME and isinstance(value, str):
        return parse_datetime(value) or value
    return value
