"""API.md 14, filtered subscriptions (live queries), against real `storeengine serve` processes:
`subscribe` with a filter over Socket.IO (enter / leave / update / nothing, combined with access,
a replaced filter, a bad filter's ack, `since` replays) and `_changes?filter=` (REST pages, SSE)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from tests.http.test_changes import sse
from tests.sockets import WAIT, Api, Listener, admin, api, assert_event, bearer, listening

__all__ = ["admin", "api"]  # tests/sockets.py's real-server fixtures, for this module's tests too

PAID = {"status": "paid"}


async def filtered(listener: Listener, flt: Any, store: str = "orders", **extra: Any) -> None:
    assert await listener.ack("subscribe", {"store": store, "filter": flt, **extra}) == {"success": True}


async def marker(listener: Listener, api: Api, token: str) -> None:
    """Nothing arrived for earlier writes: a write of the caller's own that matches PAID comes first."""
    mine = await api.order(token, status="paid", note="marker")
    event = await listener.next()
    assert (event["op"], event["_id"]) == ("create", mine["_id"]), event
    await listener.quiet()


async def test_enter_update_leave_and_nothing_by_filter(api: Api, admin: str) -> None:
    async with listening(api.url, **bearer(admin)) as sub:
        await filtered(sub, PAID)
        created = await api.order(admin, status="new")  # create outside the filter: nothing
        path = f"/api/v1/orders/{created['_id']}"
        await marker(sub, api, admin)
        paid = await api.call("PATCH", path, admin, {"status": "paid"})
        assert_event(await sub.next(), "enter", paid)
        more = await api.call("PATCH", path, admin, {"quantity": 2})
        assert_event(await sub.next(), "update", more)
        shipped = await api.call("PATCH", path, admin, {"status": "shipped"})
        left = await sub.next()
        assert (left["op"], left["_id"], left["entity"]) == ("leave", shipped["_id"], None)
        await api.call("PATCH", path, admin, {"quantity": 3})  # matched neither before nor after
        await api.call("DELETE", path, admin)  # deleted outside the filter: nothing
        await marker(sub, api, admin)
        matching = await api.order(admin, status="paid")
        assert_event(await sub.next(), "create", matching)
        await api.call("DELETE", f"/api/v1/orders/{matching['_id']}", admin)
        gone = await sub.next()
        assert (gone["op"], gone["_id"], gone["entity"]) == ("delete", matching["_id"], matching)


async def test_a_filtered_subscriber_never_receives_an_entity_it_may_not_read(api: Api, admin: str) -> None:
    reader_id, reader = await api.user(admin, "reader")
    async with listening(api.url, **bearer(reader)) as r, listening(api.url, **bearer(admin)) as a:
        await filtered(r, PAID)
        await filtered(a, PAID)  # the same filter: one group, the rooms decide by access
        hidden = await api.order(admin, status="paid")
        assert_event(await a.next(), "create", hidden)
        path = f"/api/v1/orders/{hidden['_id']}"
        await api.call("PATCH", path, admin, {"status": "new"})
        assert (await a.next())["op"] == "leave"
        await api.call("PUT", f"{path}/acl", admin, {"access": [reader_id]})  # readable, not matching
        await marker(r, api, reader)  # nothing for the admin's order while it was not readable
        assert (await a.next())["op"] == "create"  # the reader's marker, seen by the admin too
        paid = await api.call("PATCH", path, admin, {"status": "paid"})
        assert_event(await r.next(), "enter", paid)  # matches now, and readable
        unshared = await api.call("PUT", f"{path}/acl", admin, {"access": []})
        left = await r.next()
        assert (left["op"], left["_id"], left["entity"]) == ("leave", hidden["_id"], None)
        assert (await a.next())["op"] == "enter" and (await a.next())["op"] == "update"
        assert unshared["status"] == "paid"
        await api.call("PATCH", path, admin, {"quantity": 7})  # matches, but not readable by the reader
        await marker(r, api, reader)


async def test_a_new_subscribe_replaces_the_filter(api: Api, admin: str) -> None:
    async with listening(api.url, **bearer(admin)) as sub:
        await filtered(sub, PAID)
        await filtered(sub, json.dumps({"status": {"$in": ["new"]}}))  # the JSON text works as well
        await api.order(admin, status="paid")  # the first filter is gone
        fresh = await api.order(admin, status="new")
        assert_event(await sub.next(), "create", fresh)
        await sub.quiet()
        assert await sub.ack("subscribe", {"store": "orders"}) == {"success": True}  # no filter: everything
        other = await api.order(admin, status="paid")
        assert_event(await sub.next(), "create", other)
        assert await sub.ack("unsubscribe", {"store": "orders"}) == {"success": True}
        await api.order(admin, status="new")
        await sub.quiet()


def nested_and(leaf: dict[str, Any], levels: int) -> dict[str, Any]:
    """`leaf` inside `levels` `$and`s (two levels of JSON each)."""
    for _ in range(levels):
        leaf = {"$and": [leaf]}
    return leaf


