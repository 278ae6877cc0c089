"""`_check` throughput and the server's memory, and fan-out cost of two views against one (API.md 15).

    WIRE_VENV=/work/main/.venv-wire .venv/bin/python bench/schema_check.py [--embedded] [--entities N]

Part 1 fills a store with N entities (default 100,000; one in ten failing the schema) straight in
the database, in bulk, not through the API: on the wire lane (default) rows written into
mongoeco's SQLite file while it is stopped (mongoeco's own inserts check each `_id` against the
stored ones: 100,000 of them would take hours), on `--embedded` with insert_many into a
STORE_DATA_DIR. Then it starts `storeengine serve` on that data, waits for the console's
background check of the store (store/check_cache.py) to finish, and runs `POST
/api/v1/_schemas/things/_check` over every entity in pages of 100,000: entities per second
(wall, and the server's CPU), and the server's RSS growth (VmRSS sampled every 50 ms; target
<= 50 MB) for the background check and for the calls.

Part 2 times the Socket.IO fan-out's grouping + encoding (live.SocketDelivery._emit with the
emit itself stubbed: no sockets) for 1,000 local subscribers in one view and in two views
(target: p99 two views / one view <= 1.3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pymongo
from _common import ADMIN_PASSWORD, SECRET, bearer, schema_folder, server_process, stop_process
from _wire import LAUNCHER, WIRE_PYTHON, _answers
from bson import ObjectId
from realtime_fanout import free_port

from storeengine.core.formats import utcnow
from storeengine.model.access import Principal
from storeengine.model.schema import compile_schema
from storeengine.settings import Settings
from storeengine.storage import connect

RAW = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer", "minimum": 0},
                                        "salary": {"type": "integer", "x-read": ["role:hr"]}}}
DATABASE = "bench_schema_check"
BATCH = 10_000


def entity(i: int) -> dict[str, Any]:
    now = utcnow()
    return {"_id": ObjectId(), "name": f"t{i}", "n": -1 if i % 10 == 0 else i, "owner": None, "group": None,
            "access": [], "branch": [], "createdAt": now, "updatedAt": now}


def proc_status(pid: int, key: str) -> float:
    """A /proc/<pid>/status figure in MB."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(f"{key}:"):
            return int(row.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Peak:
    """The highest VmRSS of a process while inside, sampled every 50 ms from a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.base, self.peak = pid, proc_status(pid, "VmRSS"), 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, proc_status(self.pid, "VmRSS"))

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_status(self.pid, "VmRSS"))

    @property
    def growth(self) -> float:
        return max(self.peak - self.base, 0.0)


def _start_mongoeco(path: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([str(WIRE_PYTHON), str(LAUNCHER), str(port), path], stdout=subprocess.DEVNULL)
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    deadline = time.monotonic() + 900  # on a file of 100,000 rows mongoeco takes minutes to answer
    while not _answers(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError("the mongoeco wire server did not start")
        time.sleep(0.2)
    return proc, uri


@contextlib.contextmanager
def seeded_wire(n: int) -> Iterator[dict[str, str]]:
    """mongoeco on an SQLite file holding `n` entities of `things`: one inserted through the wire
    (so mongoeco makes the collection and shows how it encodes a document), then a first start
    of our server on it (it creates its indexes while they are small: building them over
    100,000 rows took mongoeco more than 20 minutes here), then the others written as rows of
    the same shape while mongoeco is stopped. Those rows are not in the secondary indexes
    (owner, group, access, branch, createdAt); nothing here reads through them: the check
    walks `_id`, and the admin's lists have no access filter."""
    if not WIRE_PYTHON.exists():
        raise SystemExit("no wire lane: set WIRE_VENV (e.g. /work/main/.venv-wire) or build .venv-wire")
    folder = tempfile.mkdtemp(prefix="bench-schema-check-")
    path = os.path.join(folder, "mongoeco.sqlite")
    proc, uri = _start_mongoeco(path)
    with pymongo.MongoClient[dict[str, Any]](uri) as client:
        client[DATABASE]["things"].insert_one(entity(0))
    try:
        with serve({"STORE_MONGODB_URI": uri, "STORE_DATABASE": DATABASE}):
            pass
    finally:
        stop_process(proc)
    db = sqlite3.connect(path)
    key, text = db.execute("SELECT storage_key, document FROM documents WHERE db_name = ? AND coll_name = ?",
                           (DATABASE, "things")).fetchone()
    template = json.loads(text)
    oid = template["_id"]["$mongoeco"]["value"]
    for start in range(1, n, BATCH):
        rows = []
        for i in range(start, min(start + BATCH, n)):
            new = str(ObjectId())
            doc = {**template, "_id": {"$mongoeco": {"type": "objectid", "value": new}}, "name": f"t{i}",
                   "n": -1 if i % 10 == 0 else i}
            rows.append((DATABASE, "things", key.replace(oid, new), json.dumps(doc, separators=(",", ":"))))
        db.executemany("INSERT INTO documents (db_name, coll_name, storage_key, document) VALUES (?, ?, ?, ?)",
                       rows)
    db.commit()
    db.close()
    began = time.perf_counter()
    proc, uri = _start_mongoeco(path)
    print(f"mongoeco answers on the seeded file after {time.perf_counter() - began:.0f} s", flush=True)
    try:
        # mongoeco is single-threaded: a page of the check holds it, and the driver's heartbeat waits.
        yield {"STORE_MONGODB_URI": uri, "STORE_DATABASE": DATABASE, "STORE_SERVER_SELECTION_TIMEOUT_MS": "60000"}
    finally:
        stop_process(proc)


@contextlib.contextmanager
def seeded_embedded(n: int) -> Iterator[dict[str, str]]:
    folder = tempfile.mkdtemp(prefix="bench-schema-check-data-")

    async def fill() -> None:
        storage = connect(Settings(data_dir=folder))
        coll: Any = storage.collection("things")  # the embedded collection's bulk insert (not on the seam)
        for start in range(0, n, BATCH):
            await coll.insert_many([entity(i) for i in range(start, min(start + BATCH, n))])
        await storage.close()

    asyncio.run(fill())
    yield {"STORE_DATA_DIR": folder}


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000 if ordered else float("nan")


async def list_latencies(http: httpx.AsyncClient, admin: dict[str, str], count: int) -> list[float]:
    times = []
    for _ in range(count):
        t = time.perf_counter()
        (await http.get("/api/v1/things", params={"limit": "10"}, headers=admin)).raise_for_status()
        times.append(time.perf_counter() - t)
    return times


async def background_done(http: httpx.AsyncClient, admin: dict[str, str], before: str | None,
                          lists: list[float] | None = None) -> dict[str, Any]:
    """The background report once a check that started after `before` is done; times lists meanwhile."""
    while True:
        report: dict[str, Any] = (await http.get("/api/v1/_schemas/things/_check", headers=admin)).json()
        if report["state"] != "running" and report["startedAt"] != before:
            return report
        if lists is not None:
            lists += await list_latencies(http, admin, 5)
        else:
            await asyncio.sleep(0.2)


async def reload_bench(http: httpx.AsyncClient, admin: dict[str, str], pid: int, first: dict[str, Any],
                       lane: str) -> None:
    idle = await list_latencies(http, admin, 50)
    # A reload (the file changes): the console's background check runs again; meanwhile lists
    # are timed, to see what the check costs the server's other callers.
    (FOLDER / "things.json").write_text(json.dumps({**RAW, "title": "things, reloaded"}))
    during: list[float] = []
    with Peak(pid) as background:
        cpu0 = cpu_seconds(pid)
        report = await background_done(http, admin, first["startedAt"], during)
        cpu = cpu_seconds(pid) - cpu0
    took = seconds(report["startedAt"], report["finishedAt"])
    print(f"background check after a reload ({lane}): {report['checked']:,} entities, "
          f"{report['invalid']:,} failing, {report['state']} in {took:.1f} s; server RSS "
          f"growth {background.growth:.1f} MB (from {background.base:.0f} MB); server CPU {cpu:.1f} s")
    print(f"GET of a 10-entity list: idle p50 {percentile(idle, 50):.1f} ms, "
          f"p99 {percentile(idle, 99):.1f} ms; "
          f"during the background check ({len(during)} lists) p50 {percentile(during, 50):.1f} ms, "
          f"p99 {percentile(during, 99):.1f} ms")


FOLDER = schema_folder({"things": json.dumps(RAW)})


@contextlib.contextmanager
def serve(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`storeengine serve` on the store `things`: its url and pid."""
    port = free_port()
    cmd = [sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(FOLDER),
           "--log-level", "warning"]
    env = {**env, "STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_ARGON2_TIME_COST": "1",
           "STORE_ARGON2_MEMORY_KIB": "64"}
    with server_process(cmd, port, env, start_seconds=600) as running:
        yield running


async def check_bench(env: dict[str, str], n: int, lane: str, reload: bool) -> None:
    start = time.perf_counter()
    with serve(env) as (url, pid):
        print(f"server up in {time.perf_counter() - start:.1f} s", flush=True)
        async with httpx.AsyncClient(base_url=url, timeout=3600) as http:
            admin = await bearer(http)
            path = "/api/v1/_schemas/things/_check"
            with Peak(pid) as started:  # the check of the server's first load runs already
                cpu0 = cpu_seconds(pid)
                first = await background_done(http, admin, None)
                cpu = cpu_seconds(pid) - cpu0
            print(f"background check of the first load: {first['checked']:,} entities, {first['invalid']:,} failing,"
                  f" {first['state']} in {seconds(first['startedAt'], first['finishedAt']):.1f} s; server RSS growth "
                  f"since it answered {started.growth:.1f} MB (from {started.base:.0f} MB); server CPU meanwhile "
                  f"{cpu:.1f} s", flush=True)
            if reload:
                await reload_bench(http, admin, pid, first, lane)
            with Peak(pid) as calls:
                cpu0, start = cpu_seconds(pid), time.perf_counter()
                after, checked, invalid, pages = None, 0, 0, 0
                while True:
                    r = await http.post(path, params={"after": after} if after else {}, headers=admin)
                    r.raise_for_status()
                    page = r.json()
                    checked, invalid, pages, after = (checked + page["checked"], invalid + page["invalid"],
                                                      pages + 1, page["next"])
                    if after is None:
                        break
                wall, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu0
    assert checked == n and invalid == (n + 9) // 10, (checked, invalid)
    print(f"_check ({lane}): {checked:,} entities ({invalid:,} failing) in {pages} call(s), {wall:.1f} s = "
          f"{checked / wall:,.0f} entities/s wall, server CPU {cpu:.1f} s = {checked / max(cpu, 1e-9):,.0f} "
          f"entities per CPU second")
    print(f"server RSS growth during the calls: {calls.growth:.1f} MB (from {calls.base:.0f} MB; "
          f"target <= 50 MB: {'ok' if calls.growth <= 50 else 'MISSED'})")


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


async def fanout_bench(subscribers: int = 1000, changes: int = 1000) -> None:
    from storeengine.model import access as acl
    from storeengine.realtime.live import SocketDelivery

    store = compile_schema("things", RAW)
    entity = {"_id": ObjectId(), "name": "x" * 200, "n": 1, "salary": 5, "owner": None, "group": None,
              "access": [], "branch": [], "createdAt": utcnow(), "updatedAt": utcnow()}
    record = {"seq": 1, "id": entity["_id"], "entity": entity, "at": utcnow(), "op": "update"}
    deliveries, stubs = {}, {}
    for views in (1, 2):
        rooms: dict[str, set[str]] = {}
        for i in range(subscribers):
            who = Principal(ObjectId(), roles=frozenset({"hr"} if views == 2 and i % 2 else set()))
            for room in [*acl.rooms_for_principal("things", store.acl["read"], who), *acl.view_rooms(store, who)]:
                rooms.setdefault("/", set())
                rooms.setdefault(room, set()).add(f"s{i}")
            rooms[f"s{i}"] = {f"s{i}"}  # every socket is a room of its own (python-socketio)
        stub = stubs[views] = _Stub(rooms)
        stub.rooms["/"] = {r: None for r in rooms}  # type: ignore[assignment]
        delivery = deliveries[views] = SocketDelivery.__new__(SocketDelivery)
        delivery.sio = stub
    all_room = [f"s{i}" for i in range(subscribers)]
    wall: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    for n in range(changes):
        # Alternate the two, so the machine's noise falls on both alike.
        for views in ((1, 2) if n % 2 else (2, 1)):
            t, c = time.perf_counter(), time.process_time()
            await deliveries[views]._emit(store, record, "update", all_room, [])
            wall[views].append(time.perf_counter() - t)
            cpu[views].append(time.process_time() - c)
    p99 = {v: statistics.quantiles(wall[v], n=100)[98] for v in (1, 2)}
    for views in (1, 2):
        print(f"fan-out to {subscribers} subscribers in {views} view(s): "
              f"p50 {statistics.median(wall[views]) * 1000:.2f} ms, p99 {p99[views] * 1000:.2f} ms, "
              f"CPU per change {statistics.mean(cpu[views]) * 1000:.2f} ms, "
              f"{stubs[views].encoded // changes} encoding(s) per change")
    ratio = p99[2] / p99[1]
    print(f"two views / one view p99: {ratio:.2f}x (target <= 1.3: {'ok' if ratio <= 1.3 else 'MISSED'}); "
          f"p50 {statistics.median(wall[2]) / statistics.median(wall[1]):.2f}x, "
          f"CPU {statistics.mean(cpu[2]) / statistics.mean(cpu[1]):.2f}x")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--embedded", action="store_true", help="the embedded database instead of the wire lane")
    p.add_argument("--entities", type=int, default=100_000)
    p.add_argument("--no-check", action="store_true", help="only the fan-out part")
    p.add_argument("--no-reload", action="store_true", help="no second background check after a reload")
    args = p.parse_args()
    embedded = args.embedded or os.environ.get("BENCH_LANE") == "embedded"  # run_all.py without .venv-wire
    if not args.no_check:
        lane = "embedded" if embedded else "wire"
        start = time.perf_counter()
        with seeded_embedded(args.entities) if embedded else seeded_wire(args.entities) as env:
            print(f"seeded {args.entities:,} entities on the {lane} lane in {time.perf_counter() - start:.1f} s",
                  flush=True)
            asyncio.run(check_bench(env, args.entities, lane, not args.no_reload))
    asyncio.run(fanout_bench())


if __name__ == "__main__":
    main()
