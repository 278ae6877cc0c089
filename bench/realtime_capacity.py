"""Socket.IO capacity: N websocket subscribers on one server process, storeengine next to bare
python-socketio (bench/_bare_sio_server.py) in the same run.

For each N: connect N raw Engine.IO/Socket.IO clients spread over client processes
(bench/_capacity_client.py), measure idle CPU with no traffic and then /healthz latency (a probe
of loop stalls), then time WRITES writes INTERVAL apart, from each write request's start to the
event's arrival at every recipient: once readable by every subscriber (all-readers) and once by
10 % of them. Server CPU and RSS come from /proc; client CPU from the client processes.

Usage: python bench/realtime_capacity.py [--n 500,1000,2000,5000,10000] [--writes 30] [--clients 4]
                                         [--idle 30] [--sides storeengine,bare] [--ping-interval 25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import _capacity_client
import httpx
from _common import ADMIN_PASSWORD, SECRET, percentile, schema_folder, server_process
from realtime_fanout import free_port

HERE = Path(__file__).resolve().parent
USERS, READER_USERS = 20, 2  # subscribers are spread over 20 users; 2 of them (10 %) read the 10 % entity
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "note": {"type": "string"}}}
TICK = os.sysconf("SC_CLK_TCK")
Write = Callable[[int, bool], Coroutine[Any, Any, None]]  # (n, all readers?) -> one write


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss_mb(pid: int, key: str = "VmRSS") -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(key + ":"):
            return int(row.split()[1]) / 1024
    return 0.0


class Clients:
    """The client processes; socket i goes to process i % len(processes)."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_capacity_client.main, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    async def ask(self, *command: Any, per_pipe: list[Any] | None = None) -> list[Any]:
        for i, pipe in enumerate(self.pipes):
            pipe.send(command if per_pipe is None else (*command, per_pipe[i]))
        return [await asyncio.to_thread(pipe.recv) for pipe in self.pipes]

    async def open(self, url: str, plan: list[tuple[str | None, str | None]]) -> None:
        shares = [plan[i::len(self.pipes)] for i in range(len(self.pipes))]
        errors = [e for answer in await self.ask("open", url, per_pipe=shares) for e in answer]
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(plan)} connections failed, e.g. {errors[0]}")

    async def stop(self) -> None:
        await self.ask("exit")
        for proc in self.procs:
            proc.join(5)


@dataclass
class Result:
    side: str
    n: int
    rows: dict[str, dict[str, float]] = field(default_factory=dict)


async def engine_setup(http: httpx.AsyncClient, n: int) -> tuple[list[tuple[str | None, str | None]], Write]:
    """Users in two groups, one token each, and the two entities the writes PATCH."""
    admin = (await http.post("/api/v1/auth/token", json={"login": "admin", "password": ADMIN_PASSWORD})).json()
    headers = {"Authorization": f"Bearer {admin['token']}"}
    groups = []
    for name in ("readers", "others"):
        r = await http.post("/api/v1/groups", json={"name": name}, headers=headers)
        groups.append(r.json()["_id"])
    tokens = []
    for u in range(USERS):
        group = groups[0] if u < READER_USERS else groups[1]
        body = {"login": f"u{u}", "password": "password-123", "groups": [group]}
        (await http.post("/api/v1/users", json=body, headers=headers)).raise_for_status()
        r = await http.post("/api/v1/auth/token", json={"login": f"u{u}", "password": "password-123"})
        tokens.append(r.json()["token"])
    everyone = (await http.post("/api/v1/items", json={"n": -1000, "note": "x" * 200}, headers=headers)).json()
    await http.put(f"/api/v1/items/{everyone['_id']}/acl", json={"access": groups}, headers=headers)
    tenth = (await http.post("/api/v1/items", json={"n": -1000, "note": "x" * 200}, headers=headers)).json()
    await http.put(f"/api/v1/items/{tenth['_id']}/acl", json={"group": groups[0]}, headers=headers)

    async def write(k: int, all_readers: bool) -> None:
        target = everyone if all_readers else tenth
        r = await http.patch(f"/api/v1/items/{target['_id']}", json={"n": k}, headers=headers)
        r.raise_for_status()

    return [(tokens[i % USERS], "items") for i in range(n)], write


