"""A list page for a caller who can read 1% of 100,000 entities, next to an admin listing a
page of the same size. Access rules are part of the query, so both are one `find`."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta
from typing import Any

import httpx
from _common import bearer, database_note, driver_collection, line, median_ms, running_app, timed
from bson import ObjectId

from storeengine.core.formats import utcnow

SCHEMA = json.dumps({"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}})
TOTAL = int(os.environ.get("BENCH_ACL_TOTAL", "100000"))
OWNERS, PAGE, RUNS, BATCH = 100, 1000, 5, 10_000
READER = {"login": "reader", "password": "reader-password"}


def batch(start: int, stop: int, owners: list[ObjectId]) -> list[dict[str, Any]]:
    """Documents as the engine writes them; entity i belongs to owners[i % OWNERS]."""
    base = utcnow()
    docs = []
    for i in range(start, stop):
        at = base + timedelta(milliseconds=i)
        docs.append({"_id": ObjectId(), "name": f"e{i}", "n": i, "owner": owners[i % OWNERS], "group": None,
                     "access": [], "branch": [], "createdAt": at, "updatedAt": at})
    return docs


async def main() -> None:
    print(f"acl_list: {TOTAL} entities owned by {OWNERS} users (1% each); GET /api/v1/items?limit={PAGE} through\n"
          f"  the in-process ASGI app as a user who owns (and may read) 1%, and as the admin; median of {RUNS}\n"
          f"  runs after a warm-up; {database_note()}", flush=True)
    async with running_app({"items": SCHEMA}) as (client, ctx):
        admin = await bearer(client)
        r = await client.post("/api/v1/users", json=READER, headers=admin)
        r.raise_for_status()
        reader = await bearer(client, READER["login"], READER["password"])
        owners = [ObjectId(r.json()["_id"])] + [ObjectId() for _ in range(OWNERS - 1)]
        raw = driver_collection(ctx, "items")
        start = time.perf_counter()
        for first in range(0, TOTAL, BATCH):
            await raw.insert_many(batch(first, min(first + BATCH, TOTAL), owners))
        insert_s = time.perf_counter() - start

        async def page(headers: dict[str, str]) -> None:
            r: httpx.Response = await client.get(f"/api/v1/items?limit={PAGE}", headers=headers)
            if r.status_code != 200 or len(r.json()) != PAGE:
                raise RuntimeError(f"unexpected answer {r.status_code}")

        reader_ms = median_ms(await timed(lambda: page(reader), RUNS))
        admin_ms = median_ms(await timed(lambda: page(admin), RUNS))
    line(f"setup: insert {TOTAL} entities", f"{insert_s:8.1f} s")
    line(f"reader (reads 1%), page of {PAGE}", f"{reader_ms:8.1f} ms")
    line(f"admin (reads all), page of {PAGE}", f"{admin_ms:8.1f} ms")
    line("ratio reader / admin", f"{reader_ms / admin_ms:8.2f} x")
    if not os.environ.get("STORE_MONGODB_URI"):
        print("  note: on the embedded database the admin's page is a walk of the _id index that stops after\n"
              "  the page; the reader's $or over owner/group/access/branch is served by the owner and group\n"
              "  indexes and by the partial indexes of non-empty access / branch lists (SQLite has no\n"
              "  multikey index: the entities listed there are each examined).")


if __name__ == "__main__":
    asyncio.run(main())
