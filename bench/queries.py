"""API.md section 14 costs: keyset paging deep in a store, and aggregation next to a plain count.

- `after` at depth N (default 100,000) ÷ the first page (target <= 1.5x), with `offset` at the
  same depth beside it: GET /api/v1/events?limit=100, ?after=<token>&limit=100 (the token of the
  page ending at N, taken once), ?offset=N&limit=100; the after and offset pages are checked equal.
- `_aggregate` over the N entities ÷ a plain count with the same filter (target <= 3x on the
  wire lane): GET _aggregate?group=kind&count=true&sum=amount&avg=amount&filter=F against
  GET ?meta=true&filter=F (the API's count), and the storage seam's bare count(F) for scale; the
  groups' counts are checked to add up to the total.

Each pair runs as the admin (no access rules in the query) and as a reader who owns 10 of every
11 entities (the access rules are the first $match / part of the find). Seeded with insert_many
straight into the store's collection (BENCH_QUERIES_BATCH per call). Medians of ROUNDS alternating
rounds; CPU of this process per request beside wall time (on the embedded database that includes
SQLite's own work; on the wire it leaves the server's out).

BENCH_QUERIES_COUNT sets N. mongoeco's insert grows with the collection (a few thousand entities
take a minute), so bench/run_all.py runs the wire lane with a smaller N and says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from _common import bearer, database_note, driver_collection, line, running_app
from bson import ObjectId

from storeengine.core.formats import utcnow

SCHEMA = json.dumps({"type": "object", "properties": {
    "kind": {"type": "string"}, "amount": {"type": "number"}, "n": {"type": "integer"},
    "label": {"type": "string"}}})
# The server's guard (default 10 s) is not what is measured: on the shared machine the embedded
# aggregation over 100,000 entities was seen at 7-8 s of wall time for ~1.2 s of CPU, and a 503.
os.environ.setdefault("STORE_QUERY_TIMEOUT_MS", "120000")
COUNT = int(os.environ.get("BENCH_QUERIES_COUNT", "100000"))
BATCH = int(os.environ.get("BENCH_QUERIES_BATCH", "5000"))
PAGE, ROUNDS = 100, int(os.environ.get("BENCH_QUERIES_ROUNDS", "7"))
KINDS = [f"kind{k}" for k in range(10)]
FILTER = json.dumps({"amount": {"$gte": 25}})  # about three quarters of the entities
READER = {"login": "reader", "password": "reader-password"}


def entities(first: int, stop: int, reader: ObjectId, other: ObjectId) -> list[dict[str, Any]]:
    """Documents as the engine writes them; every 11th belongs to someone else."""
    base = utcnow()
    out = []
    for i in range(first, stop):
        at = base + timedelta(milliseconds=i)
        out.append({"_id": ObjectId(), "kind": KINDS[i % len(KINDS)], "amount": (i * 37) % 100, "n": i,
                    "label": f"event {i}", "owner": other if i % 11 == 10 else reader, "group": None,
                    "access": [], "branch": [], "createdAt": at, "updatedAt": at})
    return out


async def alternate(fns: list[Callable[[], Awaitable[Any]]], rounds: int) -> list[tuple[float, float]]:
    """(median wall s, median CPU s) of each, over `rounds` alternating runs after one warm-up each."""
    for fn in fns:
        await fn()
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.process_time()
            await fn()
            wall[i].append(time.perf_counter() - start)
            cpu[i].append(time.process_time() - start_cpu)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu, strict=True)]


def ms(pair: tuple[float, float]) -> str:
    return f"{pair[0] * 1000:8.1f} ms  (CPU {pair[1] * 1000:6.1f} ms)"


def ratio(a: tuple[float, float], b: tuple[float, float]) -> str:
    """Wall time over wall time, and CPU over CPU (what a loaded machine blurs least)."""
    return f"{a[0] / b[0]:8.2f} x  (CPU {a[1] / b[1]:5.2f} x)"


async def main() -> None:
    print(f"queries: keyset paging at depth {COUNT} and _aggregate over {COUNT} entities, through the in-process\n"
          f"  ASGI app; medians of {ROUNDS} alternating rounds; {database_note()}", flush=True)
    async with running_app({"events": SCHEMA}) as (client, ctx):
        admin = await bearer(client)
        r = await client.post("/api/v1/users", json=READER, headers=admin)
        r.raise_for_status()
        reader = await bearer(client, READER["login"], READER["password"])
        reader_id, other = ObjectId(r.json()["_id"]), ObjectId()
        raw = driver_collection(ctx, "events")
        # The reader's readable entities reach the depth plus a page; the others are every 11th.
        total = (COUNT + PAGE) * 11 // 10 + 1
        start = time.perf_counter()
        for first in range(0, total, BATCH):
            await raw.insert_many(entities(first, min(first + BATCH, total), reader_id, other))
        line(f"setup: insert_many {total} entities", f"{time.perf_counter() - start:8.1f} s")

        for who, headers in (("admin", admin), ("reader", reader)):
            await paging(Client(client, headers), who)
            await aggregation(Client(client, headers), who, ctx.storage.collection("events"))


class Client:
    """GETs as one caller; anything but a 200 stops the run."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.http, self.headers = http, headers

    async def get(self, url: str) -> httpx.Response:
        answer: httpx.Response = await self.http.get(url, headers=self.headers)
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:300]}")
        return answer


