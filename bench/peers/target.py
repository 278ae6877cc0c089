"""What a client needs to drive one peer, and the store shape every peer serves.

The shape: `items` with name (string), price (number), tags (array of strings) and listedAt (a
date-time), plus whatever each server adds itself (ids, owner, timestamps). Each peer writes
listedAt the way its own API takes a date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 1, 1, tzinfo=UTC)
LIST_SIZE = 1000


def fields(i: int) -> dict[str, Any]:
    """The i-th entity's fields; listedAt as a datetime (each peer's body() writes it its way)."""
    return {"name": f"item {i}", "price": round(i * 0.37 % 100, 2), "tags": ["a", f"t{i % 7}"],
            "listedAt": START + timedelta(seconds=i)}


def iso_ms(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass
class Target:
    """One running peer: where to send GET by id, the list of 1,000 and POST, with which headers.

    `body(i)` is the i-th POST body in the peer's own format, `new_id` reads the id from a creation
    answer and `listed` counts the entities of a list answer. `pids` are the processes whose CPU is
    this peer's own (their children count too).
    """

    name: str
    base: str
    headers: dict[str, str]
    item_prefix: str            # GET <item_prefix><id>
    list_path: str              # GET: a page of LIST_SIZE entities
    create_path: str            # POST
    body: Callable[[int], dict[str, Any]]
    new_id: Callable[[Any], str]
    listed: Callable[[Any], int]
    pids: list[int]
    setup: str = ""             # one line: auth, schema and server set-up, for the report
    stored_in: tuple[str, str] | None = None  # (database, collection) on a MongoDB server: see seeding.py
    ids: list[str] = field(default_factory=list)
    # Seeding in the database (seeding.py): what the i-th copy of the stored document changes beyond
    # the fields, and what the database needs before the copies go in (the peer's own bookkeeping).
    copied: Callable[[dict[str, Any], int], None] | None = None
    before_copies: Callable[[Any, int], None] | None = None
    serves_of: str | None = None  # the peer whose stored entities this one reads (not seeded itself)
