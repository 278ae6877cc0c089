"""Shared bench helpers: an in-process app and its lifespan, timing, percentiles, output lines.

The database is the embedded one (SQLite, in a fresh temporary STORE_DATA_DIR) unless
STORE_MONGODB_URI is set (Settings reads it from the environment); each run then uses a fresh
database of its own and drops it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from pymongo.errors import OperationFailure

from storeengine.app import create_app
from storeengine.http.context import Context
from storeengine.settings import Settings
from storeengine.storage import connect
from storeengine.storage.mongo import Collection, Storage
from storeengine.storage.sqlite.collection import SqliteCollection

SECRET = "bench-secret-of-at-least-32-bytes!!"
ADMIN_PASSWORD = "bench-admin-password"
FAST_HASH = {"argon2_time_cost": 1, "argon2_memory_kib": 64}


def database_note() -> str:
    uri = os.environ.get("STORE_MONGODB_URI")
    return f"database: MongoDB at {uri}" if uri else "database: embedded SQLite in a temporary folder"


@contextlib.contextmanager
def data_dir() -> Iterator[str]:
    """A fresh STORE_DATA_DIR for one run (removed afterwards)."""
    folder = tempfile.mkdtemp(prefix="storeengine-bench-data-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def schema_folder(schemas: dict[str, str]) -> Path:
    """A temporary schema folder holding `<name>.json` for each entry."""
    folder = Path(tempfile.mkdtemp(prefix="storeengine-bench-"))
    for name, text in schemas.items():
        (folder / f"{name}.json").write_text(text)
    return folder


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol, as uvicorn does (the same as tests/conftest.py)."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task


class _SeamCursor:
    """The little of a driver cursor the benchmarks chain: find(...).sort(k, d).limit(n).to_list()."""

    def __init__(self, coll: SqliteCollection, query: dict[str, Any], projection: dict[str, Any] | None) -> None:
        self.coll, self.query, self.projection = coll, query, projection
        self.keys: list[tuple[str, int]] = []
        self.count = 0

    def sort(self, key: str, direction: int) -> _SeamCursor:
        self.keys.append((key, direction))
        return self

    def limit(self, count: int) -> _SeamCursor:
        self.count = count
        return self

    async def to_list(self, length: int | None) -> list[dict[str, Any]]:
        return await self.coll.find(self.query, self.projection, self.keys, 0, self.count)


class EmbeddedRaw:
    """For the embedded database, what `driver_collection` gives: its own collection (SQLite is the
    driver) with the driver's spelling of bulk inserts and cursors."""

    def __init__(self, coll: SqliteCollection) -> None:
        self.coll = coll

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        await self.coll.insert_many(docs)

    def find(self, query: dict[str, Any], projection: dict[str, Any] | None = None) -> _SeamCursor:
        return _SeamCursor(self.coll, query, projection)

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        return await self.coll.find_one(query)


def driver_collection(ctx: Context, name: str) -> Any:
    """The driver's collection under the app's storage, for bulk loads and floors."""
    if isinstance(ctx.storage, Storage):
        return ctx.storage.collection(name).raw
    coll = ctx.storage.collection(name)
    assert isinstance(coll, SqliteCollection)
    return EmbeddedRaw(coll)


@contextlib.asynccontextmanager
async def running_app(schemas: dict[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, Context]]:
    """The whole app in-process: an httpx client over ASGITransport and the app's context."""
    folder = schema_folder(schemas)
    with data_dir() as data:
        settings = Settings(schema_dir=folder, secret=SECRET, admin_password=ADMIN_PASSWORD, data_dir=data,
                            database=f"bench_{os.getpid()}_{int(time.time())}", **FAST_HASH)  # type: ignore[arg-type]
        storage = connect(settings)
        app: Any = create_app(settings, storage=storage)
        ctx: Context = app.other_asgi_app.app.state.ctx  # socketio.ASGIApp -> BodyLimit -> Starlette
        try:
            async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                        base_url="http://bench") as client:
                yield client, ctx
                if isinstance(storage, Storage):  # leave no bench database behind on a real server
                    with contextlib.suppress(OperationFailure):  # jongodb has no dropDatabase (its data dies with it)
                        await storage.client.drop_database(settings.database)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


async def bearer(client: httpx.AsyncClient, login: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", json={"login": login, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def timed(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 1) -> list[float]:
    """Seconds per call, measured with perf_counter after `warmup` unmeasured calls."""
    for _ in range(warmup):
        await fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - start)
    return out


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(label: str, value: str) -> None:
    print(f"  {label:<46} {value}", flush=True)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process this benchmark started; kill it if it has not ended within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def server_process(cmd: list[str], port: int, env: dict[str, str] | None = None,
                   cwd: Path | None = None, start_seconds: float = 30.0) -> Iterator[tuple[str, int]]:
    """A server process (its url and pid) once /healthz answers; stopped (this one only) at the end.
    On the embedded database it gets a fresh STORE_DATA_DIR of its own."""
    data = tempfile.mkdtemp(prefix="storeengine-bench-data-")
    proc = subprocess.Popen(cmd, env={**os.environ, "STORE_DATA_DIR": data, **(env or {})},
                            stdout=subprocess.DEVNULL, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{cmd} did not answer /healthz")
        yield url, proc.pid
    finally:
        stop_process(proc)
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def counting_calls(names: Iterable[str]) -> Iterator[dict[str, int]]:
    """Count the calls (database round trips) of these collection methods while inside (the
    backend's: MongoDB's Collection, or the embedded database's)."""
    counts = dict.fromkeys(names, 0)
    kind: type[Any] = Collection if os.environ.get("STORE_MONGODB_URI") else SqliteCollection
    originals = {name: getattr(kind, name) for name in counts}

    def wrap(name: str) -> Any:
        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return await originals[name](self, *args, **kwargs)
        return counted

    for name in counts:
        setattr(kind, name, wrap(name))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(kind, name, original)
