"""API.md 12 over Socket.IO, against a real server: the handshake's `Api-Key` header (or a tenant's
session cookie) selects the tenant's Socket.IO server; events never cross databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from tests.conftest import Server
from tests.sockets import ORDER, WAIT, Api, admin, api, listening

__all__ = ["admin", "api"]  # tests/sockets.py's real-server fixtures, for this module's tests too

BOSS = {"login": "boss", "password": "boss-password-1"}


async def tenant(api: Api, admin: str, name: str) -> tuple[str, str]:
    """A ready empty tenant: its key and a token of its admin."""
    created = await api.call("POST", "/api/v1/_tenants", admin, {"name": name, "admin": BOSS, "copy": False},
                             status=201)
    r = await api.http.post("/api/v1/auth/token", json=BOSS, headers={"Api-Key": created["key"]})
    assert r.status_code == 200, r.text
    return created["key"], r.json()["token"]


async def refused(url: str, **connect: Any) -> None:
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, transports=["websocket"], wait_timeout=WAIT, **connect)
    await client.disconnect()


async def test_the_handshake_selects_the_tenant(server: Server, api: Api, admin: str) -> None:
    one_key, one = await tenant(api, admin, "one")
    two_key, two = await tenant(api, admin, "two")
    async with listening(server.url, "orders", headers={"Api-Key": one_key}, auth={"token": one}) as in_one, \
            listening(server.url, "orders", headers={"Api-Key": two_key}, auth={"token": two}) as in_two, \
            listening(server.url, "orders", auth={"token": admin}) as public:
        mine = await api.order(one)
        event = await in_one.next()
        assert (event["op"], event["_id"]) == ("create", mine["_id"])
        await in_two.quiet()
        await public.quiet()
        theirs = await api.order(admin)
        assert (await public.next())["_id"] == theirs["_id"]
        await in_one.quiet()
        await in_two.quiet()


async def test_a_tenant_session_cookie_selects_it(server: Server, api: Api, admin: str) -> None:
    key, token = await tenant(api, admin, "cookie")
    r = await api.http.post("/api/v1/auth", json=BOSS, headers={"Api-Key": key})
    assert r.status_code == 200
    sid = r.cookies["sid"]
    api.http.cookies.clear()
    async with listening(server.url, "orders", headers={"Cookie": f"sid={sid}"}) as listener:
        made = await api.order(token)
        assert (await listener.next())["_id"] == made["_id"]


async def test_refused_handshakes(server: Server, api: Api, admin: str) -> None:
    one_key, one = await tenant(api, admin, "one")
    two_key, _ = await tenant(api, admin, "two")
    await refused(server.url, headers={"Api-Key": "tk_unknown"}, auth={"token": one})
    # a credential of one database with another's key
    await refused(server.url, headers={"Api-Key": two_key}, auth={"token": one})
    await refused(server.url, headers={"Api-Key": one_key}, auth={"token": admin})
    # a tenant's token on the public server
    await refused(server.url, auth={"token": one})
    # `auth.tenant` (the connect packet) is refused, never served by the public database
    await refused(server.url, auth={"token": admin, "tenant": one_key})
    await refused(server.url, headers={"Api-Key": one_key}, auth={"token": one, "tenant": one_key})
    # a deleted tenant's key
    await api.call("DELETE", "/api/v1/_tenants/one", admin)
    await refused(server.url, headers={"Api-Key": one_key}, auth={"token": one})
    await asyncio.sleep(0)


async def test_orders_entity_shape(server: Server, api: Api, admin: str) -> None:
    """The tenant's events are the same events as the public database's (API.md 8)."""
    key, token = await tenant(api, admin, "shape")
    async with listening(server.url, "orders", headers={"Api-Key": key}, auth={"token": token}) as listener:
        made = await api.order(token)
        event = await listener.next()
        assert set(event) == {"store", "op", "_id", "entity", "at", "seq"}
        assert event["entity"] == made and event["entity"]["quantity"] == ORDER["quantity"]
        # its cursor is the tenant's: good for `_changes` there, unknown in the public database
        r = await api.http.get("/api/v1/orders/_changes", params={"since": event["seq"]},
                               headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["changes"] == [], r.text
        r = await api.http.get("/api/v1/orders/_changes", params={"since": event["seq"]},
                               headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 400, r.text
    # a subscribe with that cursor replays from it on the tenant's server
    later = await api.order(token)
    async with listening(server.url, headers={"Api-Key": key}, auth={"token": token}) as again:
        ack = await again.ack("subscribe", {"store": "orders", "since": event["seq"]})
        assert ack == {"success": True}, ack
        assert (await again.next())["_id"] == later["_id"]
