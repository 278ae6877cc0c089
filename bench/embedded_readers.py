"""BENCHMARK (not a test): why the embedded database has reader threads beside its writer thread.

The same in-process app over the same data folder, two ways: reads on reader threads with
their own connections (WAL; the default), and every call on the one writer thread. Load: one
client lists BENCH_READERS_LIST entities in a loop, four clients GET random entities by id
and one POSTs, for BENCH_READERS_SECONDS each way. Printed: GET and POST rates and latencies
(p50 / p99), and lists per second.

    .venv/bin/python bench/embedded_readers.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from typing import Any

import httpx
from _common import ADMIN_PASSWORD, FAST_HASH, SECRET, bearer, data_dir, lifespan, line, percentile, schema_folder
from bson import ObjectId
from embedded_scale import entity

from storeengine.app import create_app
from storeengine.settings import Settings
from storeengine.storage.sqlite import storage as sqlite_storage
from storeengine.storage.sqlite.collection import SqliteCollection

COUNT = 10_000
LIST = int(os.environ.get("BENCH_READERS_LIST", "1000"))
SECONDS = float(os.environ.get("BENCH_READERS_SECONDS", "10"))
SCHEMA = json.dumps({"type": "object", "properties": {"name": {"type": "string"}, "stock": {"type": "integer"}}})


async def measure(readers: int) -> dict[str, Any]:
    sqlite_storage.READERS = readers
    schemas = schema_folder({"items": SCHEMA})
    with data_dir() as data:
        settings = Settings(schema_dir=schemas, secret=SECRET, admin_password=ADMIN_PASSWORD, data_dir=data,
                            **FAST_HASH)  # type: ignore[arg-type]
        app: Any = create_app(settings)
        async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                    base_url="http://bench") as client:
            headers = await bearer(client)
            coll = app.other_asgi_app.app.state.ctx.storage.collection("items")
            assert isinstance(coll, SqliteCollection)
            docs = [entity(i, ObjectId()) for i in range(COUNT)]
            await coll.insert_many(docs)
            ids = [str(d["_id"]) for d in docs]
            gets: list[float] = []
            posts: list[float] = []
            lists = 0
            stop = time.monotonic() + SECONDS

            async def getter() -> None:
                while time.monotonic() < stop:
                    start = time.perf_counter()
                    r = await client.get(f"/api/v1/items/{random.choice(ids)}", headers=headers)
                    gets.append(time.perf_counter() - start)
                    r.raise_for_status()

            async def poster() -> None:
                while time.monotonic() < stop:
                    start = time.perf_counter()
                    r = await client.post("/api/v1/items", json={"name": "n", "stock": 1}, headers=headers)
                    posts.append(time.perf_counter() - start)
                    r.raise_for_status()

            async def lister() -> None:
                nonlocal lists
                while time.monotonic() < stop:
                    (await client.get(f"/api/v1/items?limit={LIST}", headers=headers)).raise_for_status()
                    lists += 1

            await asyncio.gather(lister(), poster(), *(getter() for _ in range(4)))
    return {"gets": gets, "posts": posts, "lists": lists}


def report(name: str, result: dict[str, Any]) -> None:
    gets, posts = result["gets"], result["posts"]
    line(f"{name}: GET by id", f"{len(gets) / SECONDS:6.0f} req/s, p50 {percentile(gets, 50) * 1000:5.1f} ms, "
         f"p99 {percentile(gets, 99) * 1000:6.1f} ms")
    line(f"{name}: POST", f"{len(posts) / SECONDS:6.0f} req/s, p50 {percentile(posts, 50) * 1000:5.1f} ms, "
         f"p99 {percentile(posts, 99) * 1000:6.1f} ms")
    line(f"{name}: list of {LIST}", f"{result['lists'] / SECONDS:6.1f} /s")


async def main() -> None:
    print(f"embedded_readers: {COUNT:,} entities; for {SECONDS:.0f} s, one client lists {LIST} in a loop, four GET\n"
          "  by id, one POSTs (in-process ASGI app): reads on reader threads, then every call on one thread",
          flush=True)
    readers = sqlite_storage.READERS
    with_readers = await measure(readers)
    one_thread = await measure(0)
    report(f"{readers} reader threads + writer", with_readers)
    report("one thread for everything", one_thread)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
