"""API.md 10: the change feed over REST (in-process), its numbering and retention, history and restore."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId

from storeengine.app import create_app
from storeengine.core.errors import Conflict, Gone
from storeengine.core.formats import utcnow
from storeengine.http.context import Context
from storeengine.model.access import SYSTEM
from storeengine.model.schema import SchemaError, compile_schema
from storeengine.settings import Settings
from storeengine.storage.sqlite import SqliteStorage
from storeengine.store import carried
from storeengine.store.feed import Feed, cursor, parse_cursor
from storeengine.store.writes import Writes
from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, Users, lifespan, token_for

ORDER = {"product": "0123456789abcdef01234567", "quantity": 1}
DIARY = {"type": "object", "properties": {"text": {"type": "string"}, "mood": {"type": "integer"}},
         "additionalProperties": False, "x-history": True}


@pytest.fixture
def schema_dir(schema_dir: Path) -> Path:  # conftest's folder plus a store that keeps history
    (schema_dir / "diary.json").write_text(json.dumps(DIARY))
    return schema_dir


def ctx_of(app: Any) -> Context:
    ctx: Context = app.other_asgi_app.app.state.ctx  # socketio.ASGIApp -> BodyLimit -> Starlette
    return ctx


async def feed_of(client: httpx.AsyncClient, headers: dict[str, str], store: str = "orders",
                  **params: Any) -> dict[str, Any]:
    r = await client.get(f"/api/v1/{store}/_changes", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"changes", "cursor", "more"}
    return body


async def everything(client: httpx.AsyncClient, headers: dict[str, str], store: str = "orders",
                     since: str | None = None) -> list[dict[str, Any]]:
    """Every change after `since`, page by page (limit 2) following `cursor` and `more`."""
    out: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"since": since} if since else {})
        page = await feed_of(client, headers, store, **params)
        out += page["changes"]
        since = page["cursor"]
        if not page["more"]:
            return out


def ops(changes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(c["op"], c["_id"]) for c in changes]


# --- every write appends one change ------------------------------------------------------

async def test_every_write_appends_its_change(client: httpx.AsyncClient, admin: dict[str, str],
                                             users: Users) -> None:
    uid, owner = await users.user("owner")
    created = (await client.post("/api/v1/orders", json=ORDER, headers=owner)).json()
    path = f"/api/v1/orders/{created['_id']}"
    patched = (await client.patch(path, json={"quantity": 2}, headers=owner)).json()
    put = (await client.put(path, json={**ORDER, "quantity": 3}, headers=owner)).json()
    shared = (await client.put(f"{path}/acl", json={"access": [uid]}, headers=owner)).json()
    assert (await client.delete(path, headers=owner)).status_code == 200
    changes = (await feed_of(client, owner))["changes"]
    assert [c["op"] for c in changes] == ["create", "update", "update", "update", "delete"]
    for change, entity in zip(changes, [created, patched, put, shared, shared], strict=True):
        assert set(change) == {"seq", "store", "op", "_id", "entity", "at", "by"}
        assert (change["store"], change["_id"], change["by"]) == ("orders", created["_id"], uid)
        assert change["entity"] == entity
        assert change["at"] >= entity["updatedAt"]
    seqs = [c["seq"] for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5  # plain string order is the feed's order


async def test_a_failed_write_leaves_no_change_and_no_hole(client: httpx.AsyncClient, admin: dict[str, str],
                                                         app: Any) -> None:
    product = {"name": "Widget", "sku": "W-1", "price": 1}
    assert (await client.post("/api/v1/products", json=product, headers=admin)).status_code == 201
    assert (await client.post("/api/v1/products", json=product, headers=admin)).status_code == 409  # unique sku
    assert (await client.post("/api/v1/products", json={**product, "sku": "W-2"}, headers=admin)).status_code == 201
    changes = (await feed_of(client, admin, "products"))["changes"]
    assert [c["entity"]["sku"] for c in changes] == ["W-1", "W-2"]
    store = ctx_of(app).registry.get("products")
    page = await ctx_of(app).service.feed.read(store, None)
    assert page.position == 3 and not page.more  # the refused write's number was closed at once (a void)


async def test_hidden_fields_never_enter_the_feed(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    assert (await client.post("/api/v1/things", json={"name": "x", "pin": "1234"}, headers=admin)).status_code == 201
    [change] = (await feed_of(client, admin, "things"))["changes"]
    assert "pin" not in change["entity"] and change["entity"]["name"] == "x"


async def test_the_change_an_entity_carries_never_leaves_the_server(client: httpx.AsyncClient,
                                                                  users: Users) -> None:
    """Every entity carries its last change (`_change`, feed.py A): an internal field, in no answer."""
    uid, owner = await users.user("owner")
    created = await client.post("/api/v1/diary", json={"text": "one"}, headers=owner)
    path = f"/api/v1/diary/{created.json()['_id']}"
    answers = [created, await client.get(path, headers=owner),
               await client.patch(path, json={"mood": 2}, headers=owner),
               await client.put(path, json={"text": "two"}, headers=owner),
               await client.put(f"{path}/acl", json={"access": [uid]}, headers=owner)]
    versions = await client.get(f"{path}/_versions", headers=owner)
    answers += [versions, await client.post(f"{path}/_restore", json={"version": versions.json()[0]["version"]},
                                            headers=owner)]
    for params in ({}, {"meta": "true"}, {"only": "text"}, {"sort": "-updatedAt"}):
        answers.append(await client.get("/api/v1/diary", params=params, headers=owner))
    answers += [await client.get("/api/v1/diary/_changes", headers=owner),
                await client.get("/api/v1/auth/me", headers=owner),
                await client.patch(f"/api/v1/users/{uid}", json={"name": "O"}, headers=owner)]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        assert "_change" not in answer.text.replace("_changes", ""), answer.text


# --- since / limit / more / cursor -------------------------------------------------------

async def test_paging_with_since_limit_more_and_cursor(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    ids = [(await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()["_id"] for _ in range(5)]
    first = await feed_of(client, admin, limit=2)
    assert [c["_id"] for c in first["changes"]] == ids[:2] and first["more"] is True
    assert first["cursor"] == first["changes"][-1]["seq"]
    second = await feed_of(client, admin, since=first["cursor"], limit=2)
    assert [c["_id"] for c in second["changes"]] == ids[2:4] and second["more"] is True
    last = await feed_of(client, admin, since=second["cursor"], limit=2)
    assert [c["_id"] for c in last["changes"]] == ids[4:] and last["more"] is False
    empty = await feed_of(client, admin, since=last["cursor"])
    assert empty == {"changes": [], "cursor": last["cursor"], "more": False}
    later = (await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()
    assert ops((await feed_of(client, admin, since=last["cursor"]))["changes"]) == [("create", later["_id"])]


async def test_an_empty_feed_has_a_cursor_to_resume_from(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    empty = await feed_of(client, admin)
    assert empty["changes"] == [] and empty["more"] is False
    created = (await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()
    assert ops((await feed_of(client, admin, since=empty["cursor"]))["changes"]) == [("create", created["_id"])]


@pytest.mark.parametrize("params", [
    {"since": "nope"}, {"since": "0" * 24}, {"since": "0000000000000001ABCDEF01"}, {"limit": "0"},
    {"limit": "10001"}, {"limit": "x"}, {"sort": "seq"},
])
async def test_malformed_parameters_are_400(client: httpx.AsyncClient, admin: dict[str, str],
                                            params: dict[str, str]) -> None:
    r = await client.get("/api/v1/orders/_changes", params=params, headers=admin)
    assert r.status_code == 400, r.text
    assert r.json()["tags"] == ["error_bad_request"]


async def test_a_cursor_of_another_store_is_400(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    await client.post("/api/v1/notes", json={"title": "t"}, headers=admin)
    other = (await feed_of(client, admin, "notes"))["cursor"]
    r = await client.get("/api/v1/orders/_changes", params={"since": other}, headers=admin)
    assert r.status_code == 400 and r.json()["tags"] == ["error_bad_request"]


async def test_the_feed_needs_credentials_and_a_known_store(client: httpx.AsyncClient,
                                                            admin: dict[str, str]) -> None:
    assert (await client.get("/api/v1/orders/_changes")).status_code == 401
    assert (await client.get("/api/v1/nowhere/_changes", headers=admin)).status_code == 404


def test_cursors_sort_as_strings_and_name_their_store() -> None:
    texts = [cursor("orders", n) for n in (1, 9, 10, 255, 4096, 2**40)]
    assert texts == sorted(texts)
    assert [parse_cursor("orders", t) for t in texts] == [1, 9, 10, 255, 4096, 2**40]
    with pytest.raises(Exception, match="another store"):
        parse_cursor("notes", texts[0])


# --- X-Change-Cursor ---------------------------------------------------------------------

@pytest.mark.parametrize("query", ["", "?meta=true"])
async def test_a_list_then_its_cursor_misses_nothing(client: httpx.AsyncClient, admin: dict[str, str],
                                                    query: str) -> None:
    before = (await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()
    r = await client.get(f"/api/v1/orders{query}", headers=admin)
    assert r.status_code == 200
    mark = r.headers["X-Change-Cursor"]
    after = (await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()
    changes = (await feed_of(client, admin, since=mark))["changes"]
    assert ops(changes) == [("create", after["_id"])]
    assert before["_id"] not in [c["_id"] for c in changes]


async def test_the_list_cursor_waits_below_a_write_in_flight(app: Any, client: httpx.AsyncClient,
                                                            admin: dict[str, str]) -> None:
    """A write that holds a number but has not committed: the list's cursor stays below it, so
    resuming from it brings that change once it commits."""
    gate, entered = hold_inserts(ctx_of(app).storage.collection("orders"))
    posting = asyncio.create_task(client.post("/api/v1/orders", json=ORDER, headers=admin))
    await entered.wait()  # numbered, its entity write not landed yet
    mark = (await client.get("/api/v1/orders", headers=admin)).headers["X-Change-Cursor"]
    gate.set()
    created = (await posting).json()
    [change] = (await feed_of(client, admin, since=mark))["changes"]
    assert (change["op"], change["_id"]) == ("create", created["_id"])
    assert parse_cursor("orders", mark) == parse_cursor("orders", change["seq"]) - 1



async def test_lists_arriving_during_a_watermark_read_share_it(app: Any, client: httpx.AsyncClient,
                                                               admin: dict[str, str]) -> None:
    """Lists that arrive while the feed's watermark is being read for another wait for that read
    instead of making their own; a list after it has answered reads again (nothing is kept)."""
    await client.post("/api/v1/orders", json=ORDER, headers=admin)
    feed = ctx_of(app).service.feed
    gate, entered, real, reads = asyncio.Event(), asyncio.Event(), feed.watermark, []

    async def held(store: Any) -> int:
        reads.append(store.name)
        entered.set()
        await gate.wait()
        return await real(store)

    feed.watermark = held  # type: ignore[method-assign]
    first = asyncio.create_task(client.get("/api/v1/orders", headers=admin))
    await entered.wait()
    others = [asyncio.create_task(client.get("/api/v1/orders", headers=admin)) for _ in range(4)]
    await asyncio.sleep(0.05)  # the four are waiting on the read in flight, not reading themselves
    gate.set()
    answers = [await first, *[await task for task in others]]
    assert [r.status_code for r in answers] == [200] * 5
    assert {r.headers["X-Change-Cursor"] for r in answers} == {answers[0].headers["X-Change-Cursor"]}
    assert reads == ["orders"]
    later = (await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()
    mark = (await client.get("/api/v1/orders", headers=admin)).headers["X-Change-Cursor"]
    assert reads == ["orders", "orders"]
    changes = (await feed_of(client, admin, since=mark))["changes"]
    assert later["_id"] not in [c["_id"] for c in changes]  # read after the later write: it is below the mark

# --- who sees what: own op, enter, leave -------------------------------------------------

async def test_enter_and_leave_as_access_fields_change(client: httpx.AsyncClient, admin: dict[str, str],
                                                      users: Users) -> None:
    team = await users.group("team")
    owner_id, owner = await users.user("owner", groups=[team])
    reader_id, reader = await users.user("reader")
    member_id, member = await users.user("member", groups=[team])
    created = (await client.post("/api/v1/orders", json={**ORDER, "group": None}, headers=owner)).json()
    path = f"/api/v1/orders/{created['_id']}"
    steps = [  # (body of PUT /acl, by whom, what reader sees, what member sees)
        ({"access": [reader_id]}, owner, "enter", None),
        ({"branch": [team]}, owner, "update", "enter"),
        ({"access": []}, owner, "leave", "update"),
        ({"branch": []}, owner, None, "leave"),
        ({"group": team}, owner, None, "enter"),
        ({"owner": reader_id}, admin, "enter", "update"),
        ({"group": None}, admin, "update", "leave"),
    ]
    reader_mark = (await feed_of(client, reader))["cursor"]
    member_mark = (await feed_of(client, member))["cursor"]
    for body, who, for_reader, for_member in steps:
        r = await client.put(f"{path}/acl", json=body, headers=who)
        assert r.status_code == 200, r.text
        for headers, expected, mark in ((reader, for_reader, reader_mark), (member, for_member, member_mark)):
            page = await feed_of(client, headers, since=mark)
            got = [(c["op"], c["entity"]) for c in page["changes"]]
            want = [] if expected is None else [(expected, None if expected == "leave" else r.json())]
            assert got == want, (body, expected, got)
        reader_mark = (await feed_of(client, reader, since=reader_mark))["cursor"]
        member_mark = (await feed_of(client, member, since=member_mark))["cursor"]
    assert owner_id and member_id


async def test_create_and_delete_follow_read_rights(client: httpx.AsyncClient, users: Users) -> None:
    _, owner = await users.user("owner")
    _, stranger = await users.user("stranger")
    created = (await client.post("/api/v1/orders", json=ORDER, headers=owner)).json()
    await client.delete(f"/api/v1/orders/{created['_id']}", headers=owner)
    assert [c["op"] for c in (await feed_of(client, owner))["changes"]] == ["create", "delete"]
    stranger_page = await feed_of(client, stranger)
    assert stranger_page["changes"] == [] and stranger_page["more"] is False


async def test_a_reader_whose_groups_change_sees_the_feed_by_current_rights(
        client: httpx.AsyncClient, admin: dict[str, str], users: Users) -> None:
    team = await users.group("team")
    _, owner = await users.user("owner", groups=[team])
    reader_id, reader = await users.user("reader")
    created = (await client.post("/api/v1/orders", json=ORDER, headers=owner)).json()  # group: team
    await client.patch(f"/api/v1/orders/{created['_id']}", json={"quantity": 4}, headers=owner)
    assert (await feed_of(client, reader))["changes"] == []
    r = await client.patch(f"/api/v1/users/{reader_id}", json={"groups": [team]}, headers=admin)
    assert r.status_code == 200, r.text
    assert [c["op"] for c in (await feed_of(client, reader))["changes"]] == ["create", "update"]
    await client.patch(f"/api/v1/users/{reader_id}", json={"groups": []}, headers=admin)
    assert (await feed_of(client, reader))["changes"] == []


# --- numbering across writers: late commits and voids ------------------------------------

TwoFeeds = Callable[..., tuple[Feed, Feed, Any]]


@pytest.fixture
def two_feeds(tmp_path: Path) -> Iterator[TwoFeeds]:
    """Two Feed writers over one database, as two workers of `serve --workers 2` are: each with its
    own connections to one SQLite file, so the counters are the database's (`embedded=False`)."""
    opened: list[SqliteStorage] = []

    def make(**options: Any) -> tuple[Feed, Feed, Any]:
        target = str(tmp_path / f"feedtest-{len(opened)}.db")
        one, two = (SqliteStorage(target, name="feedtest", embedded=False) for _ in range(2))
        opened.extend((one, two))
        store = compile_schema("orders", {"type": "object", "properties": {"n": {"type": "integer"}}})
        return Feed(one, retention_seconds=3600, **options), Feed(two, retention_seconds=3600, **options), store

    yield make
    for storage in opened:
        storage.shut()


