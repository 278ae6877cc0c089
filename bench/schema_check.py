"""`_check` throughput and memory, and fan-out cost of two views against one (API.md 15).

    .venv/bin/python bench/schema_check.py [--wire] [--entities N]

Part 1 fills a store with N entities (one in ten failing the schema) and runs the dry run over
all of them in pages of 100,000 (store/checks.py): entities/second and RSS growth during the
check. Part 2 times the Socket.IO fan-out's grouping + encoding (live.SocketDelivery._emit with
the emit itself stubbed: no sockets) for 1,000 local subscribers in one view and in two views.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from typing import Any

from _wire import wire_server
from bson import ObjectId

from storeengine.core.formats import utcnow
from storeengine.model.access import Principal
from storeengine.model.schema import compile_schema
from storeengine.settings import Settings
from storeengine.storage import connect
from storeengine.store.checks import check_entities

RAW = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer", "minimum": 0},
                                        "salary": {"type": "integer", "x-read": ["role:hr"]}}}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def check_bench(uri: str | None, n: int) -> None:
    settings = Settings(mongodb_uri=uri, database=f"bench{ObjectId()}")
    storage = connect(settings)
    store = compile_schema("things", RAW)
    coll = storage.collection("things")
    now = utcnow()
    for i in range(n):
        await coll.insert({"_id": ObjectId(), "name": f"t{i}", "n": -1 if i % 10 == 0 else i, "owner": None,
                           "group": None, "access": [], "branch": [], "createdAt": now, "updatedAt": now})
    base, peak = rss_mb(), 0.0

    def sample(checked: int, invalid: int) -> None:
        nonlocal peak
        peak = max(peak, rss_mb())

    start = time.perf_counter()
    after, checked, invalid = None, 0, 0
    while True:
        report = await check_entities(storage, store, after=after, progress=sample)
        checked, invalid = checked + report.checked, invalid + report.invalid
        if report.next is None:
            break
        after = ObjectId(report.next)
    took = time.perf_counter() - start
    lane = "wire" if uri else "embedded"
    print(f"_check {lane}: {checked} entities ({invalid} failing) in {took:.1f} s = {checked / took:,.0f} "
          f"entities/s; RSS growth during the check {max(peak - base, 0):.1f} MB")
    await storage.close()


class _Stub:
    """What _emit needs of python-socketio: a manager with rooms, and an emit that encodes once."""

    def __init__(self, rooms: dict[str, set[str]]) -> None:
        self.rooms, self.manager, self.encoded = rooms, self, 0

    def get_participants(self, ns: str, rooms: list[str]) -> Any:
        return [(sid, sid) for room in rooms for sid in self.rooms.get(room, ())]

    async def emit(self, event: str, data: Any, **kwargs: Any) -> None:
        from storeengine.core.jsonio import dumps
        dumps(data)
        self.encoded += 1


async def fanout_bench(subscribers: int = 1000, changes: int = 300) -> None:
    from storeengine.model import access as acl
    from storeengine.realtime.live import SocketDelivery

    store = compile_schema("things", RAW)
    entity = {"_id": ObjectId(), "name": "x" * 200, "n": 1, "salary": 5, "owner": None, "group": None,
              "access": [], "branch": [], "createdAt": utcnow(), "updatedAt": utcnow()}
    record = {"seq": 1, "id": entity["_id"], "entity": entity, "at": utcnow(), "op": "update"}
    results = {}
    for views in (1, 2):
        rooms: dict[str, set[str]] = {}
        for i in range(subscribers):
            who = Principal(ObjectId(), roles=frozenset({"hr"} if views == 2 and i % 2 else set()))
            for room in [*acl.rooms_for_principal("things", store.acl["read"], who), *acl.view_rooms(store, who)]:
                rooms.setdefault("/", set())
                rooms.setdefault(room, set()).add(f"s{i}")
            rooms[f"s{i}"] = {f"s{i}"}  # every socket is a room of its own (python-socketio)
        stub = _Stub(rooms)
        stub.rooms["/"] = {r: None for r in rooms}  # type: ignore[assignment]
        delivery = SocketDelivery.__new__(SocketDelivery)
        delivery.sio = stub
        times = []
        all_room = [f"s{i}" for i in range(subscribers)]
        for _ in range(changes):
            t = time.perf_counter()
            await delivery._emit(store, record, "update", all_room, [])
            times.append(time.perf_counter() - t)
        results[views] = statistics.quantiles(times, n=100)[98]
        print(f"fan-out to {subscribers} subscribers in {views} view(s): p99 {results[views] * 1000:.2f} ms, "
              f"{stub.encoded // changes} encoding(s) per change")
    print(f"two views / one view p99: {results[2] / results[1]:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--wire", action="store_true")
    p.add_argument("--entities", type=int, default=100_000)
    args = p.parse_args()
    with wire_server() if args.wire else contextlib.nullcontext() as uri:
        if args.wire and uri is None:
            raise SystemExit("no wire lane (.venv-wire)")
        asyncio.run(check_bench(uri, args.entities))
    asyncio.run(fanout_bench())


if __name__ == "__main__":
    main()
