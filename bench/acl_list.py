"""A list page for a caller who can read 1% of 100,000 entities, next to an admin listing a
page of the same size. Access rules are part of the query, so both are one `find`."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta

from bson import ObjectId

from _common import admin_headers, database_note, line, median_ms, running_app, timed
from storeengine.formats import utcnow

SCHEMA = json.dumps({"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}})
TOTAL = int(os.environ.get("BENCH_ACL_TOTAL", "100000"))
OWNERS, PAGE, RUNS = 100, 1000, 5


async def main() -> None:
    print(f"acl_list: {TOTAL} entities, {OWNERS} owners (1% each); page limit={PAGE}; median of {RUNS}; "
          f"{database_note()}")
    async with running_app({"items": SCHEMA}) as (client, ctx):
        admin = await admin_headers(client)
        r = await client.post("/api/v1/users", json={"login": "reader", "password": "reader-password"}, headers=admin)
        reader_id = ObjectId(r.json()["_id"])
        reader = await admin_headers(client, "reader", "reader-password")
        owners = [reader_id] + [ObjectId() for _ in range(OWNERS - 1)]
        raw = ctx.storage.collection("items").raw
        start, base = time.perf_counter(), utcnow()
        for chunk in range(0, TOTAL, 10000):
            docs = []
            for i in range(chunk, min(chunk + 10000, TOTAL)):
                at = base + timedelta(milliseconds=i)
                docs.append({"_id": ObjectId(), "name": f"e{i}", "n": i, "owner": owners[i % OWNERS], "group": None,
                             "access": [], "branch": [], "createdAt": at, "updatedAt": at})
            await raw.insert_many(docs)
        line("insert (setup)", f"{time.perf_counter() - start:8.1f} s")

        async def page(headers: dict[str, str]) -> None:
            r = await client.get(f"/api/v1/items?limit={PAGE}", headers=headers)
            assert r.status_code == 200 and len(r.json()) == PAGE

        reader_ms = median_ms(await timed(lambda: page(reader), RUNS))
        admin_ms = median_ms(await timed(lambda: page(admin), RUNS))
    line(f"reader (reads 1%), page of {PAGE}", f"{reader_ms:8.1f} ms")
    line(f"admin (reads all), page of {PAGE}", f"{admin_ms:8.1f} ms")
    line("ratio reader / admin", f"{reader_ms / admin_ms:8.2f} x")
    print("  note: the embedded database filters and sorts in Python over every document: the admin's\n"
          "  page sorts all entities, the reader's only the 1% that pass the access filter. On MongoDB\n"
          "  the reader's $or over owner/group/access/branch is served by those indexes.")


if __name__ == "__main__":
    asyncio.run(main())
