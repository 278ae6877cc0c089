"""API.md 8 and 10 against real `storeengine serve` processes: concurrent writers and resuming
readers, Socket.IO `since` across reconnects, Server-Sent Events, live enter/leave."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storeengine.realtime.transport.sendqueue import MAX_PACKETS
from storeengine.store.feed import cursor, parse_cursor
from tests.conftest import start_server, stop_server
from tests.sockets import WAIT, Api, Listener, admin, api, bearer, listening

__all__ = ["admin", "api"]  # tests/sockets.py's real-server fixtures, for this module's tests too


async def read_all(api: Api, token: str, store: str = "orders", since: str | None = None,
                   limit: int = 7) -> tuple[list[dict[str, Any]], str]:
    """Follow the feed from `since` until `more` is false; every page resumes from the last cursor."""
    out: list[dict[str, Any]] = []
    while True:
        params = f"?limit={limit}" + (f"&since={since}" if since else "")
        page = await api.call("GET", f"/api/v1/{store}/_changes{params}", token)
        out += page["changes"]
        since = page["cursor"]
        if not page["more"]:
            return out, str(since)


def exactly_once(changes: list[dict[str, Any]]) -> None:
    seqs = [c["seq"] for c in changes]
    assert seqs == sorted(seqs), "out of order"
    assert len(seqs) == len(set(seqs)), "a change came twice"


# --- concurrent writers, a resuming reader ---------------------------------------------

async def test_a_resuming_reader_gets_every_change_of_concurrent_writers_once(api: Api, admin: str) -> None:
    writers = 4
    created = [await api.order(admin) for _ in range(8)]
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(12):
            if i % 3 == 0:
                await api.order(admin, note=f"w{w}-{i}")
            else:
                target = created[(w + i) % len(created)]["_id"]
                await api.call("PATCH", f"/api/v1/orders/{target}", admin, {"note": f"w{w}-{i}"})

    async def reader() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        since: str | None = None
        while True:
            finished = done.is_set()  # read once more after the writers are done
            page, since = await read_all(api, admin, since=since, limit=5)
            got += page
            if finished:
                return got
            await asyncio.sleep(0.01)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    done.set()
    got = await reading
    exactly_once(got)
    everything, _ = await read_all(api, admin, limit=1000)
    assert got == everything  # the reader started from the oldest change, like this full read
    assert len(everything) == 8 + writers * 12
    notes = [c["entity"].get("note") for c in everything[8:]]
    assert sorted(n for n in notes if n) == sorted(f"w{w}-{i}" for w in range(writers) for i in range(12))
    # Per entity the feed's order is the write order: its last change holds its current state.
    for entity in created:
        current = await api.call("GET", f"/api/v1/orders/{entity['_id']}", admin)
        last = [c for c in everything if c["_id"] == entity["_id"]][-1]
        assert last["entity"] == current


# --- Socket.IO: since, replay then live, across a reconnect ----------------------------

async def test_reconnecting_with_since_while_writes_continue_has_no_gap_and_no_duplicate(
        api: Api, admin: str) -> None:
    writing = asyncio.Event()
    count = 60

    async def writer() -> None:
        for i in range(count):
            await api.order(admin, note=str(i))
            if i == 5:
                writing.set()
            await asyncio.sleep(0.005)

    task = asyncio.create_task(writer())
    received: list[dict[str, Any]] = []
    await writing.wait()
    start, _ = await read_all(api, admin)
    since = start[0]["seq"]  # resume after the first change: the rest comes by replay or live
    for _round in range(3):
        listener = Listener()
        await listener.sio.connect(api.url, transports=["websocket"], wait_timeout=WAIT, **bearer(admin))
        assert await listener.ack("subscribe", {"store": "orders", "since": since}) == {"success": True}
        for _ in range(8):
            event = await listener.next()
            received.append(event)
        await listener.sio.disconnect()  # more writes happen while it is away
        since = received[-1]["seq"]
    listener = Listener()
    await listener.sio.connect(api.url, transports=["websocket"], wait_timeout=WAIT, **bearer(admin))
    assert await listener.ack("subscribe", {"store": "orders", "since": since}) == {"success": True}
    await task
    while len(received) < count - 1:
        received.append(await listener.next())
    await listener.quiet()
    await listener.sio.disconnect()
    exactly_once(received)
    assert [e["entity"]["note"] for e in received] == [str(i) for i in range(1, count)]
    assert all(e["op"] == "create" and set(e) == {"store", "op", "_id", "entity", "at", "seq"} for e in received)


async def test_a_replay_longer_than_the_send_queue_bound_reaches_a_reading_client(api: Api, admin: str) -> None:
    """A `since` replay of more changes than a connection may have queued (sendqueue.MAX_PACKETS)
    paces itself to the client instead of cutting it off as a client that does not read."""
    count = MAX_PACKETS + 300
    sem = asyncio.Semaphore(16)

    async def write(i: int) -> None:
        async with sem:
            await api.order(admin, note=str(i))

    first = await api.order(admin, note="mark")
    mark = (await read_all(api, admin))[0][0]["seq"]
    assert (await read_all(api, admin))[0][0]["_id"] == first["_id"]
    await asyncio.gather(*(write(i) for i in range(count)))
    listener = Listener()
    await listener.sio.connect(api.url, transports=["websocket"], wait_timeout=WAIT, **bearer(admin))
    assert await listener.ack("subscribe", {"store": "orders", "since": mark}) == {"success": True}
    received = [await listener.next() for _ in range(count)]
    assert listener.sio.connected
    await listener.sio.disconnect()
    exactly_once(received)
    assert sorted(int(e["entity"]["note"]) for e in received) == list(range(count))


@pytest.mark.parametrize(("since", "code"), [("0" * 24, "400"), ("not-a-cursor", "400"), (7, "400")])
async def test_subscribe_with_a_bad_cursor_is_refused(api: Api, admin: str, since: Any, code: str) -> None:
    async with listening(api.url, **bearer(admin)) as listener:
        ack = await listener.ack("subscribe", {"store": "orders", "since": since})
        assert (ack["success"], ack["code"]) == (False, code), ack


async def test_subscribe_with_a_cursor_beyond_the_newest_change_is_400_and_changes_nothing(
        api: Api, admin: str) -> None:
    """API.md 10: never a silent wait, and no reader's cursor changes what other readers get."""
    await api.order(admin)
    newest = (await api.call("GET", "/api/v1/orders/_changes", admin))["changes"][-1]["seq"]
    async with listening(api.url, **bearer(admin)) as abuser, listening(api.url, **bearer(admin)) as other:
        for ahead in (1, 10**12):
            since = cursor("orders", parse_cursor("orders", newest) + ahead)
            ack = await abuser.ack("subscribe", {"store": "orders", "since": since})
            assert (ack["success"], ack["code"]) == (False, "400") and "beyond" in ack["message"], ack
        assert await abuser.ack("subscribe", {"store": "orders", "since": newest}) == {"success": True}
        assert await other.ack("subscribe", {"store": "orders"}) == {"success": True}
        created = await api.order(admin)
        for listener in (abuser, other):
            assert (await listener.next())["_id"] == created["_id"]
        listed = await api.http.get("/api/v1/orders", headers={"Authorization": f"Bearer {admin}"})
        assert listed.headers["x-change-cursor"] == (await api.call("GET", "/api/v1/orders/_changes", admin))[
            "changes"][-1]["seq"]


