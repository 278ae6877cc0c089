"""Shared fixtures: the app driven in-process (on the embedded database, SQLite in memory, or on the
wire lane for modules with LANES: tests/lanes.py), users, and real server processes (each on an
embedded database folder of its own unless told otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from storeengine.app import create_app
from storeengine.settings import Settings

# The storage conformance suite lives in the package (storeengine/storage/testing.py): show its
# failed asserts as pytest shows a test module's (nothing imported above loads it).
pytest.register_assert_rewrite("storeengine.storage.testing")

HERE = Path(__file__).parent
REDIS_URL = "redis://127.0.0.1:6379/0"
ADMIN_LOGIN, ADMIN_PASSWORD = "admin", "admin-password-1"
FAST_HASH = {"argon2_time_cost": 1, "argon2_memory_kib": 64}


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(HERE / "schemas", target)
    return target


pytest_plugins = ["tests.lanes"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `lanes(...)`, or in a module with LANES, runs once per lane (tests/lanes.py)."""
    marker = metafunc.definition.get_closest_marker("lanes")
    lanes = marker.args if marker else getattr(metafunc.module, "LANES", None)
    if lanes and "lane" in metafunc.fixturenames:
        metafunc.parametrize("lane", lanes, indirect=True)


@pytest.fixture
def lane(request: pytest.FixtureRequest) -> str:
    """Which database the in-process app uses: "embedded" unless the module's LANES say more."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture
def settings(schema_dir: Path, lane: str, request: pytest.FixtureRequest) -> Settings:
    database: dict[str, Any] = {}
    if lane == "wire":
        wire_db = request.getfixturevalue("wire_db")
        database = {"mongodb_uri": wire_db.uri, "database": wire_db.name}
    return Settings(schema_dir=schema_dir, secret="test-secret-of-at-least-32-bytes!!", admin_password=ADMIN_PASSWORD,
                    schema_poll_seconds=0.1, data_dir=":memory:", **FAST_HASH, **database)


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol, as uvicorn does."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with lifespan(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def token_for(client: httpx.AsyncClient, login: str, password: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers of the bootstrapped admin."""
    return await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)


class Users:
    """Creates groups and users through the API and logs them in."""

    def __init__(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        self.client, self.admin = client, admin

    async def group(self, name: str) -> str:
        r = await self.client.post("/api/v1/groups", json={"name": name}, headers=self.admin)
        assert r.status_code == 201, r.text
        return str(r.json()["_id"])

    async def user(self, login: str, *, groups: list[str] | None = None, roles: list[str] | None = None,
                   password: str = "password-123") -> tuple[str, dict[str, str]]:
        body = {"login": login, "password": password, "groups": groups or [], "roles": roles or []}
        r = await self.client.post("/api/v1/users", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return str(r.json()["_id"]), await token_for(self.client, login, password)


@pytest.fixture
async def users(client: httpx.AsyncClient, admin: dict[str, str]) -> Users:
    return Users(client, admin)


# --- real server processes -------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path, handle: Any) -> None:
        self.proc, self.port, self.log, self.handle = proc, port, log, handle
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(schema_dir: Path, log: Path, *, env: dict[str, str] | None = None, workers: int = 1) -> Server:
    port = free_port()
    full_env = {**os.environ, "STORE_SECRET": "test-secret-of-at-least-32-bytes!!",
                "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_DATA_DIR": str(log.parent / f"{log.stem}-data"),
                "STORE_ARGON2_TIME_COST": "1", "STORE_ARGON2_MEMORY_KIB": "64", **(env or {})}
    cmd = [sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas", str(schema_dir),
           "--workers", str(workers), "--log-level", "warning"]
    handle = log.open("wb")
    proc = subprocess.Popen(cmd, env=full_env, stdout=handle, stderr=subprocess.STDOUT)
    server = Server(proc, port, log, handle)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            handle.close()
            raise RuntimeError(f"server exited early:\n{server.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server did not start:\n{server.output()}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate, and kill if it has not ended within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_server(server: Server) -> None:
    stop_process(server.proc)
    server.handle.close()


@pytest.fixture
def server(schema_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """`storeengine serve` as a real process on a free port, on the embedded database."""
    srv = start_server(schema_dir, tmp_path / "server.log")
    yield srv
    stop_server(srv)


@pytest.fixture
def redis_url() -> str:
    """Redis must run at 127.0.0.1:6379: the tests that need it fail (not skip) without it."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:  # closed: no socket left to GC
            client.ping()
    except redis.RedisError as exc:
        raise RuntimeError(f"these tests need a Redis at {REDIS_URL} (start one): {exc}") from exc
    return REDIS_URL
