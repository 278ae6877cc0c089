"""Issue 14: connections are re-checked when something they depend on changes, not by polling.

Each trigger (revocation, user deactivated / deleted, groups changed, a store's read rules
reloaded, the credential's expiry, a revocation made by another process) is checked against
real server processes, or for the cross-process case against two watchers sharing one
database and a bus: a Redis channel of their own, or (no Redis) that database. Helpers come from tests/sockets.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from storeengine.auth.passwords import Passwords
from storeengine.auth.service import AuthChange, AuthService
from storeengine.auth.throttle import LoginThrottle
from storeengine.auth.tokens import TokenIssuer
from storeengine.model.access import Principal
from storeengine.model.schema import Registry
from storeengine.realtime.authbus import MongoBus, RedisBus
from storeengine.realtime.rechecks import Bus, Watch
from storeengine.settings import Settings
from storeengine.storage import connect
from storeengine.storage.api import StorageAPI
from tests.conftest import Server, start_server, stop_server
from tests.sockets import SECRET, WAIT, Api, admin, api, assert_event, bearer, listening

__all__ = ["admin", "api"]  # tests/sockets.py's real-server fixtures, for this module's tests too

AT_ONCE = 1.0  # "at once" on the process that made the change (the old sweeper needed up to 1 s)


async def _gone_within(listener: Any, seconds: float) -> float:
    start = time.monotonic()
    await asyncio.wait_for(listener.gone.wait(), seconds)
    assert not listener.sio.connected
    return time.monotonic() - start


# --- revocation and user changes on the process that made them --------------------------

@pytest.mark.parametrize("change", ["password changed", "deactivated", "deleted"])
async def test_a_user_change_that_ends_credentials_drops_only_that_user_s_sockets(
        api: Api, admin: str, change: str) -> None:
    victim_id, victim = await api.user(admin, "victim")
    _, other = await api.user(admin, "other")
    path = f"/api/v1/users/{victim_id}"
    async with listening(api.url, "orders", **bearer(victim)) as v, \
            listening(api.url, "orders", **bearer(other)) as o:
        if change == "password changed":
            await api.call("PATCH", path, admin, {"password": "another-password-456"})
        elif change == "deactivated":
            await api.call("PATCH", path, admin, {"active": False})
        else:
            await api.call("DELETE", path, admin)
        await _gone_within(v, AT_ONCE)
        await o.only_marker(api, other)  # the other user's socket is untouched and still served
        assert o.sio.connected


async def test_a_revoked_token_s_socket_drops_at_once_and_gets_no_later_event(api: Api, admin: str) -> None:
    token = await api.token()
    async with listening(api.url, "orders", **bearer(token)) as victim, \
            listening(api.url, "orders", **bearer(admin)) as bystander:
        await api.call("POST", "/api/v1/auth/logout", token)
        created = await api.order(admin)  # written right after the revocation answered
        assert_event(await bystander.next(), "create", created)
        await _gone_within(victim, AT_ONCE)
        assert victim.events.empty(), victim.events.get_nowait()


# --- room changes ---------------------------------------------------------------------------

async def test_group_changes_move_a_subscriber_between_rooms(api: Api, admin: str) -> None:
    team = await api.group(admin, "team")
    reader_id, reader = await api.user(admin, "reader")
    _, owner = await api.user(admin, "owner")
    shared = await api.order(owner)
    path = f"/api/v1/orders/{shared['_id']}"
    await api.call("PUT", f"{path}/acl", admin, {"group": team})
    async with listening(api.url, "orders", **bearer(reader)) as r:
        await api.call("PATCH", path, owner, {"quantity": 2})
        await r.only_marker(api, reader)  # not in `team` yet

        await api.call("PATCH", f"/api/v1/users/{reader_id}", admin, {"groups": [team]})
        joined = await api.call("PATCH", path, owner, {"quantity": 3})  # the very next write
        assert_event(await r.next(), "update", joined)

        await api.call("PATCH", f"/api/v1/users/{reader_id}", admin, {"groups": []})
        await api.call("PATCH", path, owner, {"quantity": 4})  # the very next write: not readable
        await r.only_marker(api, reader)
        assert r.sio.connected  # a room change, not a disconnect


@pytest.fixture
def rules_store(schema_dir: Path) -> tuple[str, Path]:
    name = f"rules{uuid.uuid4().hex[:8]}"
    path = schema_dir / f"{name}.json"
    _write_rules(path, ["owner"])
    return name, path


def _write_rules(path: Path, read: list[str]) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "x-acl": {"read": read}}
    path.write_text(json.dumps(schema))


async def _until_listed(api: Api, token: str, store: str, count: int) -> None:
    """Wait until the server has reloaded the schema (its REST list shows `count` entities)."""
    deadline = time.monotonic() + WAIT
    while (await api.call("GET", f"/api/v1/{store}?meta=true", token))["total"] != count:
        assert time.monotonic() < deadline, "the schema was not reloaded"
        await asyncio.sleep(0.05)


async def test_reloaded_read_rules_re_join_the_store_s_subscribers(
        rules_store: tuple[str, Path], server: Server, api: Api, admin: str) -> None:
    store, path = rules_store
    _, reader = await api.user(admin, "reader")
    await api.call("POST", f"/api/v1/{store}", admin, {"n": 0}, status=201)
    async with listening(api.url, store, "orders", **bearer(reader)) as r:
        await api.call("POST", f"/api/v1/{store}", admin, {"n": 1}, status=201)
        await r.only_marker(api, reader)  # owner-only: the admin's entities are not readable

        _write_rules(path, ["authenticated"])
        await _until_listed(api, reader, store, 2)
        widened = await api.call("POST", f"/api/v1/{store}", admin, {"n": 2}, status=201)
        assert_event(await r.next(), "create", widened, store)

        _write_rules(path, ["owner"])
        await _until_listed(api, reader, store, 0)
        await api.call("POST", f"/api/v1/{store}", admin, {"n": 3}, status=201)
        await r.only_marker(api, reader)


# --- expiry -----------------------------------------------------------------------------------

@pytest.fixture
def short_token_server(schema_dir: Path, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(schema_dir, tmp_path / "server.log", env={"STORE_TOKEN_TTL_SECONDS": "2"})
    yield srv
    stop_server(srv)


async def test_a_socket_is_dropped_when_its_token_expires(short_token_server: Server) -> None:
    api = Api(short_token_server.url)
    try:
        answer = (await api.http.post("/api/v1/auth/token", json={"login": "admin",
                                                                  "password": "admin-password-1"})).json()
        async with listening(api.url, "orders", **bearer(answer["token"])) as listener:
            assert listener.sio.connected
            await _gone_within(listener, WAIT)
            dropped_ms = time.time() * 1000
        assert answer["expiresAt"] <= dropped_ms <= answer["expiresAt"] + 1000  # at expiry, not later
    finally:
        await api.http.aclose()


# --- another process, through Redis -----------------------------------------------------------

class Process:
    """What one server process has for re-checks: its own AuthService (and caches) over the
    shared database, and a Watch on a bus (a Redis channel unique to the test, or the database)."""

    def __init__(self, storage: StorageAPI, settings: Settings, bus: Bus | None) -> None:
        self.storage = storage
        self.auth = AuthService(
            storage, Passwords(1, 64), TokenIssuer(SECRET, "storeengine", 3600),
            LoginThrottle(storage.collection("_login_failures"), 5, 900),
            session_ttl=3600, refresh_ttl=3600, cache_seconds=settings.auth_cache_seconds)
        self.dropped: asyncio.Queue[str] = asyncio.Queue()
        self.refreshed: asyncio.Queue[tuple[str, Principal]] = asyncio.Queue()
        self.watch = Watch(self.auth, refresh=self._refresh, drop=self._drop, bus=bus)

    async def _refresh(self, sid: str, principal: Principal) -> bool:
        await self.refreshed.put((sid, principal))
        return True

    async def _drop(self, sid: str) -> bool:
        await self.dropped.put(sid)
        return True




@pytest.fixture(params=["redis", "mongodb"])
async def processes(request: pytest.FixtureRequest,
                    settings: Settings) -> AsyncIterator[tuple[Process, Process, ObjectId]]:
    storage = connect(settings)
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        channel = f"storeengine-auth-test-{uuid.uuid4().hex}"
        a, b = (Process(storage, settings, RedisBus(url, channel)) for _ in range(2))
    else:
        a, b = (Process(storage, settings, MongoBus(storage.collection("_auth_changes"))) for _ in range(2))
    user_id = ObjectId()
    await storage.collection("users").insert({"_id": user_id, "login": "u", "groups": [], "roles": []})
    tasks = [asyncio.create_task(p.watch.run()) for p in (a, b)]
    await asyncio.sleep(0.3)  # both subscribed
    yield a, b, user_id
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await storage.close()


async def test_a_revocation_on_one_process_drops_the_socket_on_another(
        processes: tuple[Process, Process, ObjectId]) -> None:
    a, b, user_id = processes
    token = (await a.auth.issue_tokens(user_id))["token"]
    on_b = await b.auth.authenticate(bearer=token)  # B now caches the user's state (5 s)
    b.watch.add("socket-on-b", {"bearer": token}, on_b, await b.auth.expires_at(bearer=token))
    start = time.monotonic()
    await a.auth.logout(await a.auth.authenticate(bearer=token))
    assert await asyncio.wait_for(b.dropped.get(), WAIT) == "socket-on-b"
    assert time.monotonic() - start < 2.5  # well inside the 5 s cache: the change came through the bus
    assert b.refreshed.empty()


async def test_without_the_channel_another_process_would_trust_its_cache(
        processes: tuple[Process, Process, ObjectId], settings: Settings) -> None:
    """The premise of the test above: B's cache alone would keep the token valid for seconds."""
    a, _, user_id = processes
    lonely = Process(a.storage, settings, None)
    token = (await a.auth.issue_tokens(user_id))["token"]
    await lonely.auth.authenticate(bearer=token)
    await a.auth.logout(await a.auth.authenticate(bearer=token))
    assert (await lonely.auth.authenticate(bearer=token)).user_id == user_id


