"""The change feed's costs, side by side in one run:

1. POST throughput with the feed next to the same app with the feed switched off
   (STORE_CHANGES_FEED=false), and the database calls one write costs on each side;
2. replaying 10,000 missed changes to a Socket.IO subscriber (`since`) next to listing
   10,000 entities (both against one `storeengine serve` process);
3. live fan-out to 100 subscribers against bare python-socketio (bench/realtime_fanout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import realtime_fanout
import socketio
from _common import (
    ADMIN_PASSWORD,
    FAST_HASH,
    SECRET,
    counting_calls,
    data_dir,
    database_note,
    lifespan,
    line,
    schema_folder,
)

from storeengine.app import create_app
from storeengine.settings import Settings

SCHEMA = json.dumps({"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}})
POSTS, CONCURRENCY, ROUNDS = 400, 8, 5
REPLAY, RUNS = 10_000, 3
CALLS = ("find_one", "find", "count", "insert", "update_if", "update", "delete", "increment")


@contextlib.asynccontextmanager
async def app_client(folder: Path, feed: bool) -> AsyncIterator[httpx.AsyncClient]:
    with data_dir() as data:
        settings = Settings(schema_dir=folder, secret=SECRET, admin_password=ADMIN_PASSWORD, changes_feed=feed,
                            data_dir=data, database=f"bench_feed_{feed}_{os.getpid()}",
                            **FAST_HASH)  # type: ignore[arg-type]
        app = create_app(settings)
        async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
            yield c
            if settings.mongodb_uri:
                await app.other_asgi_app.app.state.ctx.storage.client.drop_database(settings.database)  # type: ignore[attr-defined]


async def token(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", json={"login": "admin", "password": ADMIN_PASSWORD})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def posts_per_second(client: httpx.AsyncClient, headers: dict[str, str]) -> float:
    async def worker(w: int) -> None:
        for i in range(POSTS // CONCURRENCY):
            r = await client.post("/api/v1/items", json={"name": f"{w}-{i}", "n": i}, headers=headers)
            if r.status_code != 201:
                raise RuntimeError(r.text)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return POSTS / (time.perf_counter() - start)


async def calls_per_write(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    out = []
    with counting_calls(CALLS) as counts:
        created = (await client.post("/api/v1/items", json={"n": 0}, headers=headers)).json()
        out.append(f"create {sum(counts.values())}")
        counts.update(dict.fromkeys(CALLS, 0))
        await client.patch(f"/api/v1/items/{created['_id']}", json={"n": 1}, headers=headers)
        out.append(f"update {sum(counts.values())}")
        counts.update(dict.fromkeys(CALLS, 0))
        await client.delete(f"/api/v1/items/{created['_id']}", headers=headers)
        out.append(f"delete {sum(counts.values())}")
    return ", ".join(out)


async def throughput() -> None:
    print(f"feed (1): POST /api/v1/items through the in-process ASGI app, {CONCURRENCY} concurrent writers,\n"
          f"  {POSTS} writes per round, {ROUNDS} alternating rounds per side (median); {database_note()}", flush=True)
    folder = schema_folder({"items": SCHEMA})
    try:
        async with app_client(folder, True) as on, app_client(folder, False) as off:
            on_h, off_h = await token(on), await token(off)
            rates: dict[bool, list[float]] = {True: [], False: []}
            await posts_per_second(on, on_h)  # warm-up, both sides
            await posts_per_second(off, off_h)
            for _ in range(ROUNDS):
                rates[True].append(await posts_per_second(on, on_h))
                rates[False].append(await posts_per_second(off, off_h))
            calls_on, calls_off = await calls_per_write(on, on_h), await calls_per_write(off, off_h)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    with_feed, without = statistics.median(rates[True]), statistics.median(rates[False])
    line("POST/s with the feed", f"{with_feed:8.0f}")
    line("POST/s with the feed switched off", f"{without:8.0f}")
    line("ratio on / off (target >= 0.8)", f"{with_feed / without:8.2f} x")
    line("database calls with the feed", calls_on)
    line("database calls without it", calls_off)


async def replay_vs_list(url: str, headers: dict[str, str], mark: str) -> tuple[float, float]:
    """Seconds to list 10,000 entities, and to receive 10,000 replayed changes after `mark`."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        start = time.perf_counter()
        r = await http.get(f"/api/v1/items?limit={REPLAY}", headers=headers)
        listed = time.perf_counter() - start
        if r.status_code != 200 or len(r.json()) != REPLAY:
            raise RuntimeError(f"list: {r.status_code}")
    sio = socketio.AsyncClient(reconnection=False)
    got = 0
    done = asyncio.Event()

    def on_change(data: dict[str, Any]) -> None:
        nonlocal got
        got += 1
        if got == REPLAY:
            done.set()

    sio.on("change", on_change)
    await sio.connect(url, auth={"token": headers["Authorization"][7:]}, transports=["websocket"])
    start = time.perf_counter()
    answer = await sio.call("subscribe", {"store": "items", "since": mark})
    if answer != {"success": True}:
        raise RuntimeError(f"subscribe: {answer}")
    await asyncio.wait_for(done.wait(), 300)
    replayed = time.perf_counter() - start
    await sio.disconnect()
    return listed, replayed


async def replay() -> None:
    print(f"feed (2): {REPLAY} changes missed by a Socket.IO subscriber, replayed after `subscribe` with `since`\n"
          f"  (until the last `change` event arrives), next to GET /api/v1/items?limit={REPLAY} of the same entities;\n"
          f"  one `storeengine serve` process, client in this process, websocket; median of {RUNS}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="storeengine-bench-"))
    (folder / "items.json").write_text(SCHEMA)
    port = realtime_fanout.free_port()
    database = f"bench_{os.getpid()}_{int(time.time())}"
    env = {"STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_ARGON2_TIME_COST": "1",
           "STORE_ARGON2_MEMORY_KIB": "64", "STORE_DATABASE": database}
    cmd = [sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(folder),
           "--log-level", "warning"]
    try:
        with realtime_fanout.server(cmd, port, env) as url:
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                headers = await token(http)
                mark = (await http.get("/api/v1/items", headers=headers)).headers["X-Change-Cursor"]

                async def writer(w: int) -> None:
                    for i in range(REPLAY // 16):
                        (await http.post("/api/v1/items", json={"name": f"{w}-{i}", "n": i},
                                         headers=headers)).raise_for_status()

                await asyncio.gather(*(writer(w) for w in range(16)))
            runs = [await replay_vs_list(url, headers, mark) for _ in range(RUNS)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("STORE_MONGODB_URI"):
            with pymongo.MongoClient(os.environ["STORE_MONGODB_URI"]) as mongo:  # type: ignore[var-annotated]
                mongo.drop_database(database)
    listed = statistics.median(r[0] for r in runs)
    replayed = statistics.median(r[1] for r in runs)
    line(f"list {REPLAY} entities", f"{listed * 1000:8.0f} ms")
    line(f"replay {REPLAY} changes over Socket.IO", f"{replayed * 1000:8.0f} ms")
    line("ratio replay / list (target <= 1.5)", f"{replayed / listed:8.2f} x")


async def main() -> None:
    await throughput()
    await replay()
    print("feed (3): live fan-out, as bench/realtime_fanout.py:", flush=True)
    await realtime_fanout.main()


if __name__ == "__main__":
    asyncio.run(main())