def entity(n: int) -> dict[str, Any]:
    now = utcnow()
    return {"_id": ObjectId(), "n": n, "owner": None, "group": None, "access": [], "branch": [],
            "createdAt": now, "updatedAt": now}


def hold_inserts(coll: Any) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold this collection object's inserts until the gate is set (a write in flight, its number
    taken); `entered` is set once one is held."""
    gate, entered, real = asyncio.Event(), asyncio.Event(), coll.insert

    async def held(doc: dict[str, Any]) -> None:
        entered.set()
        await gate.wait()
        await real(doc)

    coll.insert = held
    return gate, entered


async def test_a_late_commit_below_a_later_one_is_not_skipped(two_feeds: TwoFeeds) -> None:
    early, late, store = two_feeds()
    await early.ensure_indexes()
    gate, entered = hold_inserts(early.storage.collection("orders"))
    slow = asyncio.create_task(Writes(early).create(SYSTEM, store, first := entity(1)))  # number 1, in flight
    await entered.wait()
    await Writes(late).create(SYSTEM, store, second := entity(2))  # number 2, landed
    page = await late.read(store, 0)  # between the two entity writes
    assert page.records == [] and page.position == 0  # stops before the hole at 1
    gate.set()
    await slow
    page = await late.read(store, 0)
    assert [r["entity"]["n"] for r in page.records] == [1, 2] and page.position == 2
    assert (first["_change"]["seq"], second["_change"]["seq"]) == (1, 2)


async def test_a_dead_writer_s_number_is_closed_and_a_late_writer_numbers_again(two_feeds: TwoFeeds) -> None:
    writer, reader, store = two_feeds(void_after_seconds=0.2)
    await writer.ensure_indexes()
    gate, entered = hold_inserts(writer.storage.collection("orders"))
    stalled = asyncio.create_task(Writes(writer).create(SYSTEM, store, late := entity(1)))  # number 1, stalls
    await entered.wait()
    await Writes(reader).create(SYSTEM, store, entity(2))
    assert (await reader.read(store, 0)).position == 0  # young hole: wait
    await asyncio.sleep(0.3)
    page = await reader.read(store, 0)  # old hole: closed as void, the reader moves on
    assert [r["entity"]["n"] for r in page.records] == [2] and page.position == 2
    gate.set()  # the write lands after its number was voided: its writer sees it and renumbers
    await stalled
    page = await reader.read(store, 2)
    assert [(r["seq"], r["entity"]["n"]) for r in page.records] == [(3, 1)]  # seen, later
    assert late["_change"]["seq"] == 3


async def test_a_write_that_lands_after_its_writer_died_and_its_number_was_voided_is_renumbered(
        two_feeds: TwoFeeds) -> None:
    writer, reader, store = two_feeds(void_after_seconds=0.2)
    await writer.ensure_indexes()
    doc = entity(1)
    seq = await writer.numbers.next(store)
    doc["_change"] = carried.stamp(seq, "create", None, None, doc)
    await asyncio.sleep(0.3)
    assert (await reader.read(store, 0)).position == 1  # voided (a reader's void: noted for a recheck)
    await reader.storage.collection("orders").insert(doc)  # ... and the write lands now; its writer is gone
    await reader.settle([store])  # the maintenance loop's recheck finds it
    page = await reader.read(store, 1)
    assert [(r["seq"], r["id"]) for r in page.records] == [(2, doc["_id"])]
    notes = reader.storage.collection("_change_rechecks")
    assert await notes.count({}) == 1  # looked at again until the window ends
    reader.recheck_window = timedelta(0)
    await reader.settle([store])
    assert await notes.count({}) == 0


async def test_writers_asking_at_once_share_one_increment_of_the_counter(two_feeds: TwoFeeds) -> None:
    feed, _, store = two_feeds()
    counters, increments = feed.storage.collection("_change_seqs"), []
    real, gate = counters.increment, asyncio.Event()

    async def counted(query: Any, update: Any) -> Any:
        increments.append(update["$inc"]["seq"])
        await gate.wait()
        return await real(query, update)

    counters.increment = counted
    first = asyncio.create_task(feed.numbers.next(store))
    await asyncio.sleep(0.01)  # its increment is on its way: the next writers wait for the next one
    rest = [asyncio.create_task(feed.numbers.next(store)) for _ in range(5)]
    await asyncio.sleep(0.01)
    rest[2].cancel()  # a writer that goes away while waiting
    gate.set()
    assert await first == 1
    got = [await t for t in rest if not t.cancelled()]
    assert increments == [1, 4] and got == [2, 3, 4, 5]  # one increment for the four still waiting
    assert feed.numbers._leaders == {}
    gate.clear()
    rest = [asyncio.create_task(feed.numbers.next(store)) for _ in range(3)]
    await asyncio.sleep(0.01)  # one increment of 3 on its way
    rest[1].cancel()  # a writer that goes away while its number is being taken
    gate.set()
    assert [await rest[0], await rest[2]] == [6, 8] and increments == [1, 4, 3]
    await asyncio.sleep(0.01)  # the number taken for it is closed at once, not left as a hole
    assert (await feed.changes.find_one({"store": store.name, "seq": 7}) or {}).get("op") == "void"


async def test_a_hole_at_the_top_is_closed_too(two_feeds: TwoFeeds) -> None:
    writer, reader, store = two_feeds(void_after_seconds=0.2)
    await writer.ensure_indexes()
    await writer.numbers.next(store)  # a writer that died right after taking number 1
    assert (await reader.read(store, 0)).position == 0
    await asyncio.sleep(0.3)
    assert (await reader.read(store, 0)).position == 1


async def test_numbers_stay_dense_and_ordered_under_concurrent_writers(two_feeds: TwoFeeds) -> None:
    one, two, store = two_feeds()
    await one.ensure_indexes()
    for feed in (one, two):
        coll = feed.storage.collection("orders")

        async def flaky(doc: dict[str, Any], real: Any = coll.insert) -> None:
            await asyncio.sleep(0.001 * (doc["n"] % 7))
            if doc["n"] % 5 == 0:
                raise Conflict()  # every fifth write fails (a duplicate key): its number becomes a void
            await real(doc)

        coll.insert = flaky

    async def write(feed: Feed, n: int) -> None:
        with contextlib.suppress(Conflict):
            await Writes(feed).create(SYSTEM, store, entity(n))

    await asyncio.gather(*(write(one if n % 2 else two, n) for n in range(60)))
    page = await one.read(store, 0, 1000)
    assert page.position == 60
    assert sorted(r["entity"]["n"] for r in page.records) == [n for n in range(60) if n % 5]


async def test_numbering_goes_on_after_a_restart_on_the_embedded_database(settings: Settings, tmp_path: Path) -> None:
    """One process owns the embedded database and numbers in memory: after a restart it must go on
    from the last number in the data (carried by an entity or kept), not start again at 1."""
    on_disk = settings.model_copy(update={"data_dir": str(tmp_path / "data")})
    seen: list[list[int]] = []
    for _ in range(2):
        app = create_app(on_disk)
        async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                    base_url="http://t") as client:
            admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
            for _ in range(3):
                assert (await client.post("/api/v1/orders", json=ORDER, headers=admin)).status_code == 201
            seen.append([parse_cursor("orders", c["seq"]) for c in await everything(client, admin)])
    assert seen == [[1, 2, 3], [1, 2, 3, 4, 5, 6]]


# --- retention ---------------------------------------------------------------------------

async def test_expired_changes_are_removed_and_their_cursors_are_410(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"changes_retention_seconds": 0.5}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                base_url="http://t") as client:
        admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
        first = (await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()
        old = (await feed_of(client, admin))["cursor"]
        start = cursor("orders", 0)
        await asyncio.sleep(1.5)  # past retention; the maintenance tick (0.1 s here) removes it
        r = await client.get("/api/v1/orders/_changes", params={"since": start}, headers=admin)
        assert r.status_code == 410, r.text
        assert r.json()["tags"] == ["error_gone"] and r.json()["code"] == "410"
        assert (await feed_of(client, admin, since=old))["changes"] == []  # at the floor: still valid
        later = (await client.post("/api/v1/orders", json=ORDER, headers=admin)).json()
        assert ops((await feed_of(client, admin))["changes"]) == [("create", later["_id"])]
        raw = ctx_of(app).storage.collection("_changes")
        assert await raw.count({"store": "orders", "id": ObjectId(first["_id"])}) == 0


async def test_a_reader_that_met_a_deletion_gets_410_not_a_skip(two_feeds: TwoFeeds) -> None:
    feed, _, store = two_feeds()
    feed.retention = timedelta(seconds=0)
    await feed.ensure_indexes()
    for n in range(3):
        await Writes(feed).create(SYSTEM, store, entity(n))
    await asyncio.sleep(0.01)  # older than the (zero) retention
    await feed.expire([store])
    with pytest.raises(Gone):
        await feed.read(store, 1)
    assert (await feed.read(store, None)).position == 3


async def test_expiry_reads_only_the_oldest_change_while_it_is_within_retention(
        two_feeds: TwoFeeds, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process sweeps every few seconds: a page of up to 1,000 entities read each time for
    nothing to expire was a list's worth of database work."""
    feed, _, store = two_feeds()
    feed.retention = timedelta(hours=1)
    await feed.ensure_indexes()
    for n in range(3):
        await Writes(feed).create(SYSTEM, store, entity(n))
    limits: list[int] = []
    read = feed.read

    async def counted(store: Any, since: int | None, limit: int = 1000, **options: Any) -> Any:
        limits.append(limit)
        return await read(store, since, limit, **options)

    monkeypatch.setattr(feed, "read", counted)
    await feed.expire([store])
    assert limits == [1]
    assert [r["seq"] for r in (await read(store, None)).records] == [1, 2, 3]  # nothing expired
    feed.retention = timedelta(seconds=0)
    await asyncio.sleep(0.01)
    await feed.expire([store])
    with pytest.raises(Gone):
        await read(store, 1)