async def test_a_group_change_on_one_process_moves_rooms_on_another(
        processes: tuple[Process, Process, ObjectId], settings: Settings) -> None:
    a, b, user_id = processes
    token = (await a.auth.issue_tokens(user_id))["token"]
    on_b = await b.auth.authenticate(bearer=token)
    b.watch.add("socket-on-b", {"bearer": token}, on_b, None)
    team = ObjectId()
    users = a.auth.users
    before = await users.find_one({"_id": user_id}, {})
    await users.update({"_id": user_id}, {"$set": {"groups": [team]}})
    after = await users.find_one({"_id": user_id}, {})
    assert before is not None and after is not None
    await a.auth.on_user_write(on_b, Registry(settings.schema_dir).get("users"), before, after)
    sid, principal = await asyncio.wait_for(b.refreshed.get(), 2.5)
    assert (sid, principal.groups) == ("socket-on-b", (team,))
    assert b.dropped.empty()


# --- cost: nothing per socket while idle, only the touched sockets on a change ----------------

async def test_only_the_sockets_a_change_touches_are_re_checked(settings: Settings) -> None:
    storage = connect(settings)
    process = Process(storage, settings, None)
    users = [ObjectId() for _ in range(10)]
    for user_id in users:
        await storage.collection("users").insert({"_id": user_id, "login": str(user_id), "groups": [], "roles": []})
    tokens = [(await process.auth.issue_tokens(u))["token"] for u in users]
    for i in range(1000):  # 100 sockets per user
        token = tokens[i % 10]
        process.watch.add(f"s{i}", {"bearer": token}, await process.auth.authenticate(bearer=token), None)
    task = asyncio.create_task(process.watch.run())
    try:
        await asyncio.sleep(1.5)
        assert process.watch.rechecks == 0  # idle: no pass over the sockets
        process.auth.revocation_listeners[0](AuthChange(str(users[3])))  # as on_user_write does
        await asyncio.sleep(0.2)
        assert process.watch.rechecks == 100
        assert process.refreshed.qsize() == 100 and process.dropped.empty()
        assert {process.refreshed.get_nowait()[0] for _ in range(100)} == {f"s{i}" for i in range(3, 1000, 10)}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await storage.close()


async def test_a_socket_revoked_while_still_connecting_is_dropped_once_connected(settings: Settings) -> None:
    storage = connect(settings)
    process = Process(storage, settings, None)
    user_id = ObjectId()
    await storage.collection("users").insert({"_id": user_id, "login": "u", "groups": [], "roles": []})
    token = (await process.auth.issue_tokens(user_id))["token"]
    attempts: list[float] = []

    async def drop(sid: str) -> bool:  # the first attempt finds the connect handler still running
        attempts.append(time.monotonic())
        return len(attempts) > 1

    watch = Watch(process.auth, refresh=process._refresh, drop=drop)
    seen = watch.changes
    principal = await process.auth.authenticate(bearer=token)
    await process.auth.logout(principal)  # revoked between authentication and registration
    watch.add("s", {"bearer": token}, principal, None, seen=seen)
    task = asyncio.create_task(watch.run())
    try:
        for _ in range(40):
            if len(attempts) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(attempts) == 2
        assert watch.rechecks == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await storage.close()
