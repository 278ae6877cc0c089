"""Legacy Socket.IO clients (Engine.IO v3 / Socket.IO v2) beside v4: API.md section 8.

The real client is socket.io-client 2.5.0 from npm run by Node (tests/realtime/transport/legacy_client.js),
installed on first use into tests/.node (ignored by git), against real `storeengine serve`
processes. The seed's raw frames and the v3 codec are in test_legacy_wire.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, HERE, Server, start_server, stop_server

WAIT = 10.0  # bound for anything that should happen (Node start-up included)
GRACE = 0.5  # how long "nothing (more) arrives" is watched
CLIENT_VERSION = "2.5.0"
NODE_DIR = HERE / ".node"
ORDER = {"product": "0123456789abcdef01234567", "quantity": 1}
FAST_PING = {"STORE_SOCKETIO_PING_INTERVAL_SECONDS": "1", "STORE_SOCKETIO_PING_TIMEOUT_SECONDS": "2"}


# --- servers and HTTP ------------------------------------------------------------------

@pytest.fixture(scope="module")
def legacy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(HERE / "schemas", tmp_path_factory.mktemp("legacy") / "server.log")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def fast_ping_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose heartbeat is 1 s (interval) + 2 s (timeout)."""
    srv = start_server(HERE / "schemas", tmp_path_factory.mktemp("legacy-ping") / "server.log", env=FAST_PING)
    yield srv
    stop_server(srv)


class Api:
    """Calls to a real server; every call states the status it expects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=WAIT)

    async def call(self, method: str, path: str, headers: dict[str, str], body: Any = None, *,
                   status: int = 200) -> Any:
        r = await self.http.request(method, path, json=body, headers=headers)
        assert r.status_code == status, r.text
        return r.json()

    async def admin(self) -> dict[str, str]:
        r = await self.http.post("/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def user(self) -> tuple[str, str]:
        """A new user's id and the `sid` cookie of a session of theirs."""
        login = f"legacy-{uuid.uuid4().hex[:10]}"
        body = {"login": login, "password": "password-123"}
        created = await self.call("POST", "/api/v1/users", await self.admin(), body, status=201)
        r = await self.http.post("/api/v1/auth", json=body)
        assert r.status_code == 200, r.text
        return str(created["_id"]), str(r.cookies["sid"])


@contextlib.asynccontextmanager
async def api_of(server: Server) -> AsyncIterator[Api]:
    api = Api(server.url)
    try:
        yield api
    finally:
        await api.http.aclose()


def cookie(sid: str) -> dict[str, str]:
    return {"Cookie": f"sid={sid}"}


# --- socket.io-client 2.x under Node -----------------------------------------------------

@pytest.fixture(scope="session")
def node_modules() -> Path:
    return install_node_client()


def install_node_client() -> Path:
    """socket.io-client 2.x installed from npm into tests/.node (once); Node and npm must be on PATH."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise RuntimeError("these tests need Node.js and npm on PATH (socket.io-client 2.x runs under Node)")
    package = NODE_DIR / "node_modules" / "socket.io-client" / "package.json"
    if not package.exists() or json.loads(package.read_text())["version"] != CLIENT_VERSION:
        subprocess.run([npm, "install", "--prefix", str(NODE_DIR), "--no-save", "--no-package-lock", "--no-audit",
                        "--no-fund", f"socket.io-client@{CLIENT_VERSION}"], check=True, capture_output=True,
                       timeout=300)
    return NODE_DIR / "node_modules"


class NodeClient:
    """One socket.io-client 2.x process; each kind of event it reports lands in its own queue."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: defaultdict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.reader = asyncio.create_task(self._read())
        self.acks = 0

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            event = json.loads(line)
            self.events[event["ev"]].put_nowait(event)

    async def next(self, kind: str, within: float = WAIT) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.events[kind].get(), within)
        except TimeoutError:
            seen = {k: q.qsize() for k, q in self.events.items()}
            raise AssertionError(f"no {kind!r} event within {within} s (queued: {seen})") from None

    def none(self, kind: str) -> None:
        assert self.events[kind].empty(), f"unexpected {kind}: {self.events[kind].get_nowait()}"

    async def ack(self, event: str, data: Any) -> Any:
        self.acks += 1
        self._command({"emit": event, "data": data, "id": self.acks})
        answer = await self.next("ack")
        assert answer["id"] == self.acks, answer
        return answer.get("data")

    def _command(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                self._command({"close": True})
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


@contextlib.asynccontextmanager
async def node_client(modules: Path, url: str, **options: Any) -> AsyncIterator[NodeClient]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(Path(__file__).parent / "legacy_client.js"), url, json.dumps(options),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "NODE_PATH": str(modules)})
    client = NodeClient(proc)
    try:
        yield client
    finally:
        await client.close()


TRANSPORTS = {"polling+upgrade": ["polling", "websocket"], "websocket": ["websocket"], "polling": ["polling"]}


async def connected(client: NodeClient, how: str) -> None:
    """The client is connected, and on the transport `how` promises."""
    assert (await client.next("transport"))["name"] == TRANSPORTS[how][0]
    await client.next("connect")
    if how == "polling+upgrade":
        assert (await client.next("upgrade"))["name"] == "websocket"


# --- the real client -------------------------------------------------------------------