# --- history and restore -----------------------------------------------------------------

async def test_versions_and_restore_of_a_living_entity(client: httpx.AsyncClient, users: Users) -> None:
    _, owner = await users.user("owner")
    first = await client.post("/api/v1/diary", json={"text": "one", "mood": 1}, headers=owner)
    created = first.json()
    path = f"/api/v1/diary/{created['_id']}"
    second = await client.patch(path, json={"text": "two", "mood": None}, headers=owner)
    r = await client.get(f"{path}/_versions", headers=owner)
    assert r.status_code == 200, r.text
    versions = r.json()
    assert [(v["op"], v["entity"]["text"]) for v in versions] == [("create", "one"), ("update", "two")]
    assert versions[0]["version"] == first.headers["ETag"].strip('"')
    assert versions[1]["version"] == second.headers["ETag"].strip('"')
    assert set(versions[0]) == {"version", "op", "at", "by", "entity"}
    restored = await client.post(f"{path}/_restore", json={"version": versions[0]["version"]}, headers=owner)
    assert restored.status_code == 200, restored.text
    assert (restored.json()["text"], restored.json()["mood"], restored.json()["_id"]) == ("one", 1, created["_id"])
    changes = (await feed_of(client, owner, "diary"))["changes"]
    assert [c["op"] for c in changes] == ["create", "update", "update"]  # a restore is itself a change
    assert len((await client.get(f"{path}/_versions", headers=owner)).json()) == 3
    unknown = await client.post(f"{path}/_restore", json={"version": "ffff"}, headers=owner)
    assert unknown.status_code == 404