async def bare_setup(http: httpx.AsyncClient, n: int) -> tuple[list[tuple[str | None, str | None]], Write]:
    """The same 10 % split as rooms; the payload has the shape and size of storeengine's."""
    entity = {"_id": "0" * 24, "n": 0, "note": "x" * 200, "owner": "1" * 24, "group": "2" * 24,
              "access": ["3" * 24, "4" * 24], "createdAt": "2026-01-01T00:00:00.000Z",
              "updatedAt": "2026-01-01T00:00:00.000Z"}

    async def write(k: int, all_readers: bool) -> None:
        payload = {"store": "items", "op": "update", "_id": entity["_id"], "entity": {**entity, "n": k},
                   "at": "2026-01-01T00:00:00.000Z"}
        r = await http.post("/emit", params={} if all_readers else {"room": "readers"}, json=payload)
        r.raise_for_status()

    rooms = ["readers" if i % USERS < READER_USERS else "others" for i in range(n)]
    plan: list[tuple[str | None, str | None]] = [(None, room) for room in rooms]
    return plan, write


async def idle(http: httpx.AsyncClient, pid: int, seconds: float) -> dict[str, float]:
    """CPU with no traffic at all, then /healthz every 50 ms (each answer waits for any loop stall)."""
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (proc_cpu(pid) - cpu0) / (time.monotonic() - t0) * 100
    probes = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        (await http.get("/healthz")).raise_for_status()
        probes.append(time.perf_counter() - start)
        await asyncio.sleep(0.05)
    return {"idle cpu %": cpu, "healthz p99 ms": percentile(probes, 99) * 1000, "healthz max ms": max(probes) * 1000}


async def writes(clients: Clients, pid: int, write: Write, all_readers: bool, count: int, base: int,
                 interval: float, expected: int) -> dict[str, float]:
    for k in range(3):  # warm-up, not counted
        await write(base - 10 + k, all_readers)
    await asyncio.sleep(1)
    await clients.ask("reset")
    starts: dict[int, float] = {}
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    pending: list[asyncio.Task[None]] = []
    for i, k in enumerate(range(base, base + count)):
        # Open loop: each write starts at its slot, whether or not the previous one has answered
        # (bare python-socketio answers only after its emit, which would otherwise slow its writer).
        await asyncio.sleep(max(0.0, t0 + i * interval - time.monotonic()))
        starts[k] = time.time()
        pending.append(asyncio.create_task(write(k, all_readers)))
    await asyncio.gather(*pending)
    await drained(clients, base, expected * count)
    wall = time.monotonic() - t0
    server_seconds = proc_cpu(pid) - cpu0
    answers = await clients.ask("collect")
    delays = [t - starts[k] for a in answers for k, times in a["arrivals"].items() if k in starts for t in times]
    client_cpu = sum(a["cpu"] for a in answers) / wall * 100
    if not delays:
        print(f"  no event arrived; sockets open/closed per client process: "
              f"{[(a['open'], a['closed']) for a in answers]}", flush=True)
        delays = [float("nan")]
    return {"deliveries": len(delays), "expected": expected * count, "p50 ms": percentile(delays, 50) * 1000,
            "p99 ms": percentile(delays, 99) * 1000, "max ms": max(delays) * 1000,
            "server cpu %": server_seconds / wall * 100,
            "cpu us/delivery": server_seconds / len(delays) * 1e6,
            "client cpu %": client_cpu, "rss MB": proc_rss_mb(pid)}


async def drained(clients: Clients, base: int, expected: int, settle: float = 3.0, limit: float = 60.0) -> None:
    """Until every expected event of the writes numbered from `base` on arrived, or none arrived
    for `settle` s (an overloaded server may still be working through its backlog), or `limit` s
    passed."""
    last, still, end = -1, time.monotonic(), time.monotonic() + limit
    while time.monotonic() < end:
        got = sum(await clients.ask("count", base))
        if got >= expected:
            return
        if got != last:
            last, still = got, time.monotonic()
        elif time.monotonic() - still > settle:
            return
        await asyncio.sleep(0.25)


