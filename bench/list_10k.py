"""GET /api/v1/<store>?limit=N over N entities of 10 fields, and GET /api/v1/<store>/<id>, each next
to its floor: a bare Starlette app served the same way (in-process ASGI, same httpx client) on the
same database, doing only the driver's find().sort(_id).limit + to_list (or find_one by _id) + orjson.dumps.

N is BENCH_LIST_COUNT (default 10,000). With BENCH_JSON=1 the last line is `@result {json}`
(bench/run_all.py builds its wire/fake table from it).
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
import orjson
from _common import bearer, database_note, driver_collection, line, median_ms, running_app
from bson import ObjectId
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storeengine.core.formats import utcnow
from storeengine.core.jsonio import dumps

SCHEMA = json.dumps({"type": "object", "properties": {
    "name": {"type": "string"}, "sku": {"type": "string"}, "price": {"type": "number"},
    "stock": {"type": "integer"}, "active": {"type": "boolean"}, "tags": {"type": "array"},
    "color": {"type": "string"}, "weight": {"type": "number"}, "rating": {"type": "number"},
    "vendor": {"type": "string"}}})
COUNT = int(os.environ.get("BENCH_LIST_COUNT", "10000"))
ROUNDS, BATCH = 7, 50  # small insert batches: a wire server busy for seconds fails the driver's heartbeat
GETS = int(os.environ.get("BENCH_GETS", "50"))  # GETs per round


def entity(i: int, owner: ObjectId) -> dict[str, Any]:
    """A document as the engine writes it: the fields plus _id and the system fields."""
    at = utcnow() + timedelta(milliseconds=i)
    return {"_id": ObjectId(), "name": f"item {i}", "sku": f"SKU-{i:06d}", "price": i * 0.37 % 100,
            "stock": i % 50, "active": i % 2 == 0, "tags": ["a", "b"], "color": "red", "weight": 1.5,
            "rating": 4.2, "vendor": "acme", "owner": owner, "group": None, "access": [], "branch": [],
            "createdAt": at, "updatedAt": at}


def floor_app(raw: Any) -> Starlette:
    """The least an HTTP server can do for the same answers: no auth, no query parsing, no checks."""

    async def listing(request: Request) -> Response:
        limit = int(request.query_params["limit"])
        docs = await raw.find({}).sort("_id", 1).limit(limit).to_list(None)
        return Response(orjson.dumps(docs, default=str), media_type="application/json")

    async def one(request: Request) -> Response:
        doc = await raw.find_one({"_id": ObjectId(request.path_params["id"])})
        return Response(orjson.dumps(doc, default=str), media_type="application/json")

    return Starlette(routes=[Route("/items", listing), Route("/items/{id}", one)])


async def alternate(first: Callable[[], Awaitable[float]], second: Callable[[], Awaitable[float]],
                    rounds: int) -> tuple[float, float, float, float]:
    """Medians of each over `rounds` alternating runs (after one warm-up of each), so that drift on the
    shared machine favours neither side: (first, second, first's CPU s, second's CPU s). CPU is this
    process's (every thread: the driver decodes in its own), which the database server's time does
    not blur."""
    await first()
    await second()
    a: list[float] = []
    b: list[float] = []
    cpu_a: list[float] = []
    cpu_b: list[float] = []
    for _ in range(rounds):
        for fn, out, cpu in ((first, a, cpu_a), (second, b, cpu_b)):
            start = time.process_time()
            out.append(await fn())
            cpu.append(time.process_time() - start)
    return statistics.median(a), statistics.median(b), statistics.median(cpu_a), statistics.median(cpu_b)


async def main() -> None:
    print(f"list_10k: GET /api/v1/items?limit={COUNT} and GET /api/v1/items/<id> as admin through the in-process\n"
          f"  ASGI app, against a floor app served the same way on the same database (find/find_one + orjson);\n"
          f"  medians of {ROUNDS} alternating rounds; {database_note()}", flush=True)
    async with running_app({"items": SCHEMA}) as (client, ctx):
        headers = await bearer(client)
        raw = driver_collection(ctx, "items")
        start = time.perf_counter()
        for first in range(0, COUNT, BATCH):
            await raw.insert_many([entity(i, ObjectId()) for i in range(first, min(first + BATCH, COUNT))])
        insert_s = time.perf_counter() - start
        ids = [str(d["_id"]) for d in await raw.find({}, {"_id": 1}).sort("_id", 1).to_list(None)]
        floor = httpx.AsyncClient(transport=httpx.ASGITransport(app=floor_app(raw)), base_url="http://floor")

        async def timed_list(http: httpx.AsyncClient, url: str, hdrs: dict[str, str]) -> float:
            start = time.perf_counter()
            r = await http.get(url, headers=hdrs)
            elapsed = time.perf_counter() - start
            if r.status_code != 200 or len(r.json()) != COUNT:
                raise RuntimeError(f"unexpected answer {r.status_code} from {url}")
            return elapsed

        async def get_rate(http: httpx.AsyncClient, prefix: str, hdrs: dict[str, str]) -> float:
            picks = [ids[(i * 7919) % len(ids)] for i in range(GETS)]
            start = time.perf_counter()
            for entity_id in picks:
                if (await http.get(f"{prefix}/{entity_id}", headers=hdrs)).status_code != 200:
                    raise RuntimeError("a GET by id failed")
            return GETS / (time.perf_counter() - start)

        async with floor:
            served_s, floor_s, served_cpu, floor_cpu = await alternate(
                lambda: timed_list(client, f"/api/v1/items?limit={COUNT}", headers),
                lambda: timed_list(floor, f"/items?limit={COUNT}", {}), ROUNDS)
            served_rate, floor_rate, _, _ = await alternate(lambda: get_rate(client, "/api/v1/items", headers),
                                                      lambda: get_rate(floor, "/items", {}), ROUNDS)
        docs = await raw.find({}).sort("_id", 1).limit(COUNT).to_list(None)
        encode_ms = median_ms([_time(lambda: dumps(docs)) for _ in range(ROUNDS)])
        bare_ms = median_ms([_time(lambda: orjson.dumps(docs, default=str)) for _ in range(ROUNDS)])
    result = {"count": COUNT, "list_ms": served_s * 1000, "list_floor_ms": floor_s * 1000,
              "list_ratio": served_s / floor_s, "list_cpu_ms": served_cpu * 1000, "list_floor_cpu_ms": floor_cpu * 1000,
              "get_rps": served_rate, "get_floor_rps": floor_rate,
              "get_ratio": served_rate / floor_rate, "encode_ms": encode_ms, "encode_floor_ms": bare_ms}
    line(f"setup: insert {COUNT} entities", f"{insert_s:8.1f} s")
    line(f"list: storeengine, limit={COUNT}", f"{result['list_ms']:8.1f} ms")
    line("list: floor (find + to_list + orjson)", f"{result['list_floor_ms']:8.1f} ms")
    line("list: ratio storeengine / floor (target <= 1.3)", f"{result['list_ratio']:8.2f} x")
    line("list: CPU of this process, storeengine", f"{result['list_cpu_ms']:8.1f} ms")
    line("list: CPU of this process, floor", f"{result['list_floor_cpu_ms']:8.1f} ms")
    line("GET by id: storeengine", f"{served_rate:8.0f} req/s")
    line("GET by id: floor (find_one + orjson)", f"{floor_rate:8.0f} req/s")
    line("GET by id: ratio storeengine / floor (>= 0.9)", f"{result['get_ratio']:8.2f} x")
    line("encode only: jsonio.dumps", f"{encode_ms:8.1f} ms")
    line("encode only: orjson.dumps(default=str)", f"{bare_ms:8.1f} ms")
    if os.environ.get("BENCH_JSON"):
        print("@result " + json.dumps(result), flush=True)


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    asyncio.run(main())
