"""storeengine/fanout.py: the batched fan-out manager and the collector policy, in-process."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
import socketio
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket

from storeengine.realtime.transport import fanout
from storeengine.realtime.transport.fanout import BatchManager, GcPolicy


async def _server(n: int) -> tuple[socketio.AsyncServer, list[AsyncSocket], list[str]]:
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=BatchManager())
    sockets, sids = [], []
    for i in range(n):
        sock = AsyncSocket(sio.eio, f"e{i}")
        sock.connected = True
        sio.eio.sockets[sock.sid] = sock
        sid = await sio.manager.connect(sock.sid, "/")
        await sio.manager.enter_room(sid, "/", "even" if i % 2 == 0 else "odd")
        sockets.append(sock)
        sids.append(sid)
    return sio, sockets, sids


def _queued(sock: AsyncSocket) -> list[str]:
    out = []
    while not sock.queue.empty():
        pkt = sock.queue.get_nowait()
        assert pkt.packet_type == eio_packet.MESSAGE
        out.append(pkt.data)
    return out


async def test_one_packet_per_recipient_of_the_rooms_in_order_and_no_task_each() -> None:
    sio, sockets, sids = await _server(1201)  # more than two batches: the yields keep order
    created = 0
    loop = asyncio.get_running_loop()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        await sio.emit("change", {"n": 1}, to=["even", "odd"], skip_sid=sids[5])
        await sio.emit("change", {"n": 2}, to="odd")
    finally:
        loop.set_task_factory(None)
    assert created == 0
    for i, sock in enumerate(sockets):
        expected = [] if i == 5 else ['2["change",{"n":1}]']
        expected += ['2["change",{"n":2}]'] if i % 2 else []
        assert _queued(sock) == expected, i
    await sio.emit("change", {"n": 3}, to="even")
    assert sockets[0].queue.get_nowait() is sockets[2].queue.get_nowait()  # one packet, shared


async def test_a_closed_socket_does_not_cost_the_others_their_event() -> None:
    sio, sockets, _ = await _server(4)
    sockets[0].closed = True  # its send raises
    await sio.emit("change", {"n": 1}, to="even")
    assert _queued(sockets[2]) == ['2["change",{"n":1}]']


async def test_events_with_acks_keep_python_socketio_s_path() -> None:
    sio, sockets, _ = await _server(2)
    await sio.emit("change", {"n": 1}, to="even", callback=lambda *a: None)
    assert _queued(sockets[0]) == ['21["change",{"n":1}]']  # an ack id of its own


async def test_a_connection_burst_is_frozen_once_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "FREEZE_AFTER_QUIET", 0.1)
    policy = GcPolicy()
    gc.unfreeze()
    try:
        for _ in range(5):
            policy.connected()
            await asyncio.sleep(0.02)
        assert policy.freezes == 0  # still bursting
        await asyncio.sleep(0.2)
        assert policy.freezes == 1
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_a_steady_trickle_is_frozen_at_least_every_so_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "FREEZE_AFTER_QUIET", 0.1)
    monkeypatch.setattr(fanout, "FREEZE_AT_LEAST_EVERY", 0.3)
    policy = GcPolicy()
    try:
        for _ in range(25):  # one connection every 20 ms: never 100 ms quiet
            policy.connected()
            await asyncio.sleep(0.02)
        assert policy.freezes >= 1
    finally:
        gc.unfreeze()


async def test_young_collections_run_on_a_timer_whatever_the_net_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "YOUNG_EVERY", 0.05)
    policy = GcPolicy()
    before = gc.get_stats()[0]["collections"]
    policy.install()
    try:
        await asyncio.sleep(0.32)
        assert gc.get_stats()[0]["collections"] - before >= 5
    finally:
        policy.uninstall()
        gc.set_threshold(700, 10, 10)
    stopped = gc.get_stats()[0]["collections"]
    await asyncio.sleep(0.12)
    assert gc.get_stats()[0]["collections"] - stopped <= 1  # at most an allocation-driven one
