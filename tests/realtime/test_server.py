"""API.md section 8: Socket.IO change events, against real `storeengine serve` processes.

Negative checks ("this subscriber gets nothing") are made with a marker: the subscriber
writes an entity of its own afterwards and the first event it receives must be that one,
then the queue must stay empty for a short grace period.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import socketio

from tests.conftest import (
    ADMIN_LOGIN,
    ADMIN_PASSWORD,
    Server,
)
from tests.sockets import (
    ORDER,
    SECRET,
    WAIT,
    Api,
    admin,
    api,
    assert_event,
    bearer,
    listening,
    shared_server,
)

__all__ = ["admin", "api", "shared_server"]  # tests/sockets.py's real-server fixtures, for this module's tests

# --- handshake and authentication ------------------------------------------------------

async def test_handshake_advertises_ping_interval_and_timeout(shared_server: Server) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as http:
        r = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 200, r.text
    assert r.text.startswith("0{"), r.text  # Engine.IO v4 "open" packet
    opened = json.loads(r.text[1:])
    assert opened["pingInterval"] == 25000
    assert opened["pingTimeout"] == 60000
    assert isinstance(opened["sid"], str) and opened["sid"]
    assert "websocket" in opened["upgrades"]


async def _connect_kwargs(api: Api, how: str, login: str, token: str) -> dict[str, Any]:
    if how == "auth token":
        return bearer(token)
    if how == "auth apiKey":
        key = await api.call("POST", "/api/v1/auth/keys", token, {"name": "socket"}, status=201)
        return {"auth": {"apiKey": key["key"]}}
    if how == "x-api-key header":  # read by the same reader as HTTP requests (auth/credentials.py)
        key = await api.call("POST", "/api/v1/auth/keys", token, {"name": "socket"}, status=201)
        return {"headers": {"x-api-key": key["key"]}}
    if how == "Authorization header":
        return {"headers": {"Authorization": f"Bearer {token}"}}
    assert how == "sid cookie"
    return {"headers": {"Cookie": f"sid={await api.session(login)}"}}


CREDENTIALS = ["auth token", "auth apiKey", "x-api-key header", "Authorization header", "sid cookie"]


@pytest.mark.parametrize("how", CREDENTIALS)
async def test_a_connection_authenticates_as_the_credential_s_user(api: Api, admin: str, how: str) -> None:
    _, reader = await api.user(admin, "reader")
    connect = await _connect_kwargs(api, how, "reader", reader)
    async with listening(api.url, "orders", **connect) as listener:
        await api.order(admin)  # not readable by `reader`: a connection as admin or anyone else would get it
        await listener.only_marker(api, reader)  # readable as its owner: the connection is `reader`


def _forged(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    now = int(time.time())
    payload = {"iat": now, "nbf": now, "exp": now + 3600, "jti": f"{now * 1000:x}.forged", "iss": "storeengine",
               **claims}
    return jwt.encode(payload, key, algorithm=algorithm)


REFUSED: dict[str, Callable[[str], dict[str, Any]]] = {
    "anonymous": lambda uid: {},
    "garbage token": lambda uid: {"auth": {"token": "not-a-jwt"}},
    "token signed with another secret": lambda uid: {"auth": {"token": _forged({"sub": uid}, "x" * 40)}},
    "token with alg none": lambda uid: {"auth": {"token": _forged({"sub": uid}, "", "none")}},
    "expired token": lambda uid: {"auth": {"token": _forged({"sub": uid, "exp": int(time.time()) - 60})}},
    "unknown api key": lambda uid: {"auth": {"apiKey": "sk_" + "0" * 40}},
    "garbage Authorization header": lambda uid: {"headers": {"Authorization": "Bearer forged"}},
    "Basic Authorization header": lambda uid: {"headers": {"Authorization": "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQtMQ=="}},
    "forged sid cookie": lambda uid: {"headers": {"Cookie": "sid=forged-session-id"}},
}


@pytest.mark.parametrize("case", REFUSED)
async def test_connections_without_a_valid_credential_are_refused(shared_server: Server, case: str) -> None:
    api = Api(shared_server.url)
    admin_id = (await api.call("GET", "/api/v1/auth/me", await api.token()))["_id"]
    await api.http.aclose()
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", errors.append)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(api.url, transports=["websocket"], wait_timeout=WAIT, **REFUSED[case](admin_id))
        assert errors == [{"message": "Unauthorized"}]
        assert not sio.connected
    finally:
        await sio.disconnect()


# --- subscribe / unsubscribe acks -------------------------------------------------------

def _error(code: str, tag: str) -> Callable[[Any], None]:
    def check(ack: Any) -> None:
        assert isinstance(ack, dict), ack
        assert set(ack) == {"success", "code", "message", "tags"}, ack
        assert (ack["success"], ack["code"], ack["tags"]) == (False, code, [tag]), ack
        assert isinstance(ack["message"], str) and ack["message"]
    return check


def _ok(ack: Any) -> None:
    assert ack == {"success": True}


@pytest.mark.parametrize(("event", "data", "check"), [
    ("subscribe", {"store": "orders"}, _ok),
    ("subscribe", {"store": "products"}, _ok),
    ("unsubscribe", {"store": "orders"}, _ok),  # not subscribed: nothing to do, still fine
    ("subscribe", {"store": "nope"}, _error("404", "error_not_found")),
    ("unsubscribe", {"store": "nope"}, _error("404", "error_not_found")),
    ("subscribe", {}, _error("400", "error_bad_request")),
    ("subscribe", {"store": 7}, _error("400", "error_bad_request")),
    ("subscribe", "orders", _error("400", "error_bad_request")),
    ("unsubscribe", None, _error("400", "error_bad_request")),
    ("subscribe", ({"store": "orders"}, 1, 2), _error("400", "error_bad_request")),  # one argument only
    ("unsubscribe", ({"store": "orders"}, 3), _error("400", "error_bad_request")),
], ids=lambda v: None if callable(v) else json.dumps(v))
async def test_subscribe_and_unsubscribe_acks(shared_server: Server, event: str, data: Any,
                                              check: Callable[[Any], None]) -> None:
    api = Api(shared_server.url)
    token = await api.token()
    await api.http.aclose()
    async with listening(api.url, **bearer(token)) as listener:
        check(await listener.ack(event, data))


async def test_packets_and_requests_the_protocol_refuses_get_the_error_body(shared_server: Server) -> None:
    """An event that is not an array starting with its name gets a 400 ack when it asks for one;
    Engine.IO's own refusals (a foreign origin, an unknown session, a method) are the JSON error
    body of every other error (they were text)."""
    api = Api(shared_server.url)
    token = await api.token()
    path = "/socket.io/?EIO=4&transport=polling"
    http = api.http
    try:
        for method, url, headers, status in (("GET", path, {"Origin": "http://evil.example"}, 400),
                                             ("GET", path + "&sid=nonexistent", {}, 400),
                                             ("PUT", path, {}, 405)):
            r = await http.request(method, url, headers=headers)
            assert r.status_code == status and r.json()["success"] is False, (method, url, r.text)
            assert r.json()["code"] == str(status) and r.headers["content-type"] == "application/json"
        sid = json.loads((await http.get(path)).text[1:])["sid"]
        session = f"{path}&sid={sid}"
        assert (await http.post(session, content="40" + json.dumps({"token": token}))).status_code == 200
        assert (await http.get(session)).text.startswith("40")
        for i, packet in enumerate(("{}", "[]", '[{"a":1}]', "[7]"), start=1):
            assert (await http.post(session, content=f"42{i}{packet}")).status_code == 200
            answer = (await http.get(session)).text
            assert answer.startswith(f"43{i}"), (packet, answer)
            (ack,) = json.loads(answer[len(f"43{i}"):])
            assert ack["code"] == "400" and ack["tags"] == ["error_bad_request"], (packet, ack)
    finally:
        await http.aclose()


async def test_a_refused_subscription_delivers_nothing(api: Api, admin: str) -> None:
    async with listening(api.url, **bearer(admin)) as listener:
        assert (await listener.ack("subscribe", {"store": "nope"}))["code"] == "404"
        await api.order(admin)
        await listener.quiet(0.5)


# --- change events ---------------------------------------------------------------------

async def test_change_events_in_write_order_with_their_payloads(api: Api, admin: str) -> None:
    async with listening(api.url, "orders", **bearer(admin)) as listener:
        created = await api.order(admin)
        path = f"/api/v1/orders/{created['_id']}"
        patched = await api.call("PATCH", path, admin, {"quantity": 2, "status": "paid"})
        replaced = await api.call("PUT", path, admin, {**ORDER, "quantity": 3, "note": "replaced"})
        assert await api.call("DELETE", path, admin) == {"success": True, "_id": created["_id"]}
        got = [await listener.next() for _ in range(4)]
        await listener.quiet()
    for event, op, entity in zip(got, ["create", "update", "update", "delete"],
                                 [created, patched, replaced, replaced], strict=True):
        assert_event(event, op, entity)  # delete carries the entity as it was before
    assert [e["at"] for e in got] == sorted(e["at"] for e in got)


async def test_events_of_one_entity_follow_the_writes_even_when_concurrent(api: Api, admin: str) -> None:
    created = await api.order(admin)
    path = f"/api/v1/orders/{created['_id']}"
    async with listening(api.url, "orders", **bearer(admin)) as listener:
        await asyncio.gather(*(api.call("PATCH", path, admin, {"quantity": n}) for n in range(2, 12)))
        got = [await listener.next() for _ in range(10)]
        await listener.quiet()
    stored = await api.call("GET", path, admin)
    assert sorted(e["entity"]["quantity"] for e in got) == list(range(2, 12))
    assert got[-1]["entity"] == stored  # the last write's event comes last


async def test_sequential_updates_arrive_in_order(api: Api, admin: str) -> None:
    created = await api.order(admin)
    path = f"/api/v1/orders/{created['_id']}"
    async with listening(api.url, "orders", **bearer(admin)) as listener:
        for n in range(2, 12):
            await api.call("PATCH", path, admin, {"quantity": n})
        got = [await listener.next() for _ in range(10)]
    assert [e["entity"]["quantity"] for e in got] == list(range(2, 12))


async def test_an_event_reaches_a_subscriber_once(api: Api, admin: str) -> None:
    """Subscribing twice, and matching several read rules (owner and access), still give one event."""
    user_id, user = await api.user(admin, "twice")
    async with listening(api.url, "orders", "orders", **bearer(user)) as listener:
        mine = await api.order(user, access=[user_id])
        assert_event(await listener.next(), "create", mine)
        await listener.only_marker(api, user)


async def test_events_go_only_to_subscribers_of_that_store(api: Api, admin: str) -> None:
    async with listening(api.url, "products", **bearer(admin)) as listener:
        await api.order(admin)
        product = await api.call("POST", "/api/v1/products", admin, {"name": "pen", "price": 1}, status=201)
        assert_event(await listener.next(), "create", product, "products")
        await listener.quiet()


async def test_unsubscribe_stops_events(api: Api, admin: str) -> None:
    async with listening(api.url, "orders", **bearer(admin)) as listener:
        created = await api.order(admin)
        assert_event(await listener.next(), "create", created)
        assert await listener.ack("unsubscribe", {"store": "orders"}) == {"success": True}
        await api.order(admin)
        await listener.quiet(0.5)
        assert await listener.ack("subscribe", {"store": "orders"}) == {"success": True}
        created = await api.order(admin)
        assert_event(await listener.next(), "create", created)


# --- access filtering ------------------------------------------------------------------

async def test_events_follow_the_entity_s_read_access(api: Api, admin: str) -> None:
    _, owner = await api.user(admin, "owner")
    reader_id, reader = await api.user(admin, "reader")
    _, stranger = await api.user(admin, "stranger")
    async with listening(api.url, "orders", **bearer(reader)) as r, \
            listening(api.url, "orders", **bearer(stranger)) as s, \
            listening(api.url, "orders", **bearer(owner)) as o:
        created = await api.order(owner)
        path = f"/api/v1/orders/{created['_id']}"
        patched = await api.call("PATCH", path, owner, {"quantity": 2})
        assert_event(await o.next(), "create", created)
        assert_event(await o.next(), "update", patched)
        await r.only_marker(api, reader)  # `reader` may not read it yet: nothing

        granted = await api.call("PUT", f"{path}/acl", owner, {"access": [reader_id]})
        assert granted["access"] == [reader_id]
        assert_event(await r.next(), "enter", granted)  # it could not read it before: API.md 8
        later = await api.call("PATCH", path, owner, {"quantity": 3})
        assert_event(await r.next(), "update", later)

        assert await api.call("DELETE", path, owner) == {"success": True, "_id": created["_id"]}
        assert_event(await r.next(), "delete", later)  # could read it before the delete
        for event, op, entity in zip([await o.next() for _ in range(3)], ["update", "update", "delete"],
                                     [granted, later, later], strict=True):
            assert_event(event, op, entity)
        await s.only_marker(api, stranger)  # never could read it
        await r.quiet()
        await o.quiet()


async def test_revoking_access_stops_events(api: Api, admin: str) -> None:
    reader_id, reader = await api.user(admin, "reader")
    _, owner = await api.user(admin, "owner")
    created = await api.order(owner, access=[reader_id])
    path = f"/api/v1/orders/{created['_id']}"
    async with listening(api.url, "orders", **bearer(reader)) as r:
        patched = await api.call("PATCH", path, owner, {"quantity": 2})
        assert_event(await r.next(), "update", patched)
        revoked = await api.call("PUT", f"{path}/acl", owner, {"access": []})  # after it, `reader` may not read it
        left = await r.next()
        assert (left["op"], left["_id"], left["entity"]) == ("leave", revoked["_id"], None)
        await api.call("PATCH", path, owner, {"quantity": 3})
        await api.call("DELETE", path, owner)  # nor could it before the delete
        await r.only_marker(api, reader)


# (how the entity is shared with `reader`, is `reader` in `team`, does `reader` get its events)
SHARING: list[tuple[str, bool, bool]] = [
    ("group", True, True),
    ("group", False, False),
    ("access: reader", False, True),
    ("access: team", True, True),
    ("access: team", False, False),
    ("branch", True, True),
    ("branch", False, False),
    ("nothing", True, False),
]


@pytest.mark.parametrize(("sharing", "member", "delivered"), SHARING)
async def test_default_read_rules_decide_who_gets_events(api: Api, admin: str, sharing: str, member: bool,
                                                         delivered: bool) -> None:
    team = await api.group(admin, "team")
    reader_id, reader = await api.user(admin, "reader", [team] if member else [])
    _, owner = await api.user(admin, "owner")
    acl = {"group": {"group": team}, "access: reader": {"access": [reader_id]}, "access: team": {"access": [team]},
           "branch": {"branch": [team]}, "nothing": {"access": []}}[sharing]
    created = await api.order(owner)
    path = f"/api/v1/orders/{created['_id']}"
    shared = await api.call("PUT", f"{path}/acl", admin, acl)  # admins may set any group
    async with listening(api.url, "orders", **bearer(reader)) as r, \
            listening(api.url, "orders", **bearer(admin)) as everything:
        patched = await api.call("PATCH", path, owner, {"quantity": 2})
        assert_event(await everything.next(), "update", patched)  # admins get every event of the store
        if delivered:
            assert_event(await r.next(), "update", patched)
        await r.only_marker(api, reader)
    assert {k: shared[k] for k in acl} == acl


# --- rooms follow changes of the subscriber and of the store ------------------------------

async def test_rooms_follow_a_change_of_the_subscriber_s_groups(api: Api, admin: str) -> None:
    team = await api.group(admin, "team")
    _, owner = await api.user(admin, "owner", [team])
    joiner_id, joiner = await api.user(admin, "joiner")
    created = await api.order(owner)
    assert created["group"] == team
    path = f"/api/v1/orders/{created['_id']}"
    async with listening(api.url, "orders", **bearer(joiner)) as j:
        await api.call("PATCH", path, owner, {"quantity": 2})
        await j.only_marker(api, joiner)  # not in the group yet
        await api.call("PATCH", f"/api/v1/users/{joiner_id}", admin, {"groups": [team]})
        await asyncio.sleep(1.5)  # the server re-checks its sockets every second
        patched = await api.call("PATCH", path, owner, {"quantity": 3})
        assert_event(await j.next(), "update", patched)


async def test_rooms_follow_a_change_of_the_store_s_read_rules(api: Api, admin: str, schema_dir: Path) -> None:
    _, owner = await api.user(admin, "owner")
    _, other = await api.user(admin, "other")
    created = await api.order(owner)
    path = f"/api/v1/orders/{created['_id']}"
    async with listening(api.url, "orders", **bearer(other)) as o:
        await api.call("PATCH", path, owner, {"quantity": 2})
        await o.only_marker(api, other)
        schema = json.loads((schema_dir / "orders.json").read_text())
        schema["x-acl"] = {"read": ["authenticated"]}
        (schema_dir / "orders.json").write_text(json.dumps(schema))
        await asyncio.sleep(2)  # reload (0.5 s) and the socket re-check (1 s)
        patched = await api.call("PATCH", path, owner, {"quantity": 3})
        assert_event(await o.next(), "update", patched)


# --- revoked credentials ---------------------------------------------------------------

async def _revocable(api: Api, admin: str, how: str) -> tuple[dict[str, Any], Callable[[], Any]]:
    """Connect arguments for a fresh credential of `admin`, and a coroutine function revoking it."""
    if how == "token logout":
        token = await api.token()
        return bearer(token), lambda: api.call("POST", "/api/v1/auth/logout", token)
    if how == "session logout":
        sid = await api.session(ADMIN_LOGIN, ADMIN_PASSWORD)
        headers = {"Cookie": f"sid={sid}"}
        return {"headers": headers}, lambda: api.call("POST", "/api/v1/auth/logout", headers=headers)
    assert how == "api key deleted"
    key = await api.call("POST", "/api/v1/auth/keys", admin, {"name": "socket"}, status=201)
    return {"auth": {"apiKey": key["key"]}}, lambda: api.call("DELETE", f"/api/v1/auth/keys/{key['_id']}", admin)


@pytest.mark.parametrize("how", ["token logout", "session logout", "api key deleted"])
async def test_a_revoked_credential_s_connection_is_dropped(api: Api, admin: str, how: str) -> None:
    connect, revoke = await _revocable(api, admin, how)
    async with listening(api.url, "orders", **connect) as victim, \
            listening(api.url, "orders", **bearer(admin)) as bystander:  # same user, other credential
        before = await api.order(admin)
        assert_event(await victim.next(), "create", before)
        assert_event(await bystander.next(), "create", before)
        await revoke()
        await asyncio.wait_for(victim.gone.wait(), WAIT)
        assert not victim.sio.connected
        created = await api.order(admin)
        assert_event(await bystander.next(), "create", created)
        await victim.quiet()
    with pytest.raises(socketio.exceptions.ConnectionError):  # and it cannot connect again
        async with listening(api.url, **connect):
            pass
