"""Several server processes on one MongoDB-wire database: the change feed lives in the database,
so events, cursors and replays cross processes (API.md 8 and 10). Moved here from test_realtime,
test_feed_server and test_legacy_sio, whose single-process tests run on the embedded database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, Server
from tests.http.test_changes import exactly_once, read_all
from tests.realtime.transport.test_legacy import api_of, connected, cookie, install_node_client, node_client
from tests.sockets import ORDER, Api, assert_event, bearer, listening
from tests.wire.conftest import WireDatabase, serving


@pytest.fixture(scope="session")
def node_modules() -> Path:
    return install_node_client()


@pytest.fixture
def two_servers(redis_url: str, wire_db: WireDatabase, schema_dir: Path,
                tmp_path: Path) -> Iterator[tuple[str, Server, Server]]:
    """Two processes sharing Redis and one database: events come from the change feed, which
    lives in the database (API.md 10), so the processes share one (a fresh wire database).

    A store with a unique name keeps other test runs sharing that Redis channel from
    delivering into these subscribers."""
    store = f"rt{uuid.uuid4().hex[:12]}"
    (schema_dir / f"{store}.json").write_text(json.dumps(
        {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": False}))
    with serving(2, wire_db, schema_dir, tmp_path, env={"STORE_SOCKETIO_QUEUE": redis_url}) as (a, b):
        yield store, a, b


async def test_events_written_through_one_process_reach_subscribers_of_another(
        two_servers: tuple[str, Server, Server]) -> None:
    # Both processes use one database (a fresh one per test); the subscribers are admins, who
    # get every event of a store through the `<store>:all` room.
    store, a, b = two_servers
    api_a, api_b = Api(a.url), Api(b.url)
    try:
        admin_a, admin_b = await api_a.token(), await api_b.token()
        _, stranger_b = await api_b.user(admin_b, "stranger")
        async with listening(b.url, store, **bearer(admin_b)) as on_b, \
                listening(a.url, store, **bearer(admin_a)) as on_a, \
                listening(b.url, store, **bearer(stranger_b)) as stranger:
            created = await api_a.call("POST", f"/api/v1/{store}", admin_a, {"name": "from A"}, status=201)
            assert_event(await on_b.next(), "create", created, store)
            assert_event(await on_a.next(), "create", created, store)  # and A's own subscribers, once
            path = f"/api/v1/{store}/{created['_id']}"
            patched = await api_a.call("PATCH", path, admin_a, {"name": "changed on A"})
            await api_a.call("DELETE", path, admin_a)
            for listener in (on_a, on_b):
                assert_event(await listener.next(), "update", patched, store)
                assert_event(await listener.next(), "delete", patched, store)

            back = await api_b.call("POST", f"/api/v1/{store}", admin_b, {"name": "from B"}, status=201)
            assert_event(await on_a.next(), "create", back, store)
            assert_event(await on_b.next(), "create", back, store)
            await asyncio.gather(on_a.quiet(), on_b.quiet(), stranger.quiet())  # access rules still apply
    finally:
        await api_a.http.aclose()
        await api_b.http.aclose()


async def test_a_legacy_client_gets_events_written_through_another_process(
        redis_url: str, wire_db: WireDatabase, schema_dir: Path, tmp_path: Path, node_modules: Path) -> None:
    # A unique store keeps other runs on the shared Redis channel out; the processes share one
    # database (the change feed lives there), and B's subscriber gets what A writes.
    store = f"lg{uuid.uuid4().hex[:12]}"
    (schema_dir / f"{store}.json").write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}))
    with serving(2, wire_db, schema_dir, tmp_path, env={"STORE_SOCKETIO_QUEUE": redis_url}) as (a, b):
        async with api_of(a) as api_a, api_of(b) as api_b:
            r = await api_b.http.post("/api/v1/auth", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
            headers_b = cookie(r.cookies["sid"])
            async with node_client(node_modules, b.url, extraHeaders=headers_b) as c:
                await connected(c, "polling+upgrade")
                assert await c.ack("subscribe", {"store": store}) == {"success": True}
                admin_a = await api_a.admin()
                written = [await api_a.call("POST", f"/api/v1/{store}", admin_a, {"n": n}, status=201)
                           for n in range(5)]
                got = [(await c.next("change"))["data"] for _ in written]
    assert [(e["op"], e["entity"]) for e in got] == [("create", w) for w in written]


@pytest.fixture
def shared_db_servers(wire_db: WireDatabase, schema_dir: Path, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with serving(2, wire_db, schema_dir, tmp_path) as (a, b):
        yield a, b


async def test_two_processes_writing_concurrently_and_a_reader_that_misses_nothing(
        shared_db_servers: tuple[Server, Server]) -> None:
    a, b = (Api(s.url) for s in shared_db_servers)
    try:
        token = await a.token()
        async with listening(b.url, "orders", **bearer(token)) as live:
            async def write(api: Api, n: int) -> None:
                for i in range(n):
                    await api.call("POST", "/api/v1/orders", token, {**ORDER, "note": f"{api.url}-{i}"}, status=201)

            await asyncio.gather(write(a, 20), write(b, 20))
            events = [await live.next() for _ in range(40)]
            exactly_once(events)
        via_a, _ = await read_all(a, token)
        via_b, _ = await read_all(b, token)
        assert via_a == via_b and len(via_a) == 40
        assert [e["seq"] for e in events] == [c["seq"] for c in via_a]
    finally:
        await a.http.aclose()
        await b.http.aclose()


async def test_a_tenants_events_and_revocations_cross_processes(two_servers: tuple[str, Server, Server]) -> None:
    """A tenant (API.md 12) on two processes sharing Redis: a subscriber on B, selected by `auth.tenant`,
    gets what is written through A, the public subscribers of the store do not, and a logout
    on A drops B's socket at once (the tenant's own auth-change channel; its cache alone would
    trust the token for 5 s)."""
    store, a, b = two_servers
    api_a, api_b = Api(a.url), Api(b.url)
    try:
        admin_a, admin_b = await api_a.token(), await api_b.token()
        boss = {"login": "boss", "password": "boss-password-1"}
        made = await api_a.call("POST", "/api/v1/_tenants", admin_a,
                                {"name": f"t{uuid.uuid4().hex[:8]}", "admin": boss, "copy": False}, status=201)
        r = await api_a.http.post("/api/v1/auth/token", json=boss, headers={"Api-Key": made["key"]})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        async with listening(b.url, store, auth={"token": token, "tenant": made["key"]}) as in_tenant, \
                listening(b.url, store, **bearer(admin_b)) as public:
            created = await api_a.call("POST", f"/api/v1/{store}", token, {"name": "in the tenant"}, status=201)
            assert_event(await in_tenant.next(), "create", created, store)
            await public.quiet()
            await api_a.call("POST", "/api/v1/auth/logout", token)
            await asyncio.wait_for(in_tenant.gone.wait(), 2.5)
    finally:
        await api_a.http.aclose()
        await api_b.http.aclose()
