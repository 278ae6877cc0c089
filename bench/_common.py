"""Shared bench helpers: an in-process app, its lifespan, timing and percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from storeengine.app import create_app
from storeengine.http.context import Context
from storeengine.settings import Settings

SECRET = "bench-secret-of-at-least-32-bytes!!"
ADMIN_PASSWORD = "bench-admin-password"


def database_note() -> str:
    uri = os.environ.get("STORE_MONGODB_URI")
    return f"MongoDB at {uri}" if uri else "embedded mongomock-motor (set STORE_MONGODB_URI for a real MongoDB)"


def schema_folder(schemas: dict[str, str]) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="storeengine-bench-"))
    for name, text in schemas.items():
        (folder / f"{name}.json").write_text(text)
    return folder


@contextlib.asynccontextmanager
async def running_app(schemas: dict[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, Context]]:
    settings = Settings(schema_dir=schema_folder(schemas), secret=SECRET, admin_password=ADMIN_PASSWORD,
                        argon2_time_cost=1, argon2_memory_kib=64,
                        database=f"bench_{os.getpid()}_{int(time.time())}")
    app = create_app(settings)
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    assert (await from_app.get())["type"] == "lifespan.startup.complete"
    ctx: Context = app.other_asgi_app.app.state.ctx  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        yield client, ctx
    await to_app.put({"type": "lifespan.shutdown"})
    await from_app.get()
    await task


async def admin_headers(client: httpx.AsyncClient, login: str = "admin",
                        password: str = ADMIN_PASSWORD) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", json={"login": login, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def timed(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 1) -> list[float]:
    """Seconds per call, after warm-up calls."""
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
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}")
