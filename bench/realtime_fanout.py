"""Delay from a write's HTTP answer to its `change` event at 100 subscribers (p50, p99), next to
python-socketio's own broadcast of the same payload to 100 clients (bench/_bare_sio_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import socketio
from _common import ADMIN_PASSWORD, SECRET, database_note, line, percentile, schema_folder, server_process

CLIENTS, WRITES, WARMUP = 100, 50, 5
HERE = Path(__file__).resolve().parent
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "name": {"type": "string"}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start a server process, wait for its /healthz, and stop it (this process only) at the end."""
    with server_process(cmd, port, env) as (url, _pid):
        yield url


class Fanout:
    """CLIENTS socket.io clients of one server; `delivery` times one write's event at each of them."""

    def __init__(self, seq: Callable[[dict[str, Any]], int]) -> None:
        self.seq = seq  # which write an event belongs to
        self.clients: list[socketio.AsyncClient] = []
        self.arrivals: list[dict[int, float]] = [{} for _ in range(CLIENTS)]
        self.pending: dict[int, tuple[int, asyncio.Event]] = {}
        self.last: dict[str, Any] = {}

    async def connect(self, url: str, auth: dict[str, str] | None, subscribe: bool) -> None:
        for index in range(CLIENTS):
            sio = socketio.AsyncClient(reconnection=False)
            sio.on("change", lambda data, index=index: self._arrived(index, data))
            await sio.connect(url, auth=auth, transports=["websocket"])
            if subscribe:
                answer = await sio.call("subscribe", {"store": "items"})
                if not answer.get("success", True):
                    raise RuntimeError(f"subscribe refused: {answer}")
            self.clients.append(sio)

    def _arrived(self, index: int, data: dict[str, Any]) -> None:
        now, n = time.perf_counter(), self.seq(data)
        if n not in self.pending:  # not one of the measured writes
            return
        self.arrivals[index][n] = now
        self.last = data
        left, done = self.pending[n]
        self.pending[n] = (left - 1, done)
        if left == 1:
            done.set()

    async def delivery(self, n: int, write: Callable[[int], Awaitable[None]]) -> list[float]:
        """Seconds from write n's HTTP answer to its event at each client (missing ones left out)."""
        done = asyncio.Event()
        self.pending[n] = (CLIENTS, done)
        await write(n)
        answered = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 10)
        return [a[n] - answered for a in self.arrivals if n in a]

    async def close(self) -> None:
        for sio in self.clients:
            await sio.disconnect()


async def engine_writer(http: httpx.AsyncClient) -> tuple[str, Callable[[int], Awaitable[None]]]:
    """The admin's token, and a write that PATCHes one entity's `n` to the write's number."""
    r = await http.post("/api/v1/auth/token", json={"login": "admin", "password": ADMIN_PASSWORD})
    token = r.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    entity = (await http.post("/api/v1/items", json={"n": -100, "name": "fan-out"}, headers=headers)).json()

    async def write(n: int) -> None:
        (await http.patch(f"/api/v1/items/{entity['_id']}", json={"n": n}, headers=headers)).raise_for_status()

    return token, write


async def main() -> None:
    print(f"realtime_fanout: per delivery, the time from a write's HTTP answer to its `change` event at each of\n"
          f"  {CLIENTS} websocket clients (in this process); {WRITES} writes per side after {WARMUP} warm-up, the two\n"
          f"  sides interleaved write by write. storeengine: PATCH on a `storeengine serve` process, clients\n"
          f"  subscribed as admin; baseline: bench/_bare_sio_server.py (python-socketio under uvicorn)\n"
          f"  broadcasting a captured `change` payload on POST /emit. {database_note()}", flush=True)
    folder = schema_folder({"items": json.dumps(SCHEMA)})
    port, bare_port = free_port(), free_port()
    database = f"bench_{os.getpid()}_{int(time.time())}"
    env = {"STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_ARGON2_TIME_COST": "1",
           "STORE_ARGON2_MEMORY_KIB": "64", "STORE_DATABASE": database}
    engine_cmd = [sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(folder),
                  "--log-level", "warning"]
    bare_cmd = [sys.executable, str(HERE / "_bare_sio_server.py"), str(bare_port)]
    engine_fanout, bare_fanout = Fanout(lambda data: data["entity"]["n"]), Fanout(lambda data: data["seq"])
    engine: list[float] = []
    bare: list[float] = []
    try:
        with server(engine_cmd, port, env) as url, server(bare_cmd, bare_port) as bare_url:
            async with httpx.AsyncClient(base_url=url) as http, httpx.AsyncClient(base_url=bare_url) as bare_http:
                token, engine_write = await engine_writer(http)

                async def bare_write(n: int) -> None:
                    (await bare_http.post("/emit", json={**engine_fanout.last, "seq": n})).raise_for_status()

                await engine_fanout.connect(url, {"token": token}, subscribe=True)
                await engine_fanout.delivery(-WARMUP - 1, engine_write)  # captures a real payload
                await bare_fanout.connect(bare_url, None, subscribe=False)
                for n in range(-WARMUP, WRITES):  # the first writes warm both sides up and are not counted
                    engine_delays = await engine_fanout.delivery(n, engine_write)
                    bare_delays = await bare_fanout.delivery(n, bare_write)
                    if n >= 0:
                        engine += engine_delays
                        bare += bare_delays
                payload_bytes = len(json.dumps(engine_fanout.last))
                await engine_fanout.close()
                await bare_fanout.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("STORE_MONGODB_URI"):  # leave no bench database behind on a real server
            with pymongo.MongoClient[dict[str, Any]](os.environ["STORE_MONGODB_URI"]) as mongo:
                mongo.drop_database(database)
    line("captured change payload", f"{payload_bytes:8d} bytes of JSON")
    for name, delays in (("storeengine", engine), ("bare python-socketio", bare)):
        line(f"{name}: deliveries", f"{len(delays):8d} of {WRITES * CLIENTS}")
        line(f"{name}: p50 / p99", f"{percentile(delays, 50) * 1000:8.2f} / {percentile(delays, 99) * 1000:.2f} ms")
    line("ratio p50 (target <= 1.5)", f"{percentile(engine, 50) / percentile(bare, 50):8.2f} x")
    line("ratio p99 (target <= 1.5)", f"{percentile(engine, 99) / percentile(bare, 99):8.2f} x")


if __name__ == "__main__":
    asyncio.run(main())
