"""Fan-out to 100 subscribers of which half speak Engine.IO v3 (socket.io-client 2.x framing),
next to the same fan-out to 100 Engine.IO v4 subscribers (p50, p99 of the delay from a write's
HTTP answer to its `change` event), measured side by side, the two sides interleaved."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pymongo
import socketio
from _common import ADMIN_PASSWORD, SECRET, database_note, line, percentile, schema_folder
from engineio import packet as eio
from realtime_fanout import CLIENTS, SCHEMA, WARMUP, WRITES, Fanout, engine_writer, free_port, server
from socketio import packet as sio


class V3Client:
    """A bare Engine.IO v3 WebSocket client: the seed's frames, decoded with python-engineio's and
    python-socketio's packet classes (the work python-socketio's own client does per event)."""

    def __init__(self, session: aiohttp.ClientSession, on_change: Callable[[dict[str, Any]], None]) -> None:
        self.session, self.on_change = session, on_change
        self.tasks: list[asyncio.Task[None]] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self, url: str, token: str, store: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=3&transport=websocket"
        self.ws = ws = await self.session.ws_connect(ws_url, headers={"Authorization": f"Bearer {token}"})
        opened = json.loads((await ws.receive_str())[1:])
        if await ws.receive_str() != "40":
            raise RuntimeError("the v3 connection was refused")
        await ws.send_str(f'421["subscribe",{{"store":"{store}"}}]')
        if (answer := await ws.receive_str()) != '431[{"success":true}]':
            raise RuntimeError(f"subscribe refused: {answer}")
        self.tasks = [asyncio.create_task(self._read(ws)), asyncio.create_task(self._ping(ws, opened["pingInterval"]))]

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            pkt = eio.Packet(encoded_packet=message.data)
            if pkt.packet_type == eio.MESSAGE:
                event = sio.Packet(encoded_packet=pkt.data)
                if event.packet_type == sio.EVENT and event.data[0] == "change":
                    self.on_change(event.data[1])

    @staticmethod
    async def _ping(ws: aiohttp.ClientWebSocketResponse, interval_ms: int) -> None:
        while True:  # in v3 the client keeps the connection alive
            await asyncio.sleep(interval_ms / 1000)
            await ws.send_str("2")

    async def disconnect(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.ws is not None:
            await self.ws.close()


class MixedFanout(Fanout):
    """Fanout's CLIENTS subscribers, the odd ones Engine.IO v3 clients."""

    async def connect_mixed(self, url: str, token: str, session: aiohttp.ClientSession) -> None:
        for index in range(CLIENTS):
            client: Any
            on_change = self._callback(index)
            if index % 2:
                client = V3Client(session, on_change)
                await client.connect(url, token, "items")
            else:
                client = socketio.AsyncClient(reconnection=False)
                client.on("change", on_change)
                await client.connect(url, auth={"token": token}, transports=["websocket"])
                if not (await client.call("subscribe", {"store": "items"})).get("success"):
                    raise RuntimeError("subscribe refused")
            self.clients.append(client)

    def _callback(self, index: int) -> Callable[[dict[str, Any]], None]:
        def arrived(data: dict[str, Any]) -> None:
            self._arrived(index, data)
        return arrived


def engine_cmd(port: int, folder: Path) -> list[str]:
    return [sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(folder),
            "--log-level", "warning"]


async def measure(mixed_url: str, v4_url: str) -> tuple[list[float], list[float], int]:
    mixed, all_v4 = MixedFanout(lambda data: data["entity"]["n"]), Fanout(lambda data: data["entity"]["n"])
    mixed_delays: list[float] = []
    v4_delays: list[float] = []
    async with httpx.AsyncClient(base_url=mixed_url) as mixed_http, httpx.AsyncClient(base_url=v4_url) as v4_http, \
            aiohttp.ClientSession() as session:
        mixed_token, mixed_write = await engine_writer(mixed_http)
        v4_token, v4_write = await engine_writer(v4_http)
        await mixed.connect_mixed(mixed_url, mixed_token, session)
        await all_v4.connect(v4_url, {"token": v4_token}, subscribe=True)
        for n in range(-WARMUP, WRITES):  # the first writes warm both sides up and are not counted
            got_mixed = await mixed.delivery(n, mixed_write)
            got_v4 = await all_v4.delivery(n, v4_write)
            if n >= 0:
                mixed_delays += got_mixed
                v4_delays += got_v4
        v3_deliveries = sum(n >= 0 for i in range(1, CLIENTS, 2) for n in mixed.arrivals[i])
        await mixed.close()
        await all_v4.close()
    return mixed_delays, v4_delays, v3_deliveries


async def main() -> None:
    print(f"legacy_fanout: per delivery, the time from a write's HTTP answer to its `change` event at each of\n"
          f"  {CLIENTS} websocket clients (in this process); {WRITES} writes per side after {WARMUP} warm-up, the two\n"
          f"  sides interleaved write by write, each side on its own `storeengine serve` process. mixed: half\n"
          f"  Engine.IO v3 clients (bare WebSocket, the seed's frames), half python-socketio (v4); all-v4:\n"
          f"  python-socketio clients only. {database_note()}", flush=True)
    folder = schema_folder({"items": json.dumps(SCHEMA)})
    database = f"bench_{os.getpid()}_{int(time.time())}"
    ports = free_port(), free_port()
    base = {"STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_ARGON2_TIME_COST": "1",
            "STORE_ARGON2_MEMORY_KIB": "64"}
    try:
        with server(engine_cmd(ports[0], folder), ports[0], {**base, "STORE_DATABASE": f"{database}_a"}) as a, \
                server(engine_cmd(ports[1], folder), ports[1], {**base, "STORE_DATABASE": f"{database}_b"}) as b:
            mixed, v4, v3_deliveries = await measure(a, b)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("STORE_MONGODB_URI"):  # leave no bench database behind on a real server
            mongo: pymongo.MongoClient[dict[str, Any]]
            with pymongo.MongoClient(os.environ["STORE_MONGODB_URI"]) as mongo:
                for suffix in ("_a", "_b"):
                    mongo.drop_database(database + suffix)
    line("mixed: deliveries (of which v3)", f"{len(mixed):8d} of {WRITES * CLIENTS} ({v3_deliveries})")
    line("all-v4: deliveries", f"{len(v4):8d} of {WRITES * CLIENTS}")
    for name, delays in (("mixed v3+v4", mixed), ("all-v4", v4)):
        line(f"{name}: p50 / p99", f"{percentile(delays, 50) * 1000:8.2f} / {percentile(delays, 99) * 1000:.2f} ms")
    line("ratio p50 mixed / all-v4", f"{percentile(mixed, 50) / percentile(v4, 50):8.2f} x")
    line("ratio p99 mixed / all-v4 (target <= 1.5)", f"{percentile(mixed, 99) / percentile(v4, 99):8.2f} x")


if __name__ == "__main__":
    asyncio.run(main())
