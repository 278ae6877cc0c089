"""POST, GET by id and a list of 1,000 over the MongoDB wire: storeengine next to Eve and the floor,
and next to a baseline checkout (before/after), all in one run on one wire server.

Targets (each a process of its own, each on a database of its own, on the same wire server):
- storeengine: this checkout, `python -m storeengine serve`, with the change feed (the default);
  a normal user's bearer token; the store's default read rules (owner, group, access, branch).
- baseline: the same from another source tree (BENCH_BASELINE=/path/to/tree, put on PYTHONPATH and
  run by its .venv's Python if it has one), e.g. `git archive` of main before a change: the "before" column.
- Eve: PyPI `eve` in a virtualenv of its own (bench/.peers/eve, made on first use), served by
  gunicorn (1 process, gthread, 8 threads); bearer token checked once then cached; `auth_field`
  (each document belongs to its poster, every read filters on it).
- floor: Starlette + PyMongo's AsyncMongoClient + orjson under uvicorn; no auth, no validation, no feed.

Wire servers: mongoeco (.venv-wire, as `make bench`), and jongodb (npm, a GraalVM-compiled MongoDB-wire
server, installed into bench/.peers/node on first use; BENCH_JONGODB=0 leaves it out). Both insert in
time that grows with the collection, so every target gets the same number of POSTs, in rounds that
alternate between targets, and starts from the same seeded size.

Load: wrk (Debian's `wrk`) with write_path.lua: POST with 8 connections until a fixed count of answers;
GET by id (random seeded ids) and the list (1,000) for a fixed time. Medians over BENCH_ROUNDS rounds.

    .venv/bin/python bench/write_path.py                      # this checkout, Eve, floor
    git archive 68846ca storeengine | tar -x -C bench/.peers/before
    BENCH_BASELINE=bench/.peers/before .venv/bin/python bench/write_path.py   # plus a "before" column

Knobs: BENCH_SEED (1000), BENCH_POSTS (200 a round), BENCH_ROUNDS (3), BENCH_SECONDS (4),
BENCH_JONGODB=0 (mongoeco only), BENCH_PEERS=0 (no Eve, no floor: storeengine against its baseline).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymongo
from _common import ADMIN_PASSWORD, SECRET, server_process, stop_process
from _wire import wire_server

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("BENCH_PEERS_DIR", HERE / ".peers"))
LUA = HERE / "write_path.lua"
SEED = int(os.environ.get("BENCH_SEED", "1000"))
POSTS = int(os.environ.get("BENCH_POSTS", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
CONNECTIONS = 8
LIST_SIZE = 1000
SCHEMA = {"type": "object", "required": ["name", "price", "listedAt"],
          "properties": {"name": {"type": "string"}, "price": {"type": "number"},
                         "tags": {"type": "array", "items": {"type": "string"}},
                         "listedAt": {"type": "string", "format": "date-time"}}}
BODY = '{"name": "item %d", "price": 12.5, "tags": ["a", "b"], "listedAt": "%s"}'

EVE_APP = '''
import os
from eve import Eve
from eve.auth import TokenAuth
from flask import current_app

class Tokens(TokenAuth):
    known = {}
    def check_auth(self, token, allowed_roles, resource, method):
        account = self.known.get(token)
        if account is None:
            account = current_app.data.driver.db["accounts"].find_one({"token": token})
            if account is None:
                return False
            self.known[token] = account
        self.set_request_auth_value(account["_id"])
        return True

app = Eve(auth=Tokens, settings={
    "MONGO_URI": os.environ["EVE_MONGO_URI"], "MONGO_DBNAME": os.environ["EVE_MONGO_DBNAME"],
    "RESOURCE_METHODS": ["GET", "POST"], "ITEM_METHODS": ["GET"],
    "PAGINATION_LIMIT": 1000, "OPTIMIZE_PAGINATION_FOR_SPEED": True,
    "DATE_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "DOMAIN": {"items": {"auth_field": "owner", "schema": {
        "name": {"type": "string", "required": True}, "price": {"type": "number", "required": True},
        "tags": {"type": "list", "schema": {"type": "string"}},
        "listedAt": {"type": "datetime", "required": True}}}},
})
'''

FLOOR_APP = '''
import os, sys
from datetime import UTC, datetime
import orjson, uvicorn
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

items = AsyncMongoClient(os.environ["FLOOR_MONGODB_URI"])[os.environ["FLOOR_DATABASE"]]["items"]

def answer(value, status=200):
    return Response(orjson.dumps(value, default=str), status, media_type="application/json")

async def health(request):
    return answer({"ok": True})

async def listing(request):
    return answer(await items.find({}).sort("_id", 1).limit(int(request.query_params["limit"])).to_list(None))

async def create(request):
    doc = orjson.loads(await request.body())
    doc["_id"], doc["createdAt"] = ObjectId(), datetime.now(UTC)
    await items.insert_one(doc)
    return answer(doc, 201)

async def one(request):
    try:
        doc = await items.find_one({"_id": ObjectId(request.path_params["id"])})
    except InvalidId:
        doc = None
    return answer(doc) if doc else answer({"error": "not found"}, 404)

app = Starlette(routes=[Route("/healthz", health), Route("/items", listing), Route("/items", create, methods=["POST"]),
                        Route("/items/{id}", one)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
'''


@dataclass
class Target:
    name: str
    base: str
    headers: dict[str, str]
    create: str
    item: str  # GET <item><id>
    listing: str
    pid: int  # the server process (its children count too: gunicorn's worker)
    ids: list[str] = field(default_factory=list)
    figures: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # ms of the target's own CPU per answer


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (from /proc), in seconds."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def body(i: int) -> dict[str, Any]:
    day = f"2026-01-{1 + i % 28:02d}T00:00:00.000Z"
    parsed: dict[str, Any] = json.loads(BODY.replace("%d", str(i)).replace("%s", day))
    return parsed


# --- targets ---------------------------------------------------------------------------------

@contextlib.contextmanager
def storeengine(name: str, source: Path | None, uri: str, database: str) -> Iterator[Target]:
    """`storeengine serve` of this checkout, or of the source tree `source` (on PYTHONPATH, run by its
    own .venv's Python if it has one, else by ours)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-wp-"))
    (folder / "items.json").write_text(json.dumps(SCHEMA))
    port = free_port()
    python = Path(sys.executable)
    if source is not None and (source / ".venv" / "bin" / "python").exists():
        python = source / ".venv" / "bin" / "python"
    env = {**({"PYTHONPATH": str(source)} if source else {}), "STORE_MONGODB_URI": uri, "STORE_DATABASE": database,
           "STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "STORE_SERVER_SELECTION_TIMEOUT_MS": "20000"}
    cmd = [str(python), "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(folder),
           "--log-level", "warning"]
    try:
        # From the source tree's folder: `python -m` puts the working folder first on sys.path, before
        # PYTHONPATH and the editable install of this checkout.
        with server_process(cmd, port, env, cwd=source) as (base, pid):
            password = secrets.token_hex(8)
            with httpx.Client(base_url=base, timeout=60) as http:
                r = http.post("/api/v1/auth/token", json={"login": "admin", "password": ADMIN_PASSWORD})
                admin = {"Authorization": f"Bearer {r.raise_for_status().json()['token']}"}
                http.post("/api/v1/users", json={"login": "bench", "password": password},
                          headers=admin).raise_for_status()
                r = http.post("/api/v1/auth/token", json={"login": "bench", "password": password})
                token = r.raise_for_status().json()["token"]
            yield Target(name, base, {"Authorization": f"Bearer {token}"}, "/api/v1/items", "/api/v1/items/",
                         f"/api/v1/items?limit={LIST_SIZE}", pid)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def venv(name: str, requirements: list[str]) -> Path:
    folder = PEERS / name
    stamp = folder / ".installed"
    if not stamp.exists() or stamp.read_text() != "\n".join(requirements):
        say(f"installing {', '.join(requirements)} into {folder} (first use)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        subprocess.run([str(folder / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                        *requirements], check=True, stdout=subprocess.DEVNULL)
        stamp.write_text("\n".join(requirements))
    return folder / "bin"


@contextlib.contextmanager
def eve(uri: str, database: str) -> Iterator[Target]:
    bin_dir = venv("eve", ["eve==2.3.*", "gunicorn>=23"])
    token = secrets.token_urlsafe(16)
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(uri, document_class=dict) as client:
        client[database]["accounts"].insert_one({"username": "bench", "token": token})
    folder = Path(tempfile.mkdtemp(prefix="bench-wp-eve-"))
    (folder / "eve_app.py").write_text(EVE_APP)
    port = free_port()
    cmd = [str(bin_dir / "gunicorn"), "--workers", "1", "--worker-class", "gthread", "--threads", "8",
           "--bind", f"127.0.0.1:{port}", "--chdir", str(folder), "eve_app:app"]
    proc = subprocess.Popen(cmd, env={**os.environ, "EVE_MONGO_URI": uri, "EVE_MONGO_DBNAME": database},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(base + "/items", timeout=1).status_code == 401, proc, "eve")
        yield Target("Eve", base, {"Authorization": f"Bearer {token}"}, "/items", "/items/",
                     f"/items?max_results={LIST_SIZE}", proc.pid)
    finally:
        stop_process(proc)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def floor(uri: str, database: str) -> Iterator[Target]:
    folder = Path(tempfile.mkdtemp(prefix="bench-wp-floor-"))
    (folder / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    try:
        with server_process([sys.executable, str(folder / "floor_app.py"), str(port)], port,
                            {"FLOOR_MONGODB_URI": uri, "FLOOR_DATABASE": database}) as (base, pid):
            yield Target("floor", base, {}, "/items", "/items/", f"/items?limit={LIST_SIZE}", pid)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if ready():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer within 60 s")
        time.sleep(0.1)


@contextlib.contextmanager
def jongodb() -> Iterator[str | None]:
    """A jongodb wire server (installed with npm on first use); None when it cannot be had."""
    package = "@jongodb/memory-server-bin-linux-x64-gnu"
    folder = PEERS / "node"
    binary = folder / "node_modules" / package / "bin" / "jongodb"
    if os.environ.get("BENCH_JONGODB") == "0":
        yield None
        return
    if not binary.exists():
        if not shutil.which("npm"):
            say("no npm: the jongodb column is left out")
            yield None
            return
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "package.json").exists():
            (folder / "package.json").write_text('{"name": "storeengine-bench-peers", "private": true}\n')
        say(f"npm: installing {package} into {folder} (first use)")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", f"{package}@0.1.6"],
                       cwd=folder, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    proc = subprocess.Popen([str(binary), "--host=127.0.0.1", f"--port={port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client: pymongo.MongoClient[dict[str, Any]]
                with pymongo.MongoClient(uri, serverSelectionTimeoutMS=300) as client:
                    client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("jongodb did not start") from None
                time.sleep(0.1)
        yield uri
    finally:
        stop_process(proc)


# --- load ------------------------------------------------------------------------------------

def seed(target: Target, count: int) -> None:
    """`count` entities through the target's own POST (8 at a time); their ids kept for GET."""
    import asyncio

    async def run() -> list[str]:
        todo = iter(range(count))
        out: list[str] = []
        async with httpx.AsyncClient(base_url=target.base, headers=target.headers, timeout=120) as http:
            async def worker() -> None:
                for i in todo:
                    r = await http.post(target.create, json=body(i))
                    if r.status_code not in (200, 201):
                        raise RuntimeError(f"{target.name}: seeding answered {r.status_code}: {r.text[:200]}")
                    out.append(str(r.json()["_id"]))

            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return out

    target.ids = asyncio.run(run())


def wrk(target: Target, mode: str, folder: Path, *, count: int = 0, offset: int = 0) -> tuple[float, float]:
    """Answers per second of one wrk run, and the target's own CPU ms per answer; any error fails
    the bench."""
    (folder / "headers").write_text("".join(f"{k}: {v}\n" for k, v in target.headers.items()))
    (folder / "ids").write_text("\n".join(target.ids) + "\n")
    path = {"post": target.create, "get": target.item, "list": target.listing}[mode]
    env = {**os.environ, "WP_MODE": mode, "WP_PATH": path, "WP_HEADERS": str(folder / "headers"),
           "WP_IDS": str(folder / "ids"), "WP_BODY": BODY, "WP_COUNT": str(count), "WP_OFFSET": str(offset)}
    seconds = 600 if count else SECONDS
    connections = CONNECTIONS if mode != "list" else 2
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "60s", "-s", str(LUA), target.base]
    start = cpu_seconds(target.pid)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=seconds + 120)
    used = cpu_seconds(target.pid) - start
    found = [json.loads(t[5:]) for t in done.stdout.splitlines() if t.startswith("@wrk ")]
    if not found or found[-1]["errors"] or not found[-1]["requests"]:
        raise RuntimeError(f"{target.name} {mode}: wrk said {done.stdout[-500:]} {done.stderr[-500:]}")
    answers = found[-1]["requests"]
    return float(answers / found[-1]["seconds"]), used * 1000 / answers


def measure(targets: list[Target]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-wp-wrk-"))
    try:
        for target in targets:
            say(f"seeding {SEED} entities through {target.name}")
            seed(target, SEED)
            target.figures = {"post": [], "get": [], "list": []}
            target.cpu = {"post": [], "get": [], "list": []}
        for r in range(ROUNDS):
            order = targets[r % len(targets):] + targets[:r % len(targets)]  # who goes first rotates
            for mode in ("post", "get", "list"):
                for target in order:
                    count = POSTS if mode == "post" else 0
                    rate, cpu = wrk(target, mode, folder, count=count, offset=SEED + r * POSTS)
                    target.figures[mode].append(rate)
                    target.cpu[mode].append(cpu)
            say(f"round {r + 1}/{ROUNDS} done")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(server: str, targets: list[Target]) -> None:
    by_name = {t.name: t for t in targets}
    med = {t.name: {m: statistics.median(v) for m, v in t.figures.items()} for t in targets}
    print(f"== {server}: {SEED} seeded, {POSTS} POSTs x {ROUNDS} rounds (8 connections), GET by id and "
          f"list of {LIST_SIZE} for {SECONDS:.0f} s a round; medians, answers/s", flush=True)
    print(f"  {'':<22}" + "".join(f"{name:>14}" for name in by_name))
    cpu = {t.name: {m: statistics.median(v) for m, v in t.cpu.items()} for t in targets}
    for mode, label in (("post", "POST"), ("get", "GET by id"), ("list", f"list {LIST_SIZE}")):
        print(f"  {label:<22}" + "".join(f"{med[n][mode]:>14.1f}" for n in by_name))
    print("  own CPU per answer (ms: the server process, not the database)")
    for mode, label in (("post", "POST"), ("get", "GET by id"), ("list", f"list {LIST_SIZE}")):
        print(f"  {label:<22}" + "".join(f"{cpu[n][mode]:>14.2f}" for n in by_name))
    for name in by_name:
        if not name.startswith("storeengine") and name != "baseline":
            continue
        for other, modes in (("Eve", ("post", "get", "list")), ("floor", ("post", "get", "list")),
                             ("baseline", ("post", "get", "list"))):
            if other in med and other != name:
                cells = ", ".join(f"{m} {med[name][m] / med[other][m]:.2f}" for m in modes)
                print(f"  {name} / {other}: {cells}")
    print(flush=True)


def run_on(server: str, uri: str) -> None:
    tag = f"{os.getpid()}_{int(time.time())}"
    baseline = os.environ.get("BENCH_BASELINE")
    with contextlib.ExitStack() as stack:
        targets = [stack.enter_context(storeengine("storeengine", None, uri, f"wp_se_{tag}"))]
        if baseline:
            targets.append(stack.enter_context(storeengine("baseline", Path(baseline).resolve(), uri,
                                                           f"wp_base_{tag}")))
        if os.environ.get("BENCH_PEERS") != "0":  # 0: storeengine (and the baseline) only
            targets.append(stack.enter_context(eve(uri, f"wp_eve_{tag}")))
            targets.append(stack.enter_context(floor(uri, f"wp_floor_{tag}")))
        measure(targets)
    report(server, targets)


def main() -> None:
    if not shutil.which("wrk"):
        print("!!! wrk is not installed (Debian: apt-get install wrk): write_path.py is SKIPPED !!!", flush=True)
        return
    with wire_server() as uri:
        if uri is None:
            print("!!! no .venv-wire: the mongoeco column is SKIPPED; run `make wire-env` !!!", flush=True)
        else:
            run_on("mongoeco", uri)
    with jongodb() as uri:
        if uri is not None:
            run_on("jongodb", uri)


if __name__ == "__main__":
    main()
