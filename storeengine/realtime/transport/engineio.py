"""python-engineio's server and sockets, with the per-socket tasks taken out.

python-engineio (4.x) spends, per connected socket: a task per ping (sleep, then ping), a
task and a timer per packet read (`wait_for` around the WebSocket read) and per packet
written (`wait_for` around the queue), and a service task that wakes once per socket per
ping timeout. That cost is paid with no traffic at all and grows with the number of
sockets. Here:

- pings and the checks that they were answered run from one `Heartbeat` (heartbeat.py),
  which also drops closed sockets from the server's table; over a WebSocket the ping is
  written directly, without waking the socket's writer (every wake-up leaves a new chain of
  waiting coroutines for the collector: at 10,000 sockets those made young collections of
  60,000+ objects and stalls of 100+ ms);
- the WebSocket reader and writer read directly; a socket whose client went silent is closed
  by the heartbeat, which ends its writer, whose WebSocket close ends the reader;
- the long-polling wait uses `asyncio.timeout` (a timer, not a task).

The protocol, the handshake and the events are python-engineio's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from engineio import async_socket, exceptions
from engineio import packet as eio
from engineio.async_server import AsyncServer

from storeengine.realtime.transport.heartbeat import Heartbeat

log = logging.getLogger(__name__)
PING = eio.Packet(eio.PING).encode()


class LeanSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    """One Engine.IO (v4) connection; the server pings it from its heartbeat."""

    server: EngineServer
    # python-engineio's state, declared for the type checker
    sid: str
    last_ping: float | None
    connected: bool
    upgrading: bool
    upgraded: bool
    closing: bool
    closed: bool
    _ws: Any = None  # the WebSocket, once the connection is on it

    async def poll(self, *, until_end: bool = False) -> list[Any]:
        """The packets waiting to be sent, once there is one; `[]` at the end of the stream.
        Long-polling gives up after the heartbeat's bound; the WebSocket writer (`until_end`)
        waits until the end marker."""
        bound = None if until_end else self.server.ping_interval + self.server.ping_timeout
        try:
            async with asyncio.timeout(bound):
                first = await self.queue.get()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None  # python-engineio's contract: a poll that ended
        self.queue.task_done()
        if first is None:
            return []
        packets = [first]
        while not self.queue.empty():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)  # the next poll ends the stream
                break
            packets.append(pkt)
        return packets

    def schedule_ping(self) -> None:
        # Called at the open and on each pong; only the first pong after a ping counts.
        if self.last_ping:
            self.last_ping = None
            self.server.heartbeat.at(time.monotonic() + self.server.ping_interval, self._ping)

    async def _ping(self) -> None:
        if self.closed or self.closing:
            self.server.forget(self)
            return
        stamp = self.last_ping = time.time()
        if self._ws is None:
            await self.send(eio.Packet(eio.PING))
        else:
            try:
                await self._ws.send(PING)
            except Exception:  # the connection just went away: its reader ends and closes the socket
                log.debug("%s: ping not sent", self.sid, exc_info=True)
        self.server.heartbeat.at(time.monotonic() + self.server.ping_timeout,
                                 functools.partial(self._answered, stamp))

    async def _answered(self, stamp: float) -> None:
        if self.closed or self.closing:
            self.server.forget(self)
        elif self.last_ping == stamp:  # no pong since that ping
            await self.time_out()

    async def time_out(self) -> None:
        log.info("Socket.IO client %s did not answer a ping within %s s: closing", self.sid, self.server.ping_timeout)
        await self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
        self.timed_out()

    def timed_out(self) -> None:
        """After a heartbeat closed the socket: end its writer (or its long poll), whose
        WebSocket close ends the reader, and drop it from the table."""
        self.queue.put_nowait(None)
        self.server.forget(self)

    async def _websocket_handler(self, ws: Any) -> None:
        if self.connected:  # already connected over long-polling: this is the upgrade
            if not await self._upgrade(ws):
                return
        else:
            self.connected = self.upgraded = True
        writer = asyncio.ensure_future(self._write(ws))
        self._ws = ws
        try:
            await self._read(ws)
        finally:
            self._ws = None
            self.queue.put_nowait(None)  # the writer ends on it
            await writer
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    async def _upgrade(self, ws: Any) -> bool:
        """The probe and the upgrade packet (python-engineio's handshake)."""
        self.upgrading = True  # hold back long-polling sends during the upgrade
        try:
            probe = await self._next(ws)
            if probe is None or probe.packet_type != eio.PING or probe.data != "probe":
                log.info("%s: failed WebSocket upgrade: no probe", self.sid)
                return False
            await ws.send(eio.Packet(eio.PONG, data="probe").encode())
            await self.queue.put(eio.Packet(eio.NOOP))  # ends the pending long poll
            upgrade = await self._next(ws)
            if upgrade is None or upgrade.packet_type != eio.UPGRADE:
                log.info("%s: failed WebSocket upgrade: no upgrade packet", self.sid)
                return False
            self.upgraded = True
            return True
        finally:
            self.upgrading = False

    async def _next(self, ws: Any) -> Any:
        """The next packet from the client; None when the connection ended or broke the protocol."""
        try:
            data = await ws.wait()
        except OSError:  # the ASGI driver's way of saying the client disconnected
            return None
        if data is None or len(data) > self.server.max_http_buffer_size:
            return None
        try:
            return eio.Packet(encoded_packet=data)
        except Exception: # whatever the decoder raises on garbage, the client is out
            log.info("%s: undecodable Engine.IO packet: closing", self.sid)
            return None

    async def _read(self, ws: Any) -> None:
        while (pkt := await self._next(ws)) is not None:
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                return
            except Exception:
                log.exception("%s: error handling a packet", self.sid)

    async def _write(self, ws: Any) -> None:
        try:
            while packets := await self.poll(until_end=True):
                for pkt in packets:
                    await ws.send(pkt.encode())
        except Exception: # a send to a connection that just went away ends the writer
            log.debug("%s: WebSocket writer ended", self.sid, exc_info=True)
        await ws.close()


class EngineServer(AsyncServer):  # type: ignore[misc]
    """python-engineio's server with `LeanSocket`s and one heartbeat instead of a service task."""

    start_service_task: bool  # set by python-engineio's constructor
    socket_class: type[LeanSocket] = LeanSocket

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat = Heartbeat()

    def forget(self, sock: LeanSocket) -> None:
        """Drop a closed socket from the table (python-engineio also drops them lazily)."""
        if sock.closed and self.sockets.get(sock.sid) is sock:
            del self.sockets[sock.sid]

    def start_heartbeat(self) -> None:
        if self.start_service_task:
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)

    async def _service_task(self) -> None:
        self.service_task_event = self.create_event()
        await self.heartbeat.run(self.service_task_event)

    async def _handle_connect(self, environ: dict[str, Any], transport: str, jsonp_index: int | None = None) -> Any:
        self.start_heartbeat()
        sid = self.generate_id()
        sock = self.socket_class(self, sid)
        self.sockets[sid] = sock
        await sock.send(eio.Packet(eio.OPEN, {
            "sid": sid, "upgrades": self._upgrades(sid, transport),
            "pingTimeout": int(self.ping_timeout * 1000),
            "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
            "maxPayload": self.max_http_buffer_size,
        }))
        answer = await self._trigger_event("connect", sid, environ, run_async=False)
        if answer is not None and answer is not True:
            del self.sockets[sid]
            log.info("Socket.IO connection %s refused by the application", sid)
            return self._unauthorized(answer or None)
        sock.schedule_ping()
        if transport == "websocket":
            answer = await sock.handle_get_request(environ)
            self.forget(sock)
            return answer
        sock.connected = True
        try:
            return self._ok(await sock.poll(), headers=self._cookie_headers(sid), jsonp_index=jsonp_index)
        except exceptions.QueueEmpty:
            return self._bad_request()

    def _cookie_headers(self, sid: str) -> list[tuple[str, str]] | None:
        if not self.cookie:
            return None
        options = self.cookie if isinstance(self.cookie, dict) else {"name": self.cookie, "path": "/",
                                                                       "SameSite": "Lax"}
        return [("Set-Cookie", self._generate_sid_cookie(sid, options))]
