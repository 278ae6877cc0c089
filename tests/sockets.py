"""Helpers for tests against real `storeengine serve` processes over HTTP and Socket.IO: the
`Api` client of a server, its `api` / `admin` / `shared_server` fixtures (import them into a test
module to use them there: `admin` shadows conftest's in-process one), and `Listener` /
`listening`, a python-socketio client that records the `change` events it receives."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import socketio

from tests.conftest import (
    ADMIN_LOGIN,
    ADMIN_PASSWORD,
    HERE,
    Server,
    start_server,
    stop_server,
)

WAIT = 5.0  # bound for anything that should happen
GRACE = 0.3  # how long "nothing more arrives" is watched
SECRET = "test-secret-of-at-least-32-bytes!!"  # what start_server gives the process
ORDER = {"product": "0123456789abcdef01234567", "quantity": 1}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")




# --- HTTP helper -----------------------------------------------------------------------

class Api:
    """Calls to a real server; every call states the status it expects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=WAIT)

    async def token(self, login: str = ADMIN_LOGIN, password: str = ADMIN_PASSWORD) -> str:
        r = await self.http.post("/api/v1/auth/token", json={"login": login, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    async def session(self, login: str, password: str = "password-123") -> str:
        r = await self.http.post("/api/v1/auth", json={"login": login, "password": password})
        assert r.status_code == 200, r.text
        return str(r.cookies["sid"])

    async def call(self, method: str, path: str, token: str | None = None, body: Any = None, *,
                   status: int = 200, headers: dict[str, str] | None = None) -> Any:
        hdrs = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self.http.request(method, path, json=body, headers={**hdrs, **(headers or {})})
        assert r.status_code == status, r.text
        return r.json()

    async def user(self, admin: str, login: str, groups: list[str] | None = None) -> tuple[str, str]:
        body = {"login": login, "password": "password-123", "groups": groups or []}
        created = await self.call("POST", "/api/v1/users", admin, body, status=201)
        return str(created["_id"]), await self.token(login, "password-123")

    async def group(self, admin: str, name: str) -> str:
        return str((await self.call("POST", "/api/v1/groups", admin, {"name": name}, status=201))["_id"])

    async def order(self, token: str, **extra: Any) -> dict[str, Any]:
        return dict(await self.call("POST", "/api/v1/orders", token, {**ORDER, **extra}, status=201))


@pytest.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    client = Api(server.url)
    yield client
    await client.http.aclose()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that write nothing (handshake, refused connections, acks)."""
    srv = start_server(HERE / "schemas", tmp_path_factory.mktemp("realtime") / "server.log")
    yield srv
    stop_server(srv)


@pytest.fixture
async def admin(api: Api) -> str:  # shadows conftest's in-process `admin`: a token of the real server
    return await api.token()


# --- Socket.IO helper ------------------------------------------------------------------

class Listener:
    """A connected python-socketio client whose `change` events land in a queue."""

    def __init__(self, **client: Any) -> None:
        self.sio = socketio.AsyncClient(reconnection=False, **client)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.sio.on("change", self.events.put)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_disconnect(self, *args: Any) -> None:
        self.gone.set()

    async def ack(self, event: str, data: Any) -> Any:
        return await self.sio.call(event, data, timeout=WAIT)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), WAIT)

    async def quiet(self, seconds: float = GRACE) -> None:
        """Nothing (more) arrives."""
        await asyncio.sleep(seconds)
        assert self.events.empty(), f"unexpected event: {self.events.get_nowait()}"

    async def only_marker(self, api: Api, token: str) -> None:
        """Nothing arrived for earlier writes: the caller's own next write is the first event."""
        marker = await api.order(token, note="marker")
        event = await self.next()
        assert (event["op"], event["_id"]) == ("create", marker["_id"]), event
        await self.quiet()


@contextlib.asynccontextmanager
async def listening(url: str, *stores: str, **connect: Any) -> AsyncIterator[Listener]:
    """Connect (over WebSocket), subscribe to `stores`, and always disconnect afterwards."""
    listener = Listener()
    await listener.sio.connect(url, transports=["websocket"], wait_timeout=WAIT, **connect)
    try:
        for store in stores:
            assert await listener.ack("subscribe", {"store": store}) == {"success": True}
        yield listener
    finally:
        await listener.sio.disconnect()


def bearer(token: str) -> dict[str, Any]:
    return {"auth": {"token": token}}


def assert_event(event: dict[str, Any], op: str, entity: dict[str, Any], store: str = "orders") -> None:
    assert set(event) == {"store", "op", "_id", "entity", "at", "seq"}, event  # seq: API.md 8 and 10
    assert isinstance(event["seq"], str) and event["seq"], event
    assert (event["store"], event["op"], event["_id"], event["entity"]) == (store, op, entity["_id"], entity)
    assert ISO_MS.match(event["at"]), event["at"]
    assert event["at"] >= entity["updatedAt"]  # same format: the text order is the time order
