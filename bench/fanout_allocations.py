"""Garbage per change event on the fan-out path, in-process, python-socketio's AsyncManager next to
storeengine's BatchManager (storeengine/realtime/transport/fanout.py), for N recipients in one room; then what the
collector costs at N connected sockets, and what `gc.freeze()` keeps alive after they leave.

Sockets are real engineio AsyncSocket objects registered with a real AsyncServer (no network):
an emit ends when every recipient's packet is queued on its socket, as it does in the server.

Usage: python bench/fanout_allocations.py [--n 1000,10000] [--events 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from typing import Any

import socketio
from _common import line
from engineio.async_socket import AsyncSocket

from storeengine.realtime.transport.fanout import BatchManager

PAYLOAD = {"store": "items", "op": "update", "_id": "0" * 24,
           "entity": {"_id": "0" * 24, "n": 1, "note": "x" * 200, "owner": "1" * 24, "access": ["2" * 24]},
           "at": "2026-01-01T00:00:00.000Z"}


async def server_with(manager: socketio.AsyncManager, n: int) -> tuple[socketio.AsyncServer, list[AsyncSocket]]:
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)
    sockets = []
    for i in range(n):
        eio_sid = f"eio{i}"
        sock = AsyncSocket(sio.eio, eio_sid)
        sock.connected = True
        sio.eio.sockets[eio_sid] = sock
        sid = await sio.manager.connect(eio_sid, "/")
        await sio.manager.enter_room(sid, "/", "items:all")
        sockets.append(sock)
    return sio, sockets


def drain(sockets: list[AsyncSocket]) -> int:
    queued = 0
    for sock in sockets:
        while not sock.queue.empty():
            sock.queue.get_nowait()
            queued += 1
    return queued


async def per_event(manager: socketio.AsyncManager, n: int, events: int) -> dict[str, float]:
    """Tasks created, peak traced bytes (the garbage alive at once) and wall time per emit."""
    sio, sockets = await server_with(manager, n)
    await sio.emit("change", PAYLOAD, to="items:all")  # warm-up
    drain(sockets)
    tasks = 0
    loop = asyncio.get_running_loop()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal tasks
        tasks += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    times = 0.0
    for _ in range(events):  # timed without tracemalloc, which slows allocation down
        start = time.perf_counter()
        await sio.emit("change", PAYLOAD, to="items:all")
        times += time.perf_counter() - start
        drain(sockets)
    peaks = 0
    loop.set_task_factory(counting)
    tracemalloc.start()
    try:
        for _ in range(events):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            await sio.emit("change", PAYLOAD, to="items:all")
            peaks += tracemalloc.get_traced_memory()[1] - base
            if drain(sockets) != n:
                raise RuntimeError("an event did not reach every socket")
    finally:
        tracemalloc.stop()
        loop.set_task_factory(None)
    return {"tasks": tasks / events, "peak KB": peaks / events / 1024, "ms": times / events * 1000}


async def collector_costs(n: int) -> dict[str, float]:
    """A full collection's stall with N sockets, unfrozen and frozen; memory kept by freezing
    sockets that then disconnect (cyclic garbage in the permanent generation)."""
    sio, sockets = await server_with(BatchManager(), n)
    gc.collect()  # what earlier steps left; the pass timed next only scans what lives
    start = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - start
    gc.freeze()
    start = time.perf_counter()
    gc.collect()
    frozen = time.perf_counter() - start
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for sock in sockets:  # every socket leaves, as on disconnect
        await sio.manager.disconnect(f"{sio.manager.sid_from_eio_sid(sock.sid, '/')}", "/")
        del sio.eio.sockets[sock.sid]
    del sockets
    gc.collect()
    kept_frozen = tracemalloc.get_traced_memory()[0] - base
    gc.unfreeze()
    gc.collect()
    kept_unfrozen = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {"full ms": full * 1000, "frozen ms": frozen * 1000, "kept frozen KB": kept_frozen / 1024,
            "kept unfrozen KB": kept_unfrozen / 1024}


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", default="1000,10000")
    p.add_argument("--events", type=int, default=20)
    args = p.parse_args()
    print("fanout_allocations: per emit to N sockets in one room (in-process, engineio sockets, no network)")
    for n in (int(x) for x in args.n.split(",")):
        stock = await per_event(socketio.AsyncManager(), n, args.events)
        batch = await per_event(BatchManager(), n, args.events)
        for name, r in (("python-socketio AsyncManager", stock), ("storeengine BatchManager", batch)):
            line(f"N={n} {name}", f"{r['tasks']:7.0f} tasks {r['peak KB']:9.1f} KB peak {r['ms']:7.2f} ms")
        costs = await collector_costs(n)
        line(f"N={n} full gc.collect(): unfrozen / frozen", f"{costs['full ms']:9.1f} / {costs['frozen ms']:.1f} ms")
        line(f"N={n} socket state kept after all leave, frozen / not",
             f"{costs['kept frozen KB']:9.1f} / {costs['kept unfrozen KB']:.1f} KB")


if __name__ == "__main__":
    asyncio.run(main())
