"""Tenants (API.md 12, issue 22): what selecting a tenant costs a request, and what a provisioning
copy costs every other client.

1. GET /api/v1/items/<id> with `Api-Key` + a tenant's token, next to the same GET in the public
   database (a public token, no Api-Key), alternating rounds; req/s and CPU per request (the client
   runs in the same process: the CPU figure is both sides). Target: ratio >= 0.95 on the wire lane.
2. `/healthz` probed every 20 ms while a tenant is provisioned by copy from a public store of
   BENCH_TENANT_COPY entities (default 100,000); p50/p99/max latency and the copy's rate.
   Target: p99 <= 100 ms. The probes share the event loop with the copy, and each is timed from
   the moment it was due (a sleep that wakes late counts), so the latency is what any other
   client would wait for.

3. What BENCH_TENANTS_OPEN (50) open tenants add to the process: RSS, threads, asyncio tasks.

The embedded database unless STORE_MONGODB_URI is set (run_all.py runs both).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import threading
import time
from pathlib import Path

import httpx
from _common import bearer, database_note, driver_collection, line, percentile, running_app
from bson import ObjectId

SCHEMA = json.dumps({"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}})
GETS, WARMUP, ROUNDS = int(os.environ.get("BENCH_GETS", "1000")), 100, 5
COPY = int(os.environ.get("BENCH_TENANT_COPY", "100000"))
OPEN = int(os.environ.get("BENCH_TENANTS_OPEN", "50"))
PROBE_SECONDS = 0.02
LOAD_BATCH = 200  # mongoeco checks each insert's _id against every document: big batches time out
BOSS = {"login": "boss", "password": "boss-password-1"}


async def rate(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[float, float]:
    """Sequential req/s over GETS requests after WARMUP, and CPU ms per request."""
    for _ in range(WARMUP):
        if (r := await client.get(url, headers=headers)).status_code != 200:
            raise RuntimeError(f"the GET failed: {r.status_code} {r.text}")
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(GETS):
        await client.get(url, headers=headers)
    wall = time.perf_counter() - start
    return GETS / wall, (time.process_time() - cpu) / GETS * 1000


async def create_tenant(client: httpx.AsyncClient, admin: dict[str, str], name: str, copy: bool) -> str:
    r = await client.post("/api/v1/_tenants", json={"name": name, "admin": BOSS, "copy": copy}, headers=admin)
    if r.status_code != 201:
        raise RuntimeError(f"creating the tenant failed: {r.status_code} {r.text}")
    return str(r.json()["key"])


async def get_by_id(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, float]:
    key = await create_tenant(client, admin, "bench-get", copy=False)
    r = await client.post("/api/v1/auth/token", json=BOSS, headers={"Api-Key": key})
    tenant = {"Api-Key": key, "Authorization": f"Bearer {r.json()['token']}"}
    public_id = (await client.post("/api/v1/items", json={"name": "x"}, headers=admin)).json()["_id"]
    tenant_id = (await client.post("/api/v1/items", json={"name": "x"}, headers=tenant)).json()["_id"]
    runs: dict[str, list[tuple[float, float]]] = {"tenant": [], "public": []}
    for _ in range(ROUNDS):  # alternating, so that drift on the machine favours neither
        runs["tenant"].append(await rate(client, f"/api/v1/items/{tenant_id}", tenant))
        runs["public"].append(await rate(client, f"/api/v1/items/{public_id}", admin))
    out = {}
    for name, samples in runs.items():
        out[f"{name}_rps"] = statistics.median(s[0] for s in samples)
        out[f"{name}_cpu_ms"] = statistics.median(s[1] for s in samples)
    out["get_ratio"] = out["tenant_rps"] / out["public_rps"]
    line("GET by id, public database (req/s)", f"{out['public_rps']:8.0f}   CPU {out['public_cpu_ms']:.3f} ms/req")
    line("GET by id, tenant by Api-Key (req/s)", f"{out['tenant_rps']:8.0f}   CPU {out['tenant_cpu_ms']:.3f} ms/req")
    line("ratio tenant / public (target >= 0.95)", f"{out['get_ratio']:8.2f}"
         f"   CPU ratio {out['public_cpu_ms'] / out['tenant_cpu_ms']:.2f}")
    return out


async def healthz_during_copy(client: httpx.AsyncClient, admin: dict[str, str], ctx: object) -> dict[str, float]:
    template = (await client.post("/api/v1/items", json={"name": "template", "n": 0}, headers=admin)).json()
    raw = driver_collection(ctx, "items")  # type: ignore[arg-type]
    stored = await raw.find_one({"_id": ObjectId(template["_id"])})
    start = time.perf_counter()
    for first in range(1, COPY, LOAD_BATCH):
        batch = range(first, min(COPY, first + LOAD_BATCH))
        await raw.insert_many([{**stored, "_id": ObjectId(), "n": i} for i in batch])
    line("public entities to copy", f"{COPY:8d}   (loaded in {time.perf_counter() - start:.1f} s)")
    for _ in range(20):
        await client.get("/healthz")
    latencies: list[float] = []
    lags: list[float] = []
    lagging = asyncio.create_task(loop_lag(lags))
    started = time.perf_counter()
    await create_tenant(client, admin, "bench-copy", copy=True)
    due = time.perf_counter()
    while True:
        # From the moment the probe was due, not from when the loop got round to it: a client's
        # request arriving then would have waited for the loop too.
        if (await client.get("/healthz")).status_code != 200:
            raise RuntimeError("/healthz failed during the copy")
        latencies.append(time.perf_counter() - due)
        status = (await client.get("/api/v1/_tenants/bench-copy", headers=admin)).json()["status"]
        if status == "ready":
            break
        due = time.perf_counter() + PROBE_SECONDS
        await asyncio.sleep(PROBE_SECONDS)
    copy_s = time.perf_counter() - started
    lagging.cancel()
    out = {"healthz_p50_ms": percentile(latencies, 50) * 1000, "healthz_p99_ms": percentile(latencies, 99) * 1000,
           "healthz_max_ms": max(latencies) * 1000, "copy_s": copy_s, "copy_rate": COPY / copy_s,
           "probes": float(len(latencies)), "loop_lag_p99_ms": percentile(lags, 99) * 1000,
           "loop_lag_max_ms": max(lags) * 1000}
    line("copy: seconds / entities per second", f"{copy_s:8.1f}   {COPY / copy_s:.0f}/s")
    line(f"/healthz during the copy ({len(latencies)} probes): p50", f"{out['healthz_p50_ms']:8.1f} ms")
    line("/healthz during the copy: p99 (target <= 100 ms)", f"{out['healthz_p99_ms']:8.1f} ms")
    line("/healthz during the copy: max", f"{out['healthz_max_ms']:8.1f} ms")
    # /healthz pings the database: on the wire its latency is the database's too (mongoeco is single-
    # threaded and busy with the copy's inserts). The event loop's own lag is this process's share.
    lag = f"{out['loop_lag_p99_ms']:8.1f} / {out['loop_lag_max_ms']:.1f} ms"
    line("event-loop lag during the copy: p99 / max", lag)
    return out


def rss_mb() -> float:
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith("VmRSS:"):
            return int(text.split()[1]) / 1024
    return 0.0


async def cost_per_tenant(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, float]:
    """What OPEN more tenants, each created empty and served one request, add to this process."""
    gc.collect()
    before = (rss_mb(), threading.active_count(), len(asyncio.all_tasks()))
    for n in range(OPEN):
        key = await create_tenant(client, admin, f"open-{n}", copy=False)
        r = await client.post("/api/v1/auth/token", json=BOSS, headers={"Api-Key": key})
        await client.get("/api/v1/items", headers={"Authorization": f"Bearer {r.json()['token']}"})
    gc.collect()
    after = (rss_mb(), threading.active_count(), len(asyncio.all_tasks()))
    out = {"rss_per_tenant_mb": (after[0] - before[0]) / OPEN, "threads_per_tenant": (after[1] - before[1]) / OPEN,
           "tasks_per_tenant": (after[2] - before[2]) / OPEN}
    line(f"{OPEN} tenants open: RSS per tenant", f"{out['rss_per_tenant_mb']:8.2f} MB")
    line("threads / asyncio tasks per tenant", f"{out['threads_per_tenant']:8.1f} / {out['tasks_per_tenant']:.1f}")
    # Closed as idle (what STORE_TENANT_IDLE_SECONDS does after 5 minutes): what stays behind.
    tenancy = client._transport.app.other_asgi_app.app.state.tenancy  # type: ignore[attr-defined]
    closed = tenancy.close_idle(time.monotonic() + tenancy.idle_seconds + 1)
    await asyncio.gather(*tenancy._closing)
    await asyncio.sleep(0.2)  # the closed SQLite threads end
    gc.collect()
    idle = (rss_mb(), threading.active_count(), len(asyncio.all_tasks()))
    out.update({"closed": float(closed), "rss_left_per_tenant_mb": (idle[0] - before[0]) / OPEN,
                "threads_left": float(idle[1] - before[1]), "tasks_left": float(idle[2] - before[2])})
    line(f"closed as idle: {closed}; RSS left per tenant", f"{out['rss_left_per_tenant_mb']:8.2f} MB")
    line("threads / asyncio tasks left (all tenants)", f"{out['threads_left']:8.0f} / {out['tasks_left']:.0f}")
    for n in range(OPEN):
        await client.delete(f"/api/v1/_tenants/open-{n}", headers=admin)
    return out


async def loop_lag(lags: list[float], every: float = 0.01) -> None:
    """How late a 10 ms sleep wakes up: what any request waits before this process looks at it."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(every)
        lags.append(max(0.0, time.perf_counter() - t0 - every))


async def main() -> None:
    print(f"tenants: GET by id with Api-Key vs the public database ({ROUNDS} alternating rounds of {GETS} sequential\n"
          f"  requests, in-process ASGI), then /healthz every {PROBE_SECONDS * 1000:.0f} ms while a tenant is"
          f" provisioned by copy of {COPY} entities; {database_note()}", flush=True)
    async with running_app({"items": SCHEMA}) as (client, ctx):
        admin = await bearer(client)
        result = await get_by_id(client, admin)
        result.update(await cost_per_tenant(client, admin))
        result.update(await healthz_during_copy(client, admin, ctx))
        # leave no tenant database behind on a real server
        for name in ("bench-get", "bench-copy"):
            await client.delete(f"/api/v1/_tenants/{name}", headers=admin)
    # No `@result` line: run_all.py's table is the list / GET one (its keys would be overwritten).
    del result


if __name__ == "__main__":
    asyncio.run(main())