async def one_side(side: str, n: int, args: argparse.Namespace, clients: Clients, folder: Path) -> Result:
    port = free_port()
    if side == "storeengine":
        env = {"STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_ARGON2_TIME_COST": "1",
               "STORE_ARGON2_MEMORY_KIB": "64", "STORE_DATABASE": f"capacity_{os.getpid()}_{n}",
               "STORE_SOCKETIO_PING_INTERVAL_SECONDS": str(args.ping_interval)}
        cmd = [sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(folder),
               "--log-level", "warning"]
        setup = engine_setup
    else:
        env, cmd, setup = {}, [sys.executable, str(HERE / "_bare_sio_server.py"), str(port), str(args.ping_interval)], \
            bare_setup
    result = Result(side, n)
    with server_process(cmd, port, env) as (url, pid):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            plan, write = await setup(http, n)
            rss0 = proc_rss_mb(pid)
            await clients.open(url, plan)
            await asyncio.sleep(3)  # the connection burst ends (storeengine freezes it after 1 s)
            connected = proc_rss_mb(pid)
            result.rows["idle"] = {**await idle(http, pid, args.idle), "rss MB": connected,
                                   "KB per socket": (connected - rss0) * 1024 / n}
            readers = sum(1 for i in range(n) if i % USERS < READER_USERS)
            if args.writes:
                result.rows["all readers"] = await writes(clients, pid, write, True, args.writes, 0, args.interval, n)
                result.rows["10% readers"] = await writes(clients, pid, write, False, args.writes, 1000,
                                                          args.interval, readers)
            await clients.ask("close")
            await asyncio.sleep(3)
            result.rows["after disconnect"] = {"rss MB": proc_rss_mb(pid), "peak rss MB": proc_rss_mb(pid, "VmHWM")}
    return result


def report(results: list[Result]) -> None:
    cols = ["deliveries", "expected", "p50 ms", "p99 ms", "max ms", "server cpu %", "cpu us/delivery",
            "client cpu %", "rss MB"]
    print(f"\n  {'N':>6} {'side':<12} {'events to':<12} " + " ".join(f"{c:>15}" for c in cols))
    for r in results:
        for mode in ("all readers", "10% readers"):
            if mode not in r.rows:
                continue
            row = r.rows[mode]
            print(f"  {r.n:>6} {r.side:<12} {mode:<12} " + " ".join(f"{row[c]:>15.1f}" for c in cols))
    cols = ["idle cpu %", "healthz p99 ms", "healthz max ms", "rss MB", "KB per socket"]
    print(f"\n  {'N':>6} {'side':<12} idle:       " + " ".join(f"{c:>15}" for c in cols) + "  rss after disconnect")
    for r in results:
        row, after = r.rows["idle"], r.rows["after disconnect"]
        print(f"  {r.n:>6} {r.side:<12} {'':<12}" + " ".join(f"{row[c]:>15.1f}" for c in cols)
              + f"  {after['rss MB']:.1f} MB (peak {after['peak rss MB']:.1f})")


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="500,1000,2000,5000,10000", help="comma-separated subscriber counts")
    p.add_argument("--writes", type=int, default=30, help="per mode; 0: idle figures only")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between writes")
    p.add_argument("--clients", type=int, default=4, help="client processes")
    p.add_argument("--idle", type=float, default=30.0,
                   help="seconds of each idle measurement; at least one Engine.IO ping cycle (25 s) to count the "
                        "heartbeat, whose pings come in bursts since the sockets connected together")
    p.add_argument("--sides", default="storeengine,bare")
    p.add_argument("--ping-interval", type=int, default=25,
                   help="Engine.IO ping interval of both servers, seconds (the idle cost is one ping and pong per "
                        "socket per interval); --idle should cover at least one")
    return p.parse_args()


async def main() -> None:
    args = arguments()
    _capacity_client.raise_open_files_limit()  # the servers inherit it
    sizes = [int(x) for x in args.n.split(",")]
    print(f"realtime_capacity: N = {sizes}; {args.writes} writes {args.interval * 1000:.0f} ms apart per mode; "
          f"{args.clients} client processes of raw websocket clients; ping interval {args.ping_interval} s; "
          f"embedded database; latency from each "
          f"write request's start to the event's arrival. Shared machine: figures are noisy.", flush=True)
    folder = schema_folder({"items": json.dumps(SCHEMA)})
    clients = Clients(args.clients)
    results = []
    try:
        for n in sizes:
            for side in args.sides.split(","):
                results.append(await one_side(side, n, args, clients, folder))
                report(results[-1:])  # as it comes, in case a later size fails
    finally:
        await clients.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print("\nrealtime_capacity: all sizes")
    report(results)


if __name__ == "__main__":
    asyncio.run(main())
