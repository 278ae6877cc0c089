"""References (API.md section 13): what `expand` and checked writes cost.

1. A list of 1,000 entities with `expand` of one reference (100 distinct parents) / the same list
   without `expand` (target <= 1.3x): the expansion is one more `find` with `$in` of 100 ids.
2. POST with two references / POST without (target >= 0.8x req/s): one `find` per reference property.

Through the in-process ASGI app, as a user who owns everything (the access filter is in every query).
`python bench/references.py` runs on the embedded database, `--wire` on the MongoDB-wire server
(mongoeco in .venv-wire, see bench/_wire.py), `--jongodb` on jongodb (the fast wire server of
bench/peers/jongodb.py, installed from npm on first use: mongoeco's own cost, a pure-Python server,
weighs on every round trip a checked write adds), or on STORE_MONGODB_URI when it is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

import httpx
from _common import bearer, database_note, driver_collection, line, running_app
from _wire import wire_server
from bson import ObjectId

from storeengine.core.formats import utcnow

ID = {"type": "string", "format": "objectid"}
PARENTS = json.dumps({"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}})
CHILDREN = json.dumps({"type": "object", "properties": {
    "name": {"type": "string"}, "n": {"type": "integer"},
    "parent": {**ID, "x-ref": "parents"}, "other": {**ID, "x-ref": "parents"},
}})
COUNT, DISTINCT = 1000, 100
# A single page's time swings by half within a run on a shared machine (plain 5.6 to 9.6 ms), so
# 25 interleaved pairs (~0.5 s), with the quartiles of their ratios printed to show the spread.
RUNS = int(os.environ.get("BENCH_RUNS", "25"))
POSTS, ROUNDS = int(os.environ.get("BENCH_POSTS", "60")), 4
READER = {"login": "reader", "password": "reader-password"}


def docs(count: int, owner: ObjectId, extra: Any = None) -> list[dict[str, Any]]:
    base = utcnow()
    out = []
    for i in range(count):
        at = base + timedelta(milliseconds=i)
        out.append({"_id": ObjectId(), "name": f"e{i}", "n": i, **(extra(i) if extra else {}), "owner": owner,
                    "group": None, "access": [], "branch": [], "createdAt": at, "updatedAt": at})
    return out


async def lists(client: httpx.AsyncClient, reader: dict[str, str]) -> tuple[float, float, float, float, list[float]]:
    """Median ms of the list without and with expand=parent, interleaved: wall, then CPU of this
    process (client and server; on the wire, the database server's own CPU is not in it); and the
    wall ratio of each pair."""

    async def page(query: str) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        r: httpx.Response = await client.get(f"/api/v1/children?limit={COUNT}{query}", headers=reader)
        took = time.perf_counter() - start, time.process_time() - cpu
        if r.status_code != 200 or len(r.json()) != COUNT or (query and "_expand" not in r.json()[0]):
            raise RuntimeError(f"unexpected answer {r.status_code}")
        return took

    plain: list[tuple[float, float]] = []
    expanded: list[tuple[float, float]] = []
    await page("")
    await page("&expand=parent")
    for _ in range(RUNS):
        plain.append(await page(""))
        expanded.append(await page("&expand=parent"))

    def ms(runs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(run[i] for run in runs) * 1000

    pairs = [e[0] / p[0] for p, e in zip(plain, expanded, strict=True)]
    return ms(plain, 0), ms(expanded, 0), ms(plain, 1), ms(expanded, 1), pairs


async def writes(client: httpx.AsyncClient, reader: dict[str, str],
                 ids: list[ObjectId]) -> tuple[float, float, float, float]:
    """Median req/s of POSTs without and with two references, interleaved rounds; then the median
    CPU ms per POST of this process for each."""

    async def posts(body: Any) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(POSTS):
            r = await client.post("/api/v1/children", json=body(i), headers=reader)
            if r.status_code != 201:
                raise RuntimeError(f"POST answered {r.status_code}: {r.text}")
        return POSTS / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / POSTS

    def bare(i: int) -> dict[str, Any]:
        return {"name": "x", "n": i}

    def with_refs(i: int) -> dict[str, Any]:
        return {"name": "x", "n": i, "parent": str(ids[i % DISTINCT]), "other": str(ids[(i + 1) % DISTINCT])}

    without: list[tuple[float, float]] = []
    with_two: list[tuple[float, float]] = []
    await posts(bare)
    for _ in range(ROUNDS):
        without.append(await posts(bare))
        with_two.append(await posts(with_refs))

    def median(runs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(run[i] for run in runs)

    return median(without, 0), median(with_two, 0), median(without, 1), median(with_two, 1)


async def main() -> dict[str, float]:
    print(f"references: GET /api/v1/children?limit={COUNT} with and without expand=parent ({DISTINCT} distinct\n"
          f"  parents; median of {RUNS} runs, interleaved), and POST with two references vs without ({ROUNDS}\n"
          f"  interleaved rounds of {POSTS}); a user who owns every entity; {database_note()}", flush=True)
    async with running_app({"parents": PARENTS, "children": CHILDREN}) as (client, ctx):
        admin = await bearer(client)
        r = await client.post("/api/v1/users", json=READER, headers=admin)
        r.raise_for_status()
        reader = await bearer(client, READER["login"], READER["password"])
        owner = ObjectId(r.json()["_id"])
        parents = docs(DISTINCT, owner)
        await driver_collection(ctx, "parents").insert_many(parents)
        ids = [p["_id"] for p in parents]
        await driver_collection(ctx, "children").insert_many(
            docs(COUNT, owner, lambda i: {"parent": ids[i % DISTINCT]}))
        plain_ms, expand_ms, plain_cpu, expand_cpu, pairs = await lists(client, reader)
        bare_rps, refs_rps, bare_cpu, refs_cpu = await writes(client, reader, ids)
    line(f"list of {COUNT}, no expand", f"{plain_ms:8.1f} ms  (CPU {plain_cpu:.1f} ms)")
    line(f"list of {COUNT}, expand=parent", f"{expand_ms:8.1f} ms  (CPU {expand_cpu:.1f} ms)")
    line("ratio expand / plain (target <= 1.3)", f"{expand_ms / plain_ms:8.2f} x  (CPU {expand_cpu / plain_cpu:.2f} x)")
    if len(pairs) > 1:
        low, _, high = statistics.quantiles(pairs, n=4)
        line("  the ratio of each pair, quartiles", f"{low:8.2f} x to {high:.2f} x")
    line("POST without references", f"{bare_rps:8.0f} req/s  (CPU {bare_cpu:.2f} ms per POST)")
    line("POST with two references", f"{refs_rps:8.0f} req/s  (CPU {refs_cpu:.2f} ms per POST)")
    line("ratio with / without (target >= 0.8)", f"{refs_rps / bare_rps:8.2f} x  (CPU {bare_cpu / refs_cpu:.2f} x)")
    return {"list_ratio": expand_ms / plain_ms, "post_ratio": refs_rps / bare_rps}


if __name__ == "__main__":
    if "--jongodb" in sys.argv[1:]:
        from peers.jongodb import jongodb

        with jongodb("references-jongodb") as (fast, _):
            os.environ["STORE_MONGODB_URI"] = fast
            asyncio.run(main())
    elif "--wire" in sys.argv[1:]:
        with wire_server() as uri:
            if uri is None:
                sys.exit("the MongoDB-wire lane is not installed (make wire-env)")
            os.environ["STORE_MONGODB_URI"] = uri
            os.environ.setdefault("STORE_SERVER_SELECTION_TIMEOUT_MS", "20000")
            asyncio.run(main())
    else:
        asyncio.run(main())
