"""Socket.IO change events against real server processes (API.md section 8)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import socketio

from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD

WAIT = 5.0


class Api:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url)

    async def token(self, login: str = ADMIN_LOGIN, password: str = ADMIN_PASSWORD) -> str:
        r = await self.http.post("/api/v1/auth/token", json={"login": login, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    async def call(self, method: str, path: str, token: str, body: Any = None, status: int = 200) -> Any:
        r = await self.http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == status, r.text
        return r.json()

    async def user(self, admin: str, login: str) -> tuple[str, str]:
        created = await self.call("POST", "/api/v1/users", admin, {"login": login, "password": "password-123"}, 201)
        return created["_id"], await self.token(login, "password-123")


@pytest.fixture
async def api(server) -> AsyncIterator[Api]:
    client = Api(server.url)
    yield client
    await client.http.aclose()


@contextlib.asynccontextmanager
async def listener(url: str, store: str | None = "orders",
                   **connect: Any) -> AsyncIterator[tuple[socketio.AsyncClient, asyncio.Queue]]:
    sio = socketio.AsyncClient(reconnection=False)
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sio.on("change", events.put)
    await sio.connect(url, transports=["websocket"], wait_timeout=WAIT, **connect)
    try:
        if store:
            assert await sio.call("subscribe", {"store": store}, timeout=WAIT) == {"success": True}
        yield sio, events
    finally:
        await sio.disconnect()


async def next_event(events: asyncio.Queue) -> dict[str, Any]:
    return await asyncio.wait_for(events.get(), WAIT)


async def nothing(events: asyncio.Queue, seconds: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(events.get(), seconds)


ORDER = {"product": "0123456789abcdef01234567", "quantity": 1}


async def test_handshake_advertises_the_ping_settings(server):
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{server.url}/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 200
    opening = json.loads(r.text[r.text.index("{"):])
    assert opening["pingInterval"] == 25000 and opening["pingTimeout"] == 60000


async def test_events_arrive_in_write_order_with_their_payloads(api):
    admin = await api.token()
    async with listener(api.url, auth={"token": admin}) as (_, events):
        created = await api.call("POST", "/api/v1/orders", admin, ORDER, 201)
        path = f"/api/v1/orders/{created['_id']}"
        first = await api.call("PATCH", path, admin, {"quantity": 2})
        second = await api.call("PATCH", path, admin, {"quantity": 3})
        await api.call("DELETE", path, admin)
        got = [await next_event(events) for _ in range(4)]
    assert [e["op"] for e in got] == ["create", "update", "update", "delete"]
    assert [e["entity"] for e in got] == [created, first, second, second]
    for event in got:
        assert event["store"] == "orders" and event["_id"] == created["_id"]
        assert event["at"].endswith("Z")


async def test_unsubscribe_stops_events_and_unknown_stores_are_404(api):
    admin = await api.token()
    async with listener(api.url, auth={"token": admin}) as (sio, events):
        ack = await sio.call("subscribe", {"store": "nope"}, timeout=WAIT)
        assert ack["success"] is False and ack["code"] == "404" and ack["tags"] == ["error_not_found"]
        assert (await sio.call("subscribe", "junk", timeout=WAIT))["code"] == "400"
        assert await sio.call("unsubscribe", {"store": "orders"}, timeout=WAIT) == {"success": True}
        await api.call("POST", "/api/v1/orders", admin, ORDER, 201)
        await nothing(events)


async def test_events_follow_read_access(api):
    admin = await api.token()
    owner_id, owner = await api.user(admin, "owner")
    reader_id, reader = await api.user(admin, "reader")
    async with listener(api.url, auth={"token": reader}) as (_, events):
        created = await api.call("POST", "/api/v1/orders", owner, ORDER, 201)
        path = f"/api/v1/orders/{created['_id']}"
        await api.call("PATCH", path, owner, {"quantity": 2})
        await nothing(events)
        await api.call("PUT", path + "/acl", owner, {"access": [reader_id]})
        granted = await next_event(events)
        assert granted["op"] == "enter" and granted["entity"]["access"] == [reader_id]  # API.md 8: enter
        await api.call("PATCH", path, owner, {"quantity": 5})
        assert (await next_event(events))["entity"]["quantity"] == 5
        await api.call("DELETE", path, owner)
        assert (await next_event(events))["op"] == "delete"


@pytest.mark.parametrize("how", ["token", "apiKey", "header", "cookie"])
async def test_every_credential_connects(api, how):
    admin = await api.token()
    if how == "token":
        connect: dict[str, Any] = {"auth": {"token": admin}}
    elif how == "apiKey":
        key = (await api.call("POST", "/api/v1/auth/keys", admin, {"name": "k"}, 201))["key"]
        connect = {"auth": {"apiKey": key}}
    elif how == "header":
        connect = {"headers": {"Authorization": f"Bearer {admin}"}}
    else:
        r = await api.http.post("/api/v1/auth", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
        connect = {"headers": {"Cookie": f"sid={r.cookies['sid']}"}}
    async with listener(api.url, **connect) as (_, events):
        await api.call("POST", "/api/v1/orders", admin, ORDER, 201)
        assert (await next_event(events))["op"] == "create"


@pytest.mark.parametrize("connect", [{}, {"auth": {"token": "forged.token.value"}}, {"auth": {"apiKey": "sk_nope"}},
                                     {"headers": {"Cookie": "sid=forged"}}])
async def test_anonymous_and_forged_connections_are_refused(server, connect):
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(server.url, transports=["websocket"], wait_timeout=WAIT, **connect)
    assert errors == [{"message": "Unauthorized"}]


@pytest.mark.parametrize("revoke", ["logout", "delete key"])
async def test_revoked_credentials_stop_receiving_events(api, revoke):
    admin = await api.token()
    if revoke == "logout":
        victim = await api.token()
        connect = {"auth": {"token": victim}}
    else:
        key = await api.call("POST", "/api/v1/auth/keys", admin, {"name": "k"}, 201)
        connect = {"auth": {"apiKey": key["key"]}}
    async with listener(api.url, **connect) as (sio, events):
        await api.call("POST", "/api/v1/orders", admin, ORDER, 201)
        assert (await next_event(events))["op"] == "create"
        if revoke == "logout":
            await api.call("POST", "/api/v1/auth/logout", victim)
        else:
            await api.call("DELETE", f"/api/v1/auth/keys/{key['_id']}", admin)
        for _ in range(50):
            if not sio.connected:
                break
            await asyncio.sleep(0.05)
        assert not sio.connected
        await api.call("POST", "/api/v1/orders", admin, ORDER, 201)
        await nothing(events)


async def test_rooms_follow_a_change_of_groups(api):
    admin = await api.token()
    team = (await api.call("POST", "/api/v1/groups", admin, {"name": "team"}, 201))["_id"]
    _, owner = await api.user(admin, "owner")
    await api.call("PATCH", f"/api/v1/users/{(await api.call('GET', '/api/v1/auth/me', owner))['_id']}", admin,
                   {"groups": [team]})
    joiner_id, joiner = await api.user(admin, "joiner")
    created = await api.call("POST", "/api/v1/orders", owner, ORDER, 201)
    assert created["group"] == team
    async with listener(api.url, auth={"token": joiner}) as (_, events):
        path = f"/api/v1/orders/{created['_id']}"
        await api.call("PATCH", path, owner, {"quantity": 2})
        await nothing(events)
        await api.call("PATCH", f"/api/v1/users/{joiner_id}", admin, {"groups": [team]})
        await asyncio.sleep(1.5)  # the server re-checks its sockets every second
        await api.call("PATCH", path, owner, {"quantity": 3})
        assert (await next_event(events))["entity"]["quantity"] == 3


async def test_rooms_follow_a_change_of_read_rules(api, schema_dir):
    admin = await api.token()
    _, owner = await api.user(admin, "owner")
    _, other = await api.user(admin, "other")
    created = await api.call("POST", "/api/v1/orders", owner, ORDER, 201)
    path = f"/api/v1/orders/{created['_id']}"
    async with listener(api.url, auth={"token": other}) as (_, events):
        await api.call("PATCH", path, owner, {"quantity": 2})
        await nothing(events)
        schema = json.loads((schema_dir / "orders.json").read_text())
        schema["x-acl"] = {"read": ["authenticated"]}
        (schema_dir / "orders.json").write_text(json.dumps(schema))
        await asyncio.sleep(2)  # reload (0.5 s) and the socket re-check (1 s)
        await api.call("PATCH", path, owner, {"quantity": 3})
        assert (await next_event(events))["entity"]["quantity"] == 3
