"""SIGKILL of real `storeengine serve` processes at random moments of concurrent writes (API.md 9,
"the feed matches the data" and "durability"), for tests/wire/test_crash_over_wire.py (two
processes on one MongoDB-wire database) and tests/store/test_crash_embedded.py (one process on an
embedded data folder).

Each iteration: writers run (create, PATCH, PUT, /acl, DELETE, restore, each on entities of its
own), a random server is killed with SIGKILL at a random moment and restarted, the writers stop,
and within 15 s of the restart replaying the store's feed (GET /_changes as an admin, create /
update -> the entity, delete -> gone) must give exactly the stored entities (GET of the store),
each at its stored `updatedAt`. Every write acknowledged before the kill must be in the data as
acknowledged (durability), unless a later write of the same entity was cut off by the kill.
The kill points (when, and which writes were in flight) are kept in `Run.kills`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, Server

STORE = "journal"
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}, "n": {"type": "integer"}},
          "additionalProperties": False, "x-history": True}
RECOVERY_SECONDS = 15  # API.md 9
OPS = ("create", "patch", "put", "acl", "delete", "restore")


@dataclass
class Run:
    """What the writers know: each entity's last acknowledged state (None: deleted), the entities
    a cut-off write may have changed either way, each worker's entities, and the kill points."""

    acked: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    uncertain: set[str] = field(default_factory=set)
    owned: dict[int, list[str]] = field(default_factory=dict)
    inflight: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    writes: Counter[str] = field(default_factory=Counter)
    kills: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[float] = field(default_factory=list)


class Cluster:
    """The server processes of one run and the admin's headers (tokens outlive a restart:
    STORE_SECRET is fixed by start_server). `cut(i)`, when given, runs just before server i is
    killed (tests/wire/proxy.py: its unsent requests are dropped)."""

    def __init__(self, servers: list[Server], restart: Callable[[int], Server], headers: dict[str, str],
                 cut: Callable[[int], None] | None = None) -> None:
        self.servers, self.restart, self.headers, self.cut = servers, restart, headers, cut

    def url(self, worker: int) -> str:
        return self.servers[worker % len(self.servers)].url


def choose(run: Run, worker: int, rng: random.Random) -> tuple[str, str | None]:
    """The next write of a worker: an op and one of its entities (None for a create)."""
    mine = run.owned.setdefault(worker, [])
    living = [i for i in mine if run.acked.get(i) is not None and i not in run.uncertain]
    deleted = [i for i in mine if i in run.acked and run.acked[i] is None and i not in run.uncertain]
    op = rng.choice(OPS)
    if op == "restore" and deleted and (not living or rng.random() < 0.5):
        return op, rng.choice(deleted)
    return (op, rng.choice(living)) if living and op != "create" else ("create", None)


async def send(http: httpx.AsyncClient, base: str, headers: dict[str, str], op: str, target: str | None,
               rng: random.Random) -> httpx.Response:
    path = f"{base}/api/v1/{STORE}/{target}"
    if op == "create":
        return await http.post(f"{base}/api/v1/{STORE}", json={"text": "new", "n": 0}, headers=headers)
    if op == "patch":
        return await http.patch(path, json={"n": rng.randrange(1000)}, headers=headers)
    if op == "put":
        return await http.put(path, json={"text": f"put {rng.randrange(1000)}"}, headers=headers)
    if op == "acl":
        return await http.put(f"{path}/acl", json={"access": [f"{rng.randrange(16**24):024x}"]}, headers=headers)
    if op == "delete":
        return await http.delete(path, headers=headers)
    versions = await http.get(f"{path}/_versions", headers=headers)
    if versions.status_code != 200:
        return versions
    return await http.post(f"{path}/_restore", json={"version": versions.json()[0]["version"]}, headers=headers)


async def write_once(http: httpx.AsyncClient, base: str, headers: dict[str, str], run: Run, worker: int,
                     rng: random.Random) -> None:
    """One write of one worker on its own entities; its outcome recorded in `run`. Raises
    httpx.ConnectError when the server is not there (nothing was sent)."""
    op, target = choose(run, worker, rng)
    run.inflight[worker] = (op, target)
    try:
        r = await send(http, base, headers, op, target, rng)
    except httpx.ConnectError:
        raise  # not sent
    except httpx.HTTPError:  # the server died under this write: it happened or it did not
        r = None
    finally:
        run.inflight.pop(worker, None)
    if r is None or r.status_code >= 500:  # (a 503: the database or a process was in the middle of something)
        if target is not None:
            run.uncertain.add(target)
        return
    assert r.status_code < 400, f"{op} {target}: {r.status_code} {r.text}"
    run.writes[op] += 1
    if op == "delete":
        run.acked[str(target)] = None
        return
    entity = r.json()
    run.acked[entity["_id"]] = entity
    if op == "create":
        run.owned[worker].append(entity["_id"])


