"""Engine.IO liveness from one heartbeat (storeengine/heartbeat.py, storeengine/eio.py): the
wheel on its own, the sockets' steps on it, and a real server's v4 clients, one answering its
pings and held, the others silent and closed after interval + timeout."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from engineio import packet as eio

from storeengine.realtime.transport.engineio import EngineServer, LeanSocket
from storeengine.realtime.transport.heartbeat import Heartbeat
from tests.conftest import Server
from tests.realtime.transport.test_legacy import ORDER, WAIT, api_of, cookie, fast_ping_server
from tests.realtime.transport.test_legacy_wire import frame, ws_url

__all__ = ["fast_ping_server"]  # the module-scoped server fixture of this module too

# --- the wheel ---------------------------------------------------------------------------

async def test_a_step_runs_once_at_its_time_never_early() -> None:
    wheel, ran = Heartbeat(tick=1.0), []

    async def step() -> None:
        ran.append(True)

    now = time.monotonic()
    wheel.at(now + 5, step)
    assert await wheel.turn(now + 4) == 0 and ran == []
    assert await wheel.turn(now + 6.01) == 1 and ran == [True]
    assert await wheel.turn(now + 60) == 0 and len(wheel) == 0


async def test_due_steps_run_in_chunks_spread_over_the_next_tick() -> None:
    wheel, order = Heartbeat(tick=0.3, chunk=2), []
    now = time.monotonic()
    for i in range(5):
        async def step(i: int = i) -> None:
            order.append((i, time.monotonic()))
        wheel.at(now, step)

    async def other() -> None:
        order.append(("other", time.monotonic()))

    task = asyncio.ensure_future(other())
    await wheel.turn(now + 0.6)
    await task
    assert [what for what, _ in order] == [0, 1, "other", 2, 3, 4]
    at = dict(order)
    assert at[1] - at[0] < 0.05 and at[2] - at[1] >= 0.1 - 0.01 and at[4] - at[2] >= 0.1 - 0.01  # 3 chunks, 0.1 s apart


async def test_a_step_scheduled_while_the_wheel_turns_waits_for_a_later_turn() -> None:
    wheel, ran = Heartbeat(tick=1.0), []
    now = time.monotonic()

    async def again() -> None:
        ran.append("again")

    async def first() -> None:
        ran.append("first")
        wheel.at(0, again)  # in the past: still not in the turn that is running

    wheel.at(now, first)
    await wheel.turn(now + 2)
    assert ran == ["first"]
    await wheel.turn(now + 4)
    assert ran == ["first", "again"]


# --- sockets on the wheel ------------------------------------------------------------------

def engine() -> EngineServer:
    return EngineServer(async_mode="asgi", ping_interval=25, ping_timeout=60)


async def test_a_socket_waiting_for_its_ping_has_no_task_of_its_own() -> None:
    server = engine()
    before = len(asyncio.all_tasks())
    for n in range(100):
        LeanSocket(server, f"s{n}").schedule_ping()  # what python-engineio calls at the open
    assert len(asyncio.all_tasks()) == before
    assert len(server.heartbeat) == 100


async def pinged() -> tuple[EngineServer, LeanSocket, float]:
    """A socket opened at `start` and pinged once (the ping taken off its queue)."""
    server = engine()
    sock = server.sockets["s1"] = LeanSocket(server, "s1")
    sock.schedule_ping()
    start = time.monotonic()
    await server.heartbeat.turn(start + 25.6)
    assert sock.queue.get_nowait().packet_type == eio.PING and not sock.closed
    return server, sock, start


async def test_the_heartbeat_pings_then_closes_a_socket_that_never_answers() -> None:
    server, sock, start = await pinged()
    await server.heartbeat.turn(start + 25.6 + 60.6)
    assert sock.closed and "s1" not in server.sockets
    rest = [sock.queue.get_nowait() for _ in range(sock.queue.qsize())]
    assert rest[-1] is None  # the writer's end marker, after a CLOSE when the client may still read
    assert all(pkt.packet_type == eio.CLOSE for pkt in rest[:-1])


async def test_a_pong_holds_the_socket_and_schedules_the_next_ping() -> None:
    server, sock, start = await pinged()
    await sock.receive(eio.Packet(eio.PONG))
    await server.heartbeat.turn(start + 25.6 + 60.6)  # the answered ping's check and the next ping
    assert not sock.closed and sock.queue.get_nowait().packet_type == eio.PING


async def test_a_socket_closed_elsewhere_leaves_the_table_at_its_next_step() -> None:
    server = engine()
    sock = server.sockets["s1"] = LeanSocket(server, "s1")
    sock.schedule_ping()
    sock.closed = True
    await server.heartbeat.turn(time.monotonic() + 26)
    assert "s1" not in server.sockets and len(server.heartbeat) == 0


# --- a real server (interval 1 s, timeout 2 s) ---------------------------------------------

async def test_a_v4_client_that_answers_is_held_and_still_gets_events(fast_ping_server: Server) -> None:
    async with api_of(fast_ping_server) as api, aiohttp.ClientSession() as session:
        _, sid = await api.user()
        async with session.ws_connect(ws_url(fast_ping_server, 4), headers=cookie(sid)) as ws:
            assert (await frame(ws)).startswith("0{")
            await ws.send_str("40")
            assert (await frame(ws)).startswith("40{")
            await ws.send_str('420["subscribe",{"store":"orders"}]')
            assert await frame(ws) == '430[{"success":true}]'
            start = time.monotonic()
            for _ in range(5):  # five pings, past interval + timeout twice over
                assert await frame(ws) == "2"
                await ws.send_str("3")
            assert time.monotonic() - start > 4
            created = await api.call("POST", "/api/v1/orders", cookie(sid), ORDER, status=201)
            while (message := await frame(ws)) == "2":
                await ws.send_str("3")
            name, data = json.loads(message[2:])
            assert (name, data["_id"]) == ("change", created["_id"])


async def test_a_silent_v4_websocket_client_is_closed_after_interval_plus_timeout(fast_ping_server: Server) -> None:
    async with api_of(fast_ping_server) as api, aiohttp.ClientSession() as session:
        _, sid = await api.user()
        async with session.ws_connect(ws_url(fast_ping_server, 4), headers=cookie(sid)) as ws:
            start = time.monotonic()
            assert (await frame(ws)).startswith("0{")
            await ws.send_str("40")
            assert (await frame(ws)).startswith("40{")
            assert await frame(ws) == "2"  # never answered
            message = await ws.receive(timeout=WAIT)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
            assert 3 - 0.1 <= time.monotonic() - start <= 3 + 2  # 1 s + 2 s, up to two ticks late


async def test_a_vanished_v4_polling_client_loses_its_session(fast_ping_server: Server) -> None:
    async with api_of(fast_ping_server) as api:
        _, sid = await api.user()
        url = "/socket.io/?EIO=4&transport=polling"
        r = await api.http.get(url, headers=cookie(sid))
        assert r.status_code == 200 and r.text.startswith("0{"), r.text
        session = json.loads(r.text[1:])["sid"]
        r = await api.http.post(f"{url}&sid={session}", content=b"40", headers=cookie(sid))
        assert r.status_code == 200, r.text
        await asyncio.sleep(4.5)  # no poll, no pong: 1 s + 2 s, and the ticks
        r = await api.http.get(f"{url}&sid={session}", headers=cookie(sid))
        assert r.status_code == 400, r.text
