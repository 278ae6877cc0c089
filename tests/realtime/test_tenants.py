"""API.md 12 over Socket.IO, against a real server: the handshake's `Api-Key` header (or a tenant's
session cookie), or the connect packet's `auth.tenant` (or a tenant's credential there), selects
the tenant's Socket.IO server; events never cross databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests.conftest import Server, start_server, stop_server
from tests.sockets import ORDER, WAIT, Api, Listener, admin, api, listening

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
    # a tenant's token with the public database's key... there is none: with another tenant's
    await refused(server.url, auth={"token": one, "tenant": two_key})
    # `auth.tenant`: unknown, not a key, another tenant than the handshake's header; a public
    # credential in a tenant
    await refused(server.url, auth={"token": one, "tenant": "tk_unknown"})
    await refused(server.url, auth={"token": one, "tenant": 7})
    await refused(server.url, headers={"Api-Key": one_key}, auth={"token": one, "tenant": two_key})
    await refused(server.url, auth={"token": admin, "tenant": one_key})
    # a deleted tenant's key, as header or in `auth`, and its credentials
    await api.call("DELETE", "/api/v1/_tenants/one", admin)
    await refused(server.url, headers={"Api-Key": one_key}, auth={"token": one})
    await refused(server.url, auth={"token": one, "tenant": one_key})
    await refused(server.url, auth={"token": one})
    await asyncio.sleep(0)


@pytest.fixture
def quick_server(schema_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """A quick heartbeat: a long-polling client's disconnect waits for its pending poll, which the
    server holds up to ping interval + ping timeout once the socket is closed (85 s by default)."""
    srv = start_server(schema_dir, tmp_path / "server.log", env={"STORE_SOCKETIO_PING_INTERVAL_SECONDS": "1",
                                                                 "STORE_SOCKETIO_PING_TIMEOUT_SECONDS": "3"})
    yield srv
    stop_server(srv)


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
@pytest.mark.parametrize("how", ["auth", "header"])
async def test_every_transport_reaches_the_tenant(quick_server: Server, transports: list[str], how: str) -> None:
    """`auth: {"tenant": key}` in the connect packet (API.md 12), or the handshake's `Api-Key`, selects
    the tenant on every transport: with `auth`, the connection opened on the public server is handed
    to the tenant's; long-polling's later requests carry no header (python-socketio's client sends
    its headers with the handshake only) and reach the tenant's server all the same."""
    server = quick_server
    api = Api(server.url)
    admin = await api.token()
    one_key, one = await tenant(api, admin, "one")
    two_key, two = await tenant(api, admin, "two")

    sessions: list[aiohttp.ClientSession] = []

    async def listen(token: str, key: str | None = None) -> Listener:
        # The client's HTTP session is ours to close: after an upgrade, python-socketio's own leaves
        # a long-polling connection open (an unclosed-connection warning).
        sessions.append(aiohttp.ClientSession())
        listener = Listener(http_session=sessions[-1])
        auth, headers = {"token": token}, {}
        if key is not None and how == "auth":
            auth["tenant"] = key
        elif key is not None:
            headers["Api-Key"] = key
        await listener.sio.connect(server.url, transports=transports, wait_timeout=WAIT, auth=auth, headers=headers)
        assert await listener.ack("subscribe", {"store": "orders"}) == {"success": True}
        return listener

    in_one, in_two, public = await listen(one, one_key), await listen(two, two_key), await listen(admin)
    try:
        mine = await api.order(one)
        assert (await in_one.next())["_id"] == mine["_id"]
        theirs = await api.order(two)
        assert (await in_two.next())["_id"] == theirs["_id"]
        ours = await api.order(admin)
        assert (await public.next())["_id"] == ours["_id"]
        await asyncio.gather(in_one.quiet(), in_two.quiet(), public.quiet())
        # the tenant's acks too: a store the tenant has
        assert await in_one.ack("unsubscribe", {"store": "orders"}) == {"success": True}
        await api.order(one)
        await in_one.quiet()
    finally:
        await asyncio.gather(*(listener.sio.disconnect() for listener in (in_one, in_two, public)))
        await asyncio.gather(*(session.close() for session in sessions))
        await api.http.aclose()


async def test_a_tenant_credential_in_auth_selects_it(server: Server, api: Api, admin: str) -> None:
    """A tenant's token (its JWT's `tid`) or API key in the connect payload selects the tenant
    without `Api-Key`, as on HTTP."""
    _, token = await tenant(api, admin, "bytoken")
    key = await api.call("POST", "/api/v1/auth/keys", token, {"name": "sockets"}, status=201)
    for auth in ({"token": token}, {"apiKey": key["key"]}):
        async with listening(server.url, "orders", auth=auth) as listener:
            made = await api.order(token)
            assert (await listener.next())["_id"] == made["_id"]


async def test_a_handed_over_connection_replays_the_tenants_feed(server: Server, api: Api, admin: str) -> None:
    """`subscribe` with `since` runs for the tenant's database (its cursors), also on a
    connection that the public server opened and handed over."""
    key, token = await tenant(api, admin, "replay")
    first = await api.order(token)
    r = await api.http.get("/api/v1/orders/_changes", headers={"Authorization": f"Bearer {token}"})
    since = r.json()["changes"][0]["seq"]
    assert r.json()["changes"][0]["_id"] == first["_id"], r.text
    later = await api.order(token)
    async with listening(server.url, auth={"token": token, "tenant": key}) as again:
        assert await again.ack("subscribe", {"store": "orders", "since": since}) == {"success": True}
        assert (await again.next())["_id"] == later["_id"]


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


async def test_a_tenant_with_sockets_is_not_idle(schema_dir: Path, tmp_path: Path) -> None:
    """A tenant is closed when idle (STORE_TENANT_IDLE_SECONDS), but a connected socket keeps it open
    however long no request comes: its subscribers still get events, also after the sweep."""
    server = start_server(schema_dir, tmp_path / "server.log", env={"STORE_TENANT_IDLE_SECONDS": "0.3"})
    api = Api(server.url)
    try:
        admin = await api.token()
        key, token = await tenant(api, admin, "kept")
        async with listening(server.url, "orders", auth={"token": token, "tenant": key}) as listener:
            await asyncio.sleep(1.5)  # several sweeps with no request
            made = await api.order(token)
            assert (await listener.next())["_id"] == made["_id"]
        await asyncio.sleep(1.5)  # idle now: closed, and opened again by the next request
        made = await api.order(token)
        async with listening(server.url, auth={"token": token, "tenant": key}) as again:
            assert await again.ack("subscribe", {"store": "orders"}) == {"success": True}
            later = await api.order(token)
            assert (await again.next())["_id"] == later["_id"]
    finally:
        await api.http.aclose()
        stop_server(server)


async def test_deleting_a_tenant_disconnects_its_sockets(server: Server, api: Api, admin: str) -> None:
    """Deleting a tenant ends every credential of it (API.md 12): its sockets too, at once."""
    key, token = await tenant(api, admin, "doomed")
    async with listening(server.url, "orders", auth={"token": token, "tenant": key}) as listener:
        await api.call("DELETE", "/api/v1/_tenants/doomed", admin)
        await asyncio.wait_for(listener.gone.wait(), WAIT)