async def test_subscribe_with_a_cursor_older_than_retention_is_410(schema_dir: Path, tmp_path: Path) -> None:
    srv = start_server(schema_dir, tmp_path / "short.log", env={"STORE_CHANGES_RETENTION_SECONDS": "0.5"})
    api = Api(srv.url)
    try:
        admin = await api.token()
        start = (await api.call("GET", "/api/v1/orders/_changes", admin))["cursor"]
        await api.order(admin)
        await asyncio.sleep(1.5)  # expired and swept
        async with listening(api.url, **bearer(admin)) as listener:
            ack = await listener.ack("subscribe", {"store": "orders", "since": start})
            assert (ack["success"], ack["code"], ack["tags"]) == (False, "410", ["error_gone"]), ack
            later = await api.order(admin)
            current = (await api.call("GET", "/api/v1/orders/_changes", admin))["changes"]
            assert [c["_id"] for c in current] == [later["_id"]]
    finally:
        await api.http.aclose()
        stop_server(srv)


async def test_live_enter_and_leave_when_a_reader_s_group_gains_and_loses_an_entity(api: Api, admin: str) -> None:
    team = await api.group(admin, "team")
    _, owner = await api.user(admin, "owner", [team])
    _, reader = await api.user(admin, "reader")
    created = await api.order(owner, group=None)
    path = f"/api/v1/orders/{created['_id']}"
    async with listening(api.url, "orders", **bearer(reader)) as r:
        await api.call("PATCH", f"/api/v1/users/{(await api.call('GET', '/api/v1/auth/me', reader))['_id']}",
                       admin, {"groups": [team]})
        await asyncio.sleep(1.5)  # the socket follows its new groups (sweep every second)
        await api.call("PATCH", path, owner, {"quantity": 2})
        await r.quiet(0.5)  # not shared with the team yet
        shared = await api.call("PUT", f"{path}/acl", owner, {"group": team})
        entered = await r.next()
        assert (entered["op"], entered["entity"]) == ("enter", shared)
        updated = await api.call("PATCH", path, owner, {"quantity": 3})
        assert ((await r.next())["op"], updated["quantity"]) == ("update", 3)
        await api.call("PUT", f"{path}/acl", owner, {"group": None})
        left = await r.next()
        assert (left["op"], left["_id"], left["entity"]) == ("leave", created["_id"], None)
        assert entered["seq"] < left["seq"]
        await api.call("PATCH", path, owner, {"quantity": 4})
        await r.quiet(0.5)