async def writers(cluster: Cluster, run: Run, stop: asyncio.Event, count: int, seed: int) -> None:
    async def worker(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        server = index
        async with httpx.AsyncClient(timeout=30) as http:
            while not stop.is_set():
                try:
                    await write_once(http, cluster.url(server), cluster.headers, run, index, rng)
                except httpx.ConnectError:  # that server is down: use another one meanwhile
                    server += 1
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(worker(i) for i in range(count)))


async def replay(http: httpx.AsyncClient, base: str, headers: dict[str, str]) -> dict[str, Any]:
    """The store's feed from its first change, applied (a read stops before a hole, as any reader)."""
    state: dict[str, Any] = {}
    since: str | None = None
    while True:
        params = {"limit": "10000", **({"since": since} if since else {})}
        r = await http.get(f"{base}/api/v1/{STORE}/_changes", params=params, headers=headers)
        r.raise_for_status()
        page = r.json()
        for change in page["changes"]:
            if change["op"] == "delete":
                state.pop(change["_id"], None)
            else:
                state[change["_id"]] = change["entity"]
        since = page["cursor"]
        if not page["more"]:
            return state


async def stored(http: httpx.AsyncClient, base: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await http.get(f"{base}/api/v1/{STORE}", params={"limit": "10000"}, headers=headers)
    r.raise_for_status()
    return {e["_id"]: e for e in r.json()}


async def check(cluster: Cluster, run: Run, restarted_at: float) -> float:
    """Within 15 s of the restart the replay equals the data; the acknowledged writes are there.
    Returns the seconds from the restart until the replay matched."""
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            base = cluster.servers[0].url
            data = await stored(http, base, cluster.headers)
            state = await replay(http, base, cluster.headers)
            if state == data:
                break
            elapsed = time.monotonic() - restarted_at
            differ = [k for k in data if k in state and state[k] != data[k]]
            assert elapsed < RECOVERY_SECONDS, (
                f"{elapsed:.1f} s after the restart the feed still differs from the data: "
                f"only in the data {sorted(set(data) - set(state))}, only in the feed "
                f"{sorted(set(state) - set(data))}, different {differ}; kills {run.kills}")
            await asyncio.sleep(0.5)
        took = time.monotonic() - restarted_at
        for entity_id, entity in run.acked.items():  # durability of what was acknowledged
            if entity_id in run.uncertain:
                continue
            assert data.get(entity_id) == entity, f"acknowledged {entity_id} lost: {entity} vs {data.get(entity_id)}"
        for entity_id in list(run.uncertain):  # a cut-off write happened or not: take what is there
            run.acked[entity_id] = data.get(entity_id)
        run.uncertain.clear()
        return took


async def crash_run(cluster: Cluster, iterations: int, *, seed: int, writers_count: int = 6) -> Run:
    """`iterations` rounds of: write, SIGKILL a server at a random moment, restart, check."""
    rng = random.Random(seed)
    run = Run()
    for iteration in range(iterations):
        stop = asyncio.Event()
        writing = asyncio.create_task(writers(cluster, run, stop, writers_count, seed + iteration))
        delay = rng.uniform(0.3, 2.0)
        await asyncio.sleep(delay)
        victim = rng.randrange(len(cluster.servers))
        inflight = Counter(op for op, _ in run.inflight.values())
        if cluster.cut is not None:
            cluster.cut(victim)
        cluster.servers[victim].proc.kill()  # SIGKILL
        cluster.servers[victim].proc.wait()
        run.kills.append({"iteration": iteration, "after_s": round(delay, 2), "server": victim,
                          "in_flight": dict(inflight), "acknowledged_so_far": sum(run.writes.values())})
        cluster.servers[victim] = cluster.restart(victim)
        restarted_at = time.monotonic()
        await asyncio.sleep(rng.uniform(0.0, 0.5))  # writers go on against the restarted server
        stop.set()
        await writing
        run.recoveries.append(round(await check(cluster, run, restarted_at), 1))
    return run


def admin_headers(base: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD}, timeout=30)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def report(run: Run) -> str:
    return json.dumps({"writes": dict(run.writes), "kills": run.kills, "recovery_s": run.recoveries})

