"""What a client needs to drive one peer, and the store shape every peer serves.

The shape: `items` with name (string), price (number), tags (array of strings) and listedAt (a
date-time), plus whatever each server adds itself (ids, owner, timestamps). Each peer writes
listedAt the way its own API takes a date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

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
    ids: list[str] = field(default_factory=list)


async def seed(target: Target, count: int, concurrency: int = 16) -> float:
    """Create `count` entities through the peer's own API as its user; seconds taken. Fills ids."""
    todo = iter(range(count))
    ids: list[str] = [""] * count
    loop = asyncio.get_running_loop()
    start = loop.time()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=target.base, headers=target.headers, timeout=60, limits=limits) as http:

        async def worker() -> None:
            for i in todo:
                r = await http.post(target.create_path, json=target.body(i))
                if r.status_code not in (200, 201):
                    raise RuntimeError(f"{target.name}: seeding POST answered {r.status_code}: {r.text[:300]}")
                ids[i] = target.new_id(r.json())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    target.ids = ids
    return loop.time() - start


def check(target: Target) -> None:
    """One GET by id and one list through plain httpx: the answers the load tool will not read."""
    with httpx.Client(base_url=target.base, headers=target.headers, timeout=60) as http:
        r = http.get(target.item_prefix + target.ids[0])
        if r.status_code != 200:
            raise RuntimeError(f"{target.name}: GET by id answered {r.status_code}: {r.text[:300]}")
        r = http.get(target.list_path)
        if r.status_code != 200 or target.listed(r.json()) != LIST_SIZE:
            raise RuntimeError(f"{target.name}: the list answered {r.status_code} with "
                               f"{target.listed(r.json()) if r.status_code == 200 else r.text[:300]}")