@pytest.mark.parametrize("how", TRANSPORTS)
async def test_socket_io_client_2_subscribes_and_gets_changes_in_order(
        legacy_server: Server, node_modules: Path, how: str) -> None:
    async with api_of(legacy_server) as api:
        _, sid = await api.user()
        async with node_client(node_modules, api.url, transports=TRANSPORTS[how], extraHeaders=cookie(sid)) as c:
            await connected(c, how)
            # A store name outside the BMP travels in the client's payload: its v3 length is in UTF-16 units.
            missing = await c.ack("subscribe", {"store": "nope-\U0001f984"})
            assert (missing["success"], missing["code"]) == (False, "404"), missing
            assert await c.ack("subscribe", {"store": "orders"}) == {"success": True}
            created = await api.call("POST", "/api/v1/orders", cookie(sid), {**ORDER, "note": "\U0001f984 é"},
                                     status=201)
            path = f"/api/v1/orders/{created['_id']}"
            patched = await api.call("PATCH", path, cookie(sid), {"quantity": 2})
            await api.call("DELETE", path, cookie(sid))
            got = [(await c.next("change"))["data"] for _ in range(3)]
            await asyncio.sleep(GRACE)
            c.none("change")
            c.none("disconnect")
    assert [(e["op"], e["_id"], e["entity"]) for e in got] == [
        ("create", created["_id"], created), ("update", created["_id"], patched),
        ("delete", created["_id"], patched)]
    assert all(e["store"] == "orders" for e in got)


@pytest.mark.parametrize("how", ["websocket", "polling"])
async def test_heartbeat_holds_a_legacy_client_past_several_ping_intervals(
        fast_ping_server: Server, node_modules: Path, how: str) -> None:
    async with api_of(fast_ping_server) as api:
        _, sid = await api.user()
        async with node_client(node_modules, api.url, transports=TRANSPORTS[how], extraHeaders=cookie(sid)) as c:
            await connected(c, how)
            assert await c.ack("subscribe", {"store": "orders"}) == {"success": True}
            for _ in range(4):  # the client pings every second and gives up after 2 s without a pong
                await c.next("pong", 3)
            c.none("disconnect")
            created = await api.call("POST", "/api/v1/orders", cookie(sid), ORDER, status=201)
            assert (await c.next("change"))["data"]["_id"] == created["_id"]


@pytest.mark.parametrize("how", ["websocket", "polling"])
@pytest.mark.parametrize("headers", [{}, cookie("forged-session-id")], ids=["no cookie", "forged cookie"])
async def test_a_legacy_client_without_a_valid_credential_is_refused(
        legacy_server: Server, node_modules: Path, how: str, headers: dict[str, str]) -> None:
    before = legacy_server.output().count("Unauthorized")
    async with node_client(node_modules, legacy_server.url, transports=TRANSPORTS[how], extraHeaders=headers) as c:
        assert (await c.next("error"))["data"] == "Unauthorized"
        await asyncio.sleep(GRACE)
        c.none("connect")
    assert legacy_server.output().count("Unauthorized") == before + 1  # and the log says why


async def test_a_revoked_session_drops_the_legacy_client(legacy_server: Server, node_modules: Path) -> None:
    async with api_of(legacy_server) as api:
        _, sid = await api.user()
        async with node_client(node_modules, api.url, transports=["websocket"], extraHeaders=cookie(sid)) as c:
            await connected(c, "websocket")
            await api.call("POST", "/api/v1/auth/logout", cookie(sid))
            assert (await c.next("disconnect"))["reason"] == "io server disconnect"


async def test_v3_and_v4_sockets_of_one_user_get_the_same_events(legacy_server: Server, node_modules: Path) -> None:
    async with api_of(legacy_server) as api:
        user_id, sid = await api.user()
        admin = await api.admin()
        v4 = socketio.AsyncClient(reconnection=False)
        v4_events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        v4.on("change", v4_events.put)
        await v4.connect(api.url, transports=["websocket"], headers=cookie(sid), wait_timeout=WAIT)
        try:
            assert await v4.call("subscribe", {"store": "orders"}, timeout=WAIT) == {"success": True}
            async with node_client(node_modules, api.url, extraHeaders=cookie(sid)) as v3:
                await connected(v3, "polling+upgrade")
                assert await v3.ack("subscribe", {"store": "orders"}) == {"success": True}
                await api.call("POST", "/api/v1/orders", admin, ORDER, status=201)  # not theirs to read
                shared = await api.call("POST", "/api/v1/orders", admin, {**ORDER, "access": [user_id]}, status=201)
                mine = await api.call("POST", "/api/v1/orders", cookie(sid), ORDER, status=201)
                await api.call("DELETE", f"/api/v1/orders/{mine['_id']}", cookie(sid))
                v3_got = [(await v3.next("change"))["data"] for _ in range(3)]
                v4_got = [await asyncio.wait_for(v4_events.get(), WAIT) for _ in range(3)]
                await asyncio.sleep(GRACE)
                v3.none("change")
                assert v4_events.empty()
        finally:
            await v4.disconnect()
    assert [(e["op"], e["_id"]) for e in v3_got] == [
        ("create", shared["_id"]), ("create", mine["_id"]), ("delete", mine["_id"])]
    assert v3_got == v4_got