async def paging(client: Client, who: str) -> None:
    base = "/api/v1/events"
    token = (await client.get(f"{base}?offset={COUNT - PAGE}&limit={PAGE}")).headers["X-Next-After"]
    first, after = f"{base}?limit={PAGE}", f"{base}?after={token}&limit={PAGE}"
    offset = f"{base}?offset={COUNT}&limit={PAGE}"
    deep, skipped = (await client.get(after)).json(), (await client.get(offset)).json()
    if [d["_id"] for d in deep] != [d["_id"] for d in skipped] or len(deep) != PAGE:
        raise RuntimeError("after and offset disagree at the depth")
    first_page, after_page, offset_page = await alternate(
        [lambda: client.get(first), lambda: client.get(after), lambda: client.get(offset)], ROUNDS)
    line(f"{who}: first page ({PAGE})", ms(first_page))
    line(f"{who}: after at depth {COUNT}", ms(after_page))
    line(f"{who}: offset at depth {COUNT}", ms(offset_page))
    line(f"{who}: after ÷ first page (target <= 1.5)", ratio(after_page, first_page))
    line(f"{who}: offset ÷ first page (for comparison)", ratio(offset_page, first_page))


async def aggregation(client: Client, who: str, coll: Any) -> None:
    params = {"group": "kind", "count": "true", "sum": "amount", "avg": "amount", "filter": FILTER}
    agg_url = f"/api/v1/events/_aggregate?{httpx.QueryParams(params)}"
    count_url = f"/api/v1/events?{httpx.QueryParams({'meta': 'true', 'filter': FILTER})}"
    groups = (await client.get(agg_url)).json()
    counted = (await client.get(count_url)).json()["total"]
    if sum(g["count"] for g in groups) != counted or len(groups) != len(KINDS):
        raise RuntimeError(f"the groups add up to {sum(g['count'] for g in groups)}, the count is {counted}")
    query = json.loads(FILTER)
    aggregated, count, bare = await alternate(
        [lambda: client.get(agg_url), lambda: client.get(count_url), lambda: coll.count(query)], ROUNDS)
    line(f"{who}: _aggregate by kind, count+sum+avg", ms(aggregated))
    line(f"{who}: count: GET ?meta=true ({counted})", ms(count))
    line(f"{who}: count: storage seam, no HTTP", ms(bare))
    line(f"{who}: _aggregate ÷ count (target <= 3)", ratio(aggregated, count))
    line(f"{who}: _aggregate ÷ storage seam count", ratio(aggregated, bare))

if __name__ == "__main__":
    asyncio.run(main())
