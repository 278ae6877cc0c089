"""Issue 19: a reader's buffer of live changes (store/tail.py) is bounded, holds only what the
reader may see, and a reader past the bound is ended; a replay holds one page at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from storeengine.http.context import Context
from storeengine.model.access import SYSTEM, Principal
from storeengine.store.feed import view
from storeengine.store.tail import FOLLOWER_MAX_BYTES, FOLLOWER_MAX_CHANGES, REPLAY_PAGE, Follower, Overflowed
from tests.conftest import Users

ORDER = {"product": "0123456789abcdef01234567", "quantity": 1}


def ctx_of(app: Any) -> Context:
    ctx: Context = app.other_asgi_app.app.state.ctx
    return ctx


def reader_of(principal: Principal) -> Any:
    return lambda store, record: view(principal, store, record) is not None


async def principal_of(ctx: Context, headers: dict[str, str]) -> Principal:
    return await ctx.auth.authenticate(bearer=headers["Authorization"].split()[1])


async def test_a_reader_who_may_read_nothing_pins_nothing(app: Any, client: httpx.AsyncClient,
                                                         admin: dict[str, str], users: Users) -> None:
    ctx = ctx_of(app)
    assert ctx.tail is not None
    _, outsider = await users.user("outsider")
    orders = ctx.registry.get("orders")
    blind = await ctx.tail.open(orders, None, reader_of(await principal_of(ctx, outsider)))
    everyone = await ctx.tail.open(orders, None, reader_of(SYSTEM))
    try:
        for _ in range(20):  # the admin's orders: the outsider may read none of them
            r = await client.post("/api/v1/orders", json={**ORDER, "note": "x" * 2000}, headers=admin)
            assert r.status_code == 201
        await _settled(ctx, "orders", 20)
        assert not blind.follower.buffer and blind.follower.bytes == 0
        assert len(everyone.follower.buffer) == 20 and everyone.follower.bytes > 20 * 2000
        mine = (await client.post("/api/v1/orders", json=ORDER, headers=outsider)).json()
        await _settled(ctx, "orders", 21)
        assert [str(r["entity"]["_id"]) for r, _ in blind.follower.buffer] == [mine["_id"]]
    finally:
        blind.close()
        everyone.close()


async def _settled(ctx: Context, store: str, seq: int) -> None:
    """Until the store's tailer has handed out change `seq`."""
    assert ctx.tail is not None
    for _ in range(200):
        tailer = ctx.tail.tailers.get(store)
        if tailer is not None and tailer.position >= seq:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the tailer of {store} did not reach {seq}")


async def test_a_reader_past_its_bound_is_ended_not_buffered(app: Any, client: httpx.AsyncClient,
                                                             admin: dict[str, str]) -> None:
    ctx = ctx_of(app)
    assert ctx.tail is not None
    orders = ctx.registry.get("orders")
    stream = await ctx.tail.open(orders, None, reader_of(SYSTEM))
    stream.follower.max_changes = 10  # the bound itself is checked below, on a Follower alone
    try:
        assert await stream.batch() == []  # caught up: from here on, only the buffer
        for n in range(11):
            assert (await client.post("/api/v1/orders", json={**ORDER, "quantity": n + 1},
                                      headers=admin)).status_code == 201
        await _settled(ctx, "orders", 11)
        assert stream.follower.overflowed and not stream.follower.buffer and stream.follower.bytes == 0
        assert stream.follower.arrived.is_set()  # a reader waiting for changes learns of it at once
        with pytest.raises(Overflowed):
            await stream.batch()
    finally:
        stream.close()


def test_a_follower_s_bound_counts_changes_and_bytes() -> None:
    store: Any = None
    record = {"seq": 1, "entity": {}}
    by_count = Follower()
    for n in range(FOLLOWER_MAX_CHANGES):
        by_count.push(store, {**record, "seq": n}, 100)
    assert not by_count.overflowed and len(by_count.buffer) == FOLLOWER_MAX_CHANGES
    by_count.push(store, record, 100)
    assert by_count.overflowed and not by_count.buffer
    by_count.push(store, record, 100)  # nothing more is kept once ended
    assert not by_count.buffer
    by_bytes = Follower()
    for n in range(4):
        by_bytes.push(store, {**record, "seq": n}, FOLLOWER_MAX_BYTES // 4)
    assert not by_bytes.overflowed and by_bytes.bytes == FOLLOWER_MAX_BYTES
    by_bytes.push(store, record, 1)
    assert by_bytes.overflowed and by_bytes.bytes == 0
    refusing = Follower(lambda s, r: False)
    for n in range(FOLLOWER_MAX_CHANGES * 3):
        refusing.push(store, {**record, "seq": n}, 10**6)
    assert not refusing.overflowed and not refusing.buffer


async def test_a_replay_holds_one_page_and_passes_pages_of_voids(app: Any, client: httpx.AsyncClient,
                                                                 admin: dict[str, str]) -> None:
    ctx = ctx_of(app)
    assert ctx.tail is not None
    orders = ctx.registry.get("orders")
    feed = ctx.service.feed
    for _ in range(REPLAY_PAGE + 5):  # numbers whose writers failed: a full page and more of voids
        seq = await feed.numbers.next(orders)
        assert await feed.void(orders, seq, sure=True)
    created = [(await client.post("/api/v1/orders", json=ORDER, headers=admin)).json() for _ in range(3)]
    stream = await ctx.tail.open(orders, 0, reader_of(SYSTEM))
    try:
        assert stream.page is not None and len(stream.page.records) <= REPLAY_PAGE
        replayed = await stream.batch()
        assert [str(r["entity"]["_id"]) for r in replayed] == [c["_id"] for c in created]
        assert stream.page is None and not stream.more and await stream.batch() == []
    finally:
        stream.close()
