"""Fan-out of one write to 1,000 filtered subscribers (10 distinct filters) next to the same
fan-out to 1,000 unfiltered subscribers (API.md 14; target p99 <= 1.5x).

In-process, like bench/fanout_allocations.py: a real python-socketio AsyncServer with storeengine's
BatchManager, 1,000 real engineio AsyncSocket objects (no network), and the real SocketDelivery
(storeengine/realtime/live.py): subscribers subscribe through `SocketDelivery.subscribe` and the
server's room rules (`_rooms`), each a user of one group; the written entity is in that group, so
every write reaches all 1,000 subscribers on both sides. One sample is `fan_out` of an update's
feed record until every recipient's packet is queued on its socket (matching, rooms, encoding,
queueing: what the tailer awaits per change); the two sides alternate write by write.

Usage: python bench/filtered_fanout.py [--subscribers 1000] [--filters 10] [--writes 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import socketio
from _common import line, percentile, schema_folder
from bson import ObjectId
from engineio.async_socket import AsyncSocket

from storeengine.model.access import Principal
from storeengine.model.schema import Registry, StoreSchema
from storeengine.realtime.live import SocketDelivery, parse_live_filter
from storeengine.realtime.server import _rooms
from storeengine.realtime.transport.fanout import BatchManager

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "name": {"type": "string"}}}
WARMUP = 20


class _Tail:
    """What SocketDelivery needs of the feed's tail here: a ready tailer per store."""

    def __init__(self) -> None:
        self.consumers: list[Any] = []
        ready = asyncio.Event()
        ready.set()
        self._tailer = SimpleNamespace(ready=ready)

    def tailer(self, store: StoreSchema) -> Any:
        return self._tailer


class Side:
    """`subscribers` sockets of one server, subscribed with `filters` distinct filters (0: none)."""

    def __init__(self, store: StoreSchema, group: ObjectId) -> None:
        self.store, self.group = store, group
        self.sio = socketio.AsyncServer(async_mode="asgi", client_manager=BatchManager())
        self.delivery = SocketDelivery(_Tail(), self.sio)  # type: ignore[arg-type]
        self.sockets: list[AsyncSocket] = []

    async def subscribe(self, subscribers: int, filters: int) -> None:
        for i in range(subscribers):
            eio_sid = f"eio{i}"
            sock = AsyncSocket(self.sio.eio, eio_sid)
            sock.connected = True
            self.sio.eio.sockets[eio_sid] = sock
            sid = await self.sio.manager.connect(eio_sid, "/")
            principal = Principal(ObjectId(), (self.group,))
            flt = None
            if filters:  # all of them match the written entity: every subscriber gets every write
                text = json.dumps({"name": "fan-out", "n": {"$gte": -(i % filters)}})
                flt = parse_live_filter(text, self.store.seen_by(principal))
            rooms = _rooms(self.store, principal, None if flt is None else flt.key)

            async def join(sid: str = sid, rooms: list[str] = rooms) -> None:
                for room in rooms:
                    await self.sio.enter_room(sid, room)

            async def who(principal: Principal = principal) -> Principal:
                return principal

            await self.delivery.subscribe(sid, self.store, None, flt, join, who)
            self.sockets.append(sock)

    async def write(self, record: dict[str, Any]) -> float:
        now = time.time()
        for sock in self.sockets:  # no client answers pings here: keep them from timing out
            sock.last_ping = now
        start = time.perf_counter()
        await self.delivery.fan_out(self.store, record, [])
        took = time.perf_counter() - start
        queued = 0
        for sock in self.sockets:
            while not sock.queue.empty():
                sock.queue.get_nowait()
                queued += 1
        if queued != len(self.sockets):
            raise RuntimeError(f"{queued} packets for {len(self.sockets)} subscribers")
        return took


def record(seq: int, owner: ObjectId, group: ObjectId, entity_id: ObjectId) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = {"_id": entity_id, "owner": owner, "group": group, "access": [], "branch": [], "name": "fan-out",
            "createdAt": now, "updatedAt": now}
    return {"seq": seq, "op": "update", "id": entity_id, "entity": {**base, "n": seq}, "before": {**base, "n": seq - 1},
            "at": now, "by": owner}


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--filters", type=int, default=10)
    p.add_argument("--writes", type=int, default=3000)
    args = p.parse_args()
    print(f"filtered_fanout: fan-out of one update to {args.subscribers} subscribers, {args.filters} distinct filters\n"
          f"  vs none (in-process: real AsyncServer + BatchManager + SocketDelivery, engineio sockets, no network);\n"
          f"  {args.writes} writes per side after {WARMUP} warm-up, alternating.", flush=True)
    folder = schema_folder({"items": json.dumps(SCHEMA)})
    try:
        registry = Registry(folder)
        registry.rescan()
        store = registry.get("items")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    group, owner, entity_id = ObjectId(), ObjectId(), ObjectId()
    plain, filtered = Side(store, group), Side(store, group)
    await plain.subscribe(args.subscribers, 0)
    await filtered.subscribe(args.subscribers, args.filters)
    times: dict[str, list[float]] = {"unfiltered": [], "filtered": []}
    for n in range(-WARMUP, args.writes):
        change = record(n + WARMUP + 1, owner, group, entity_id)
        for name, side in (("unfiltered", plain), ("filtered", filtered)):
            took = await side.write(change)
            if n >= 0:
                times[name].append(took)
    for name, samples in times.items():
        line(f"{name}: p50 / p99", f"{percentile(samples, 50) * 1000:8.2f} / {percentile(samples, 99) * 1000:.2f} ms")
    ratio50 = percentile(times["filtered"], 50) / percentile(times["unfiltered"], 50)
    ratio99 = percentile(times["filtered"], 99) / percentile(times["unfiltered"], 99)
    line("ratio p50 filtered / unfiltered", f"{ratio50:8.2f} x")
    line("ratio p99 filtered / unfiltered (target <= 1.5)", f"{ratio99:8.2f} x")


if __name__ == "__main__":
    asyncio.run(main())
