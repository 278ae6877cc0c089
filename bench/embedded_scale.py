"""BENCHMARK (not a test; bench/ is not collected by pytest): the embedded database at scale.

One data folder holds a store of 1,000 entities and one of 1,000,000 (BENCH_SCALE_COUNT),
bulk-loaded through the storage. Printed:
- GET /api/v1/<store>/<id> req/s on the 1,000-entity store and on the 1,000,000-entity one, in
  alternating rounds (so that drift on a shared machine favours neither), and their ratio
  (target >= 0.9: a lookup by id is one B-tree search, whatever the size);
- POST req/s into each store, the same way, and the bulk load's rate for its first and last
  10% (inserts stay flat as the store grows);
- start-up on the 1,000,000-entity folder (target < 2 s: nothing is loaded into memory): the app
  (create_app + lifespan start) in-process, and `storeengine serve` from exec to /healthz 200
  (wall and CPU seconds; the CPU is mostly Python importing the server), next to the same on
  an empty folder.

The HTTP calls go through the in-process ASGI app (httpx ASGITransport), one at a time, as an
authenticated admin; ids are picked at random over the whole store. Runs in a few minutes:

    .venv/bin/python bench/embedded_scale.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import ADMIN_PASSWORD, FAST_HASH, SECRET, bearer, data_dir, lifespan, line, schema_folder
from bson import ObjectId

from storeengine.app import create_app
from storeengine.core.formats import utcnow
from storeengine.settings import Settings
from storeengine.storage.sqlite.collection import SqliteCollection

COUNT = int(os.environ.get("BENCH_SCALE_COUNT", "1000000"))
SMALL = 1000
GETS = int(os.environ.get("BENCH_SCALE_GETS", "4000"))  # per store, over ROUNDS alternating rounds
ROUNDS = 40
POSTS = 800  # per store, over ROUNDS alternating rounds
BATCH = 20_000
SCHEMA = json.dumps({"type": "object", "properties": {
    "name": {"type": "string"}, "sku": {"type": "string"}, "price": {"type": "number"},
    "stock": {"type": "integer"}, "active": {"type": "boolean"}, "tags": {"type": "array"}}})


def entity(i: int, owner: ObjectId) -> dict[str, Any]:
    """A document as the engine stores it: the fields plus _id and the system fields."""
    at = utcnow() + timedelta(milliseconds=i)
    return {"_id": ObjectId(), "name": f"item {i}", "sku": f"SKU-{i:07d}", "price": i * 0.37 % 100,
            "stock": i % 50, "active": i % 2 == 0, "tags": ["a", "b"], "owner": owner, "group": None,
            "access": [], "branch": [], "createdAt": at, "updatedAt": at}


class Run:
    def __init__(self, schemas: Path, data: str) -> None:
        self.settings = Settings(schema_dir=schemas, secret=SECRET, admin_password=ADMIN_PASSWORD,
                                 data_dir=data, **FAST_HASH)  # type: ignore[arg-type]
        self.ids: dict[str, list[str]] = {"small": [], "items": []}

    async def gets(self, client: httpx.AsyncClient, headers: dict[str, str], store: str,
                   count: int) -> tuple[float, float]:
        """GETs by random ids of `store`, one at a time: requests per second, and this process's CPU
        seconds per request (every thread's; unlike wall time, not inflated by other work on a
        shared machine)."""
        picks = [random.choice(self.ids[store]) for _ in range(count)]
        start, cpu = time.perf_counter(), time.process_time()
        for entity_id in picks:
            r = await client.get(f"/api/v1/{store}/{entity_id}", headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"GET: {r.status_code} {r.text}")
        return count / (time.perf_counter() - start), (time.process_time() - cpu) / count

    async def get_rates(self, client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, float]:
        """Medians over many short alternating rounds on the small store and the large one, so that
        drift on a shared machine favours neither (after a warm-up of each)."""
        for store in ("small", "items"):
            await self.gets(client, headers, store, 200)
        rounds: dict[str, list[tuple[float, float]]] = {"small": [], "items": []}
        for _ in range(ROUNDS):
            for store in ("small", "items"):
                rounds[store].append(await self.gets(client, headers, store, GETS // ROUNDS))
        return {f"get_{store}": statistics.median(r for r, _ in found) for store, found in rounds.items()} | {
            f"cpu_{store}": statistics.median(c for _, c in found) for store, found in rounds.items()}

    async def posts(self, client: httpx.AsyncClient, headers: dict[str, str], store: str, count: int) -> float:
        """POSTs into `store`, one at a time: requests per second."""
        start = time.perf_counter()
        for i in range(count):
            r = await client.post(f"/api/v1/{store}", headers=headers,
                                  json={"name": f"posted {i}", "price": 1.5, "stock": i, "tags": ["x"]})
            if r.status_code != 201:
                raise RuntimeError(f"POST: {r.status_code} {r.text}")
        return count / (time.perf_counter() - start)

    async def post_rates(self, client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[float, float]:
        """As `get_rates`, for POSTs into the small store and into the large one."""
        small: list[float] = []
        large: list[float] = []
        for _ in range(ROUNDS):
            small.append(await self.posts(client, headers, "small", POSTS // ROUNDS))
            large.append(await self.posts(client, headers, "items", POSTS // ROUNDS))
        return statistics.median(small), statistics.median(large)

    async def bulk_load(self, coll: SqliteCollection, store: str, owner: ObjectId, upto: int) -> list[float]:
        """Insert up to `upto` entities in batches; the rate (entities/s) of each batch."""
        ids, rates = self.ids[store], []
        while len(ids) < upto:
            size = min(BATCH, upto - len(ids))
            docs = [entity(len(ids) + i, owner) for i in range(size)]
            start = time.perf_counter()
            await coll.insert_many(docs)
            rates.append(size / (time.perf_counter() - start))
            ids += [str(d["_id"]) for d in docs]
            if len(ids) % 200_000 == 0:
                print(f"  ... {len(ids):,} entities", flush=True)
        return rates


async def grow(run: Run) -> dict[str, float]:
    out: dict[str, float] = {}
    app: Any = create_app(run.settings)
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                base_url="http://bench") as client:
        headers = await bearer(client)
        storage = app.other_asgi_app.app.state.ctx.storage
        small, items = storage.collection("small"), storage.collection("items")
        assert isinstance(small, SqliteCollection) and isinstance(items, SqliteCollection)
        await run.bulk_load(small, "small", ObjectId(), SMALL)
        start = time.perf_counter()
        rates = await run.bulk_load(items, "items", ObjectId(), COUNT)
        out["bulk_s"] = time.perf_counter() - start
        tenth = max(1, len(rates) // 10)
        out["bulk_early"], out["bulk_late"] = statistics.mean(rates[:tenth]), statistics.mean(rates[-tenth:])
        out |= await run.get_rates(client, headers)
        out["post_small"], out["post_large"] = await run.post_rates(client, headers)
    return out


def folder_mb(data: str) -> float:
    return sum(f.stat().st_size for f in Path(data).iterdir()) / 1e6


async def app_start(run: Run) -> float:
    start = time.perf_counter()
    app: Any = create_app(run.settings)
    async with lifespan(app):
        return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): unlike wall time, not inflated by
    other work on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_start(schemas: Path, data: str) -> tuple[float, float]:
    """`storeengine serve` on `data`: seconds from exec to /healthz 200, and its CPU seconds by then."""
    port = free_port()
    env = {**os.environ, "STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "STORE_DATA_DIR": data, "STORE_SCHEMA_DIR": str(schemas)}
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--log-level",
                                 "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"serve exited with {proc.returncode}:\n{log.read().decode(errors='replace')}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        return time.perf_counter() - start, cpu_seconds(proc.pid)
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        finally:
            proc.terminate()
            proc.wait(10)


async def main() -> None:
    print(f"embedded_scale: a store of {SMALL:,} entities and one of {COUNT:,} in one data folder (SQLite, WAL);\n"
          f"  GET by id ({GETS} random ids a store) and POST ({POSTS} a store), medians of {ROUNDS} alternating\n"
          "  rounds, through the in-process ASGI app as the admin, one call at a time", flush=True)
    schemas = schema_folder({"items": SCHEMA, "small": SCHEMA})
    with data_dir() as empty:
        serve_empty = serve_start(schemas, empty)
    with data_dir() as data:
        run = Run(schemas, data)
        figures = await grow(run)
        size_mb = folder_mb(data)
        app_s = await app_start(run)
        serve_full = serve_start(schemas, data)
    line(f"GET by id, store of {SMALL:,}", f"{figures['get_small']:8.0f} req/s, "
         f"{figures['cpu_small'] * 1e6:.0f} us CPU each")
    line(f"GET by id, store of {COUNT:,}", f"{figures['get_items']:8.0f} req/s, "
         f"{figures['cpu_items'] * 1e6:.0f} us CPU each")
    line(f"GET ratio {COUNT:,} / {SMALL:,} (target >= 0.9)", f"{figures['get_items'] / figures['get_small']:8.2f} "
         f"(by CPU per request: {figures['cpu_small'] / figures['cpu_items']:.2f})")
    line(f"POST into the store of {SMALL:,}", f"{figures['post_small']:8.0f} req/s")
    line(f"POST into the store of {COUNT:,}", f"{figures['post_large']:8.0f} req/s")
    line(f"POST ratio {COUNT:,} / {SMALL:,}", f"{figures['post_large'] / figures['post_small']:8.2f}")
    line("bulk load, first / last tenth", f"{figures['bulk_early']:8.0f} / {figures['bulk_late']:.0f} entities/s")
    line(f"bulk load of {COUNT:,} entities", f"{figures['bulk_s']:8.1f} s")
    line("data folder size", f"{size_mb:8.0f} MB")
    line(f"start-up at {COUNT:,}: app (create_app + lifespan)", f"{app_s:8.2f} s")
    line(f"start-up at {COUNT:,}: serve, exec to /healthz", f"{serve_full[0]:8.2f} s (target < 2 s), "
         f"{serve_full[1]:.2f} s CPU")
    line("start-up on an empty folder: serve, exec to /healthz", f"{serve_empty[0]:8.2f} s, "
         f"{serve_empty[1]:.2f} s CPU")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # not the app's start-up notices between the figures
    asyncio.run(main())
