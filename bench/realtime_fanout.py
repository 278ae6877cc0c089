"""Delay from a write's HTTP answer to its `change` event at 100 subscribers (p50, p99), next to
python-socketio's own broadcast of the same payload to 100 clients (bench/_bare_sio_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import socketio

from _common import ADMIN_PASSWORD, SECRET, line, percentile

CLIENTS, WRITES, WARMUP = 100, 50, 5
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url + "/socket.io/?EIO=4&transport=polling", timeout=1)
                break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def measure(url: str, auth: dict[str, str] | None, subscribe: bool,
                  write: Callable[[int], Awaitable[None]]) -> list[float]:
    """Per delivery: seconds from the write's HTTP answer to the event at each client."""
    arrivals: list[dict[int, float]] = [{} for _ in range(CLIENTS)]
    clients = []
    for index in range(CLIENTS):
        sio = socketio.AsyncClient(reconnection=False)

        def on_change(data: dict, index: int = index) -> None:
            arrivals[index][data["seq"] if "seq" in data else data["entity"]["n"]] = time.perf_counter()

        sio.on("change", on_change)
        await sio.connect(url, auth=auth, transports=["websocket"])
        if subscribe:
            await sio.call("subscribe", {"store": "items"})
        clients.append(sio)
    delays = []
    for n in range(-WARMUP, WRITES):  # the first writes warm both sides up and are not counted
        await write(n)
        answered = time.perf_counter()
        deadline = answered + 10
        while any(n not in a for a in arrivals) and time.perf_counter() < deadline:
            await asyncio.sleep(0.0005)
        if n >= 0:
            delays += [a[n] - answered for a in arrivals if n in a]
    for sio in clients:
        await sio.disconnect()
    return delays


async def main() -> None:
    print(f"realtime_fanout: {WRITES} writes, {CLIENTS} websocket subscribers, delay from HTTP answer to delivery")
    folder = Path(tempfile.mkdtemp())
    (folder / "items.json").write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}))
    port = free_port()
    env = {"STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_ARGON2_TIME_COST": "1",
           "STORE_ARGON2_MEMORY_KIB": "64"}
    cmd = [sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(folder),
           "--log-level", "warning"]
    with process(cmd, port, env) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = (await http.post("/api/v1/auth/token", json={"login": "admin", "password": ADMIN_PASSWORD})).json()
            headers = {"Authorization": f"Bearer {token['token']}"}
            entity = (await http.post("/api/v1/items", json={"n": -100}, headers=headers)).json()

            async def engine_write(n: int) -> None:
                r = await http.patch(f"/api/v1/items/{entity['_id']}", json={"n": n}, headers=headers)
                assert r.status_code == 200

            engine = await measure(url, {"token": token["token"]}, True, engine_write)
            payload = {"store": "items", "op": "update", "_id": entity["_id"], "entity": entity, "at": ""}
    bare_port = free_port()
    with process([sys.executable, str(HERE / "_bare_sio_server.py"), str(bare_port)], bare_port) as url:
        async with httpx.AsyncClient(base_url=url) as http:

            async def bare_write(n: int) -> None:
                r = await http.post("/emit", json={**payload, "seq": n})
                assert r.status_code == 200

            bare = await measure(url, None, False, bare_write)
    for name, delays in (("storeengine", engine), ("bare python-socketio", bare)):
        line(f"{name}: deliveries", f"{len(delays):8d} of {WRITES * CLIENTS}")
        line(f"{name}: p50 / p99", f"{percentile(delays, 50) * 1000:8.2f} / {percentile(delays, 99) * 1000:.2f} ms")
    line("ratio p50 (target <= 1.5)", f"{percentile(engine, 50) / percentile(bare, 50):8.2f} x")
    line("ratio p99", f"{percentile(engine, 99) / percentile(bare, 99):8.2f} x")


if __name__ == "__main__":
    asyncio.run(main())