# --- Server-Sent Events ----------------------------------------------------------------

class SSE:
    """A text/event-stream read with httpx: `next()` is the next event as (id, event, data)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> tuple[str, str, dict[str, Any]]:
        fields: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(anext(self.lines), WAIT)
            if line.startswith(":"):
                self.comments.append(line)
            elif line == "" and fields:
                return fields["id"], fields["event"], json.loads(fields["data"])
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")


@contextlib.asynccontextmanager
async def sse(api: Api, token: str, store: str = "orders", query: str = "", **headers: str) -> AsyncIterator[SSE]:
    hdrs = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream", **headers}
    async with httpx.AsyncClient(base_url=api.url, timeout=WAIT) as http, \
            http.stream("GET", f"/api/v1/{store}/_changes{query}", headers=hdrs) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SSE(response)


async def test_sse_backlog_then_live_then_last_event_id(api: Api, admin: str) -> None:
    first = [await api.order(admin, note=str(i)) for i in range(3)]
    async with sse(api, admin) as stream:
        backlog = [await stream.next() for _ in range(3)]
        assert [(e, d["op"], d["_id"]) for _, e, d in backlog] == [("change", "create", o["_id"]) for o in first]
        assert [i for i, _, _ in backlog] == [d["seq"] for _, _, d in backlog]
        live = await api.call("PATCH", f"/api/v1/orders/{first[0]['_id']}", admin, {"quantity": 9})
        seq, _, change = await stream.next()
        assert (change["op"], change["entity"]) == ("update", live) and seq > backlog[-1][0]
    later = await api.order(admin, note="while away")
    async with sse(api, admin, **{"Last-Event-ID": backlog[-1][0]}) as stream:
        resumed = [await stream.next() for _ in range(2)]
        assert [d["_id"] for _, _, d in resumed] == [first[0]["_id"], later["_id"]]
        assert resumed[0][0] == seq


async def test_sse_shows_only_what_the_reader_may_read_and_refuses_bad_cursors(api: Api, admin: str) -> None:
    _, reader = await api.user(admin, "reader")
    await api.order(admin)
    async with sse(api, reader) as stream:
        mine = await api.order(reader)
        _, _, change = await stream.next()
        assert change["_id"] == mine["_id"]  # the admin's order before it was left out
    async with httpx.AsyncClient(base_url=api.url, timeout=WAIT) as http:
        r = await http.get("/api/v1/orders/_changes?since=zzz",
                           headers={"Authorization": f"Bearer {reader}", "Accept": "text/event-stream"})
        assert r.status_code == 400 and r.json()["tags"] == ["error_bad_request"]
        for limit in ("0", "abc", "99999"):  # checked as for a page
            r = await http.get(f"/api/v1/orders/_changes?limit={limit}",
                               headers={"Authorization": f"Bearer {reader}", "Accept": "text/event-stream"})
            assert r.status_code == 400 and "limit" in r.json()["message"], r.text
        r = await http.get("/api/v1/orders/_changes", headers={"Accept": "text/event-stream"})
        assert r.status_code == 401
