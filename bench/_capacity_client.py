"""A client process of realtime_capacity: many raw Engine.IO v4 / Socket.IO websocket connections
(aiohttp, no python-socketio client), so thousands of subscribers cost little client CPU.

Driven over a multiprocessing pipe by the parent: ("open", url, [(token or None, store), ...]),
("reset",), ("count", first_n), ("collect",), ("close",). Each arrival of a `change` event is timed with time.time()
and filed under the write number `n` found in its payload.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

N_FIELD = re.compile(r'"n":(-?\d+)')
OPENING = 64  # handshakes in flight per process


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Sockets:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []
        self.arrivals: dict[int, list[float]] = defaultdict(list)
        self.closed = 0
        self.cpu_mark = time.process_time()

    async def open_all(self, url: str, plan: list[tuple[str | None, str | None]]) -> list[str]:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        gate = asyncio.Semaphore(OPENING)
        errors: list[str] = []

        async def one(token: str | None, store: str | None) -> None:
            async with gate:
                try:
                    await self._open(url, token, store)
                except Exception as exc:  # reported to the parent, which fails the run
                    errors.append(repr(exc))

        await asyncio.gather(*(one(token, store) for token, store in plan))
        return errors

    async def _open(self, url: str, token: str | None, store: str | None) -> None:
        assert self.session is not None
        ws = await self.session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket", autoping=True,
                                           max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_receive=None))
        opened = await ws.receive_str(timeout=30)
        if not opened.startswith("0{"):
            raise RuntimeError(f"no Engine.IO open packet: {opened[:80]}")
        handshake = json.loads(opened[1:])
        # as socket.io-client does: the server is gone after a ping interval plus timeout of silence
        silence = (handshake["pingInterval"] + handshake["pingTimeout"]) / 1000
        await ws.send_str("40" + (json.dumps({"token": token}) if token else ""))
        connected = await ws.receive_str(timeout=30)
        if not connected.startswith("40"):
            raise RuntimeError(f"Socket.IO connect refused: {connected[:120]}")
        if store is not None:
            await ws.send_str("421" + json.dumps(["subscribe", {"store": store}]))
            ack = await ws.receive_str(timeout=30)
            if not ack.startswith("431") or '"success":true' not in ack.replace(" ", ""):
                raise RuntimeError(f"subscribe refused: {ack[:120]}")
        self.sockets.append(ws)
        self.readers.append(asyncio.create_task(self._read(ws, silence)))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, silence: float) -> None:
        while True:
            try:
                message = await ws.receive(timeout=silence)
            except TimeoutError:
                break
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data: str = message.data
            if data == "2":  # Engine.IO ping: answer, or the server drops us after its ping timeout
                await ws.send_str("3")
            elif data.startswith("42"):
                found = N_FIELD.search(data)
                if found:
                    self.arrivals[int(found.group(1))].append(time.time())
        self.closed += 1

    def collect(self) -> dict[str, Any]:
        return {"arrivals": dict(self.arrivals), "cpu": time.process_time() - self.cpu_mark,
                "closed": self.closed, "open": len(self.sockets) - self.closed}

    def reset(self) -> None:
        self.arrivals.clear()
        self.cpu_mark = time.process_time()

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.sockets, self.readers = [], []
        self.closed = 0
        if self.session is not None:
            await self.session.close()
            self.session = None


async def serve(conn: Connection) -> None:
    sockets = Sockets()
    while True:
        command = await asyncio.to_thread(conn.recv)
        if command[0] == "open":
            conn.send(await sockets.open_all(command[1], command[2]))
        elif command[0] == "reset":
            sockets.reset()
            conn.send(None)
        elif command[0] == "collect":
            conn.send(sockets.collect())
        elif command[0] == "count":  # arrivals of writes numbered from command[1] on
            conn.send(sum(len(times) for n, times in sockets.arrivals.items() if n >= command[1]))
        elif command[0] == "close":
            await sockets.close()
            conn.send(None)
        else:  # "exit"
            await sockets.close()
            conn.send(None)
            return


def main(conn: Connection) -> None:
    raise_open_files_limit()
    asyncio.run(serve(conn))