async def test_restore_of_a_deleted_entity_brings_back_its_id(client: httpx.AsyncClient, users: Users) -> None:
    _, owner = await users.user("owner")
    _, stranger = await users.user("stranger")
    created = (await client.post("/api/v1/diary", json={"text": "kept"}, headers=owner)).json()
    path = f"/api/v1/diary/{created['_id']}"
    await client.delete(path, headers=owner)
    assert (await client.get(path, headers=owner)).status_code == 404
    versions = (await client.get(f"{path}/_versions", headers=owner)).json()
    assert [v["op"] for v in versions] == ["create", "delete"]
    for who in (stranger,):  # could not read it when it was deleted: it does not exist for them
        assert (await client.get(f"{path}/_versions", headers=who)).status_code == 404
        assert (await client.post(f"{path}/_restore", json={"version": versions[0]["version"]},
                                  headers=who)).status_code == 404
    r = await client.post(f"{path}/_restore", json={"version": versions[0]["version"]}, headers=owner)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == path and r.json()["_id"] == created["_id"] and r.json()["text"] == "kept"
    assert (await client.get(path, headers=owner)).json()["text"] == "kept"
    assert [c["op"] for c in (await feed_of(client, owner, "diary"))["changes"]] == ["create", "delete", "create"]
    again = await client.post(f"{path}/_restore", json={"version": versions[0]["version"]}, headers=owner)
    assert again.status_code == 200  # alive again: a restore is now an update