async def test_a_filter_as_deep_as_a_list_takes_is_a_subscription(api: Api, admin: str) -> None:
    """The packet around a filter adds its own levels: a filter the list takes is not a packet
    too deep for the socket (which then closed, with no ack)."""
    _, reader = await api.user(admin, "reader")
    deep = nested_and(PAID, 15)
    await api.call("GET", f"/api/v1/orders?filter={quote(json.dumps(deep))}", reader)
    async with listening(api.url, **bearer(reader)) as sub:
        await filtered(sub, deep)
        await filtered(sub, json.dumps(deep))
        await marker(sub, api, reader)


async def test_a_bad_filter_s_ack_is_the_list_s_400_body(api: Api, admin: str) -> None:
    _, reader = await api.user(admin, "reader")
    bad = ["not json", {"nope": 1}, {"quantity": {"$where": "1"}}, {"note": {"$regex": "(a)\\1"}},
           {"deliverBy": {"$gt": "yesterday"}}, [1], 7,
           {"quantity": 2**64}, {"quantity": {"$gt": -(2**63) - 1}},  # packets keep such integers exact
           nested_and(PAID, 20)]  # deeper than a list's filter may be: the 400, not a closed socket
    async with listening(api.url, **bearer(reader)) as sub:
        for flt in bad:
            text = flt if isinstance(flt, str) else json.dumps(flt)
            answer = await sub.ack("subscribe", {"store": "orders", "filter": flt})
            listed = await api.call("GET", f"/api/v1/orders?filter={quote(text)}", reader, status=400)
            assert answer == listed, (flt, answer, listed)
        assert (await sub.ack("subscribe", {"store": "nope", "filter": PAID}))["tags"] == ["error_not_found"]
        await api.order(reader, status="paid")
        await sub.quiet()  # a refused subscription subscribes to nothing


async def test_since_replays_through_the_filter_then_goes_live(api: Api, admin: str) -> None:
    start = (await api.http.get("/api/v1/orders", headers={"Authorization": f"Bearer {admin}"}))
    since = start.headers["X-Change-Cursor"]
    created = await api.order(admin, status="new")
    path = f"/api/v1/orders/{created['_id']}"
    paid = await api.call("PATCH", path, admin, {"status": "paid"})
    more = await api.call("PATCH", path, admin, {"quantity": 5})
    await api.call("PATCH", path, admin, {"status": "cancelled"})
    await api.order(admin, status="shipped")
    async with listening(api.url, **bearer(admin)) as sub:
        await filtered(sub, PAID, since=since)
        replayed = [await sub.next() for _ in range(3)]
        assert [e["op"] for e in replayed] == ["enter", "update", "leave"]
        assert [e["entity"] for e in replayed] == [paid, more, None]
        await sub.quiet()
        live = await api.call("PATCH", path, admin, {"status": "paid"})
        assert_event(await sub.next(), "enter", live)


async def test_changes_filter_in_pages_and_over_sse(api: Api, admin: str) -> None:
    _, reader = await api.user(admin, "reader")
    created = await api.order(reader, status="new")
    path = f"/api/v1/orders/{created['_id']}"
    await api.call("PATCH", path, reader, {"status": "paid"})
    await api.call("PATCH", path, reader, {"quantity": 4})
    await api.call("PATCH", path, reader, {"status": "shipped"})
    await api.order(admin, status="paid")  # matches, not readable by the reader
    flt = quote(json.dumps(PAID))
    seen: list[dict[str, Any]] = []
    since = ""
    while True:  # one change per page: the cursors resume through the filter
        page = await api.call("GET", f"/api/v1/orders/_changes?limit=1&filter={flt}{since}", reader)
        seen += page["changes"]
        since = f"&since={page['cursor']}"
        if not page["more"]:
            break
    assert [(c["op"], c["_id"]) for c in seen] == [(op, created["_id"]) for op in ("enter", "update", "leave")]
    assert seen[2]["entity"] is None
    everything = await api.call("GET", f"/api/v1/orders/_changes?filter={flt}", admin)
    assert [c["op"] for c in everything["changes"]] == ["enter", "update", "leave", "create"]
    unknown = quote(json.dumps({"nope": 1}))
    for refused in (unknown, quote(json.dumps({"note": {"$regex": "a(?=b)"}}))):  # undeclared; not RE2
        bad = await api.call("GET", f"/api/v1/orders/_changes?filter={refused}", reader, status=400)
        listed = await api.call("GET", f"/api/v1/orders?filter={refused}", reader, status=400)
        assert bad == listed

    async with httpx.AsyncClient(base_url=api.url, timeout=WAIT) as http:
        hdrs = {"Authorization": f"Bearer {reader}", "Accept": "text/event-stream"}
        r = await http.get(f"/api/v1/orders/_changes?filter={unknown}", headers=hdrs)
        assert r.status_code == 400
    async with sse(api, reader, query=f"?filter={flt}") as stream:
        backlog = [(await stream.next())[2] for _ in range(3)]
        assert [c["op"] for c in backlog] == ["enter", "update", "leave"]
        await api.call("PATCH", path, reader, {"quantity": 8})  # not matching: nothing
        await api.order(admin, status="paid")  # not readable: nothing
        again = await api.call("PATCH", path, reader, {"status": "paid"})
        _, _, change = await stream.next()
        assert (change["op"], change["entity"]) == ("enter", again)