async def test_history_is_404_for_those_who_cannot_read_and_for_stores_without_it(
        client: httpx.AsyncClient, users: Users) -> None:
    _, owner = await users.user("owner")
    _, stranger = await users.user("stranger")
    created = (await client.post("/api/v1/diary", json={"text": "private"}, headers=owner)).json()
    path = f"/api/v1/diary/{created['_id']}"
    assert (await client.get(f"{path}/_versions", headers=stranger)).status_code == 404
    version = (await client.get(f"{path}/_versions", headers=owner)).json()[0]["version"]
    assert (await client.post(f"{path}/_restore", json={"version": version}, headers=stranger)).status_code == 404
    order = (await client.post("/api/v1/orders", json=ORDER, headers=owner)).json()
    assert (await client.get(f"/api/v1/orders/{order['_id']}/_versions", headers=owner)).status_code == 404
    bad = await client.post(f"{path}/_restore", json={"nope": 1}, headers=owner)
    assert bad.status_code == 400 and "version" in bad.json()["fields"]


async def test_history_outlives_retention(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"changes_retention_seconds": 0.3}))
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                base_url="http://t") as client:
        admin = await token_for(client, ADMIN_LOGIN, ADMIN_PASSWORD)
        created = (await client.post("/api/v1/diary", json={"text": "a"}, headers=admin)).json()
        await asyncio.sleep(1.0)
        versions = (await client.get(f"/api/v1/diary/{created['_id']}/_versions", headers=admin)).json()
        assert [v["entity"]["text"] for v in versions] == ["a"]
        assert len((await feed_of(client, admin, "diary"))["changes"]) == 1


def test_x_history_must_be_a_boolean() -> None:
    with pytest.raises(SchemaError, match="x-history"):
        compile_schema("diary", {**DIARY, "x-history": "yes"})
    assert compile_schema("diary", DIARY).history is True
    assert compile_schema("diary", {"type": "object"}).history is False

