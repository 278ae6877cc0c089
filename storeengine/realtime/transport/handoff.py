"""Hands a Socket.IO connection to another server of this process when its CONNECT packet says so.

A client may name the server it wants in the Socket.IO CONNECT packet (API.md 12: `auth:
{"tenant": key}`), which arrives after the Engine.IO handshake has opened the connection on the
server the handshake's headers chose. Each tenant has a Socket.IO server of its own (its rooms,
its sessions, its Redis channel), so the connection moves rather than the rooms being shared:

- `RoutingServer` asks its `route` hook, before any connect handler runs, which server a CONNECT
  belongs to (None: this one; the hook refuses with ConnectionRefusedError). Another server takes
  the Engine.IO socket over: its table, its heartbeat, its message and disconnect events (the
  socket finds them through `socket.server`), then handles the CONNECT as if the connection had
  opened there.
- The socket's later long-polling requests still arrive at the first server (they carry no
  header either): `RoutingEngineServer.moved` passes them on until the socket disconnects.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import socketio
from socketio import packet as sio

from storeengine.realtime.transport.legacy import LegacyAsyncServer, LegacyEngineServer

Route = Callable[[Mapping[str, Any], Any], Awaitable["RoutingServer | None"]]


class RoutingEngineServer(LegacyEngineServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.moved: dict[str, LegacyEngineServer] = {}  # Engine.IO sid -> the server it was handed to

    async def handle_request(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if self.moved:  # parsed only while some socket of this server lives elsewhere
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            sid = query.get("sid", [""])[0]
            target = self.moved.get(sid)
            if target is not None and sid not in self.sockets:
                return await target.handle_request(scope, receive, send)
        return await super().handle_request(scope, receive, send)


class RoutingServer(LegacyAsyncServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.route: Route | None = None
        self._arrived: dict[str, RoutingEngineServer] = {}  # Engine.IO sid -> the server it came from

    def _engineio_server_class(self) -> type[RoutingEngineServer]:
        return RoutingEngineServer

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if self.route is not None and isinstance(data, str) and data[:1] == "0":
            try:
                pkt = self.packet_class(encoded_packet=data)
            except (ValueError, RecursionError):
                pkt = None  # the plain path below refuses it
            if pkt is not None and pkt.packet_type == sio.CONNECT and pkt.namespace in (None, "/"):
                try:
                    target = await self.route(self.environ.get(eio_sid, {}), pkt.data)
                except socketio.exceptions.ConnectionRefusedError as exc:
                    await self._send_packet(eio_sid, self.packet_class(
                        sio.CONNECT_ERROR, data=exc.error_args, namespace="/"))
                    return
                if target is not None and target is not self:
                    await self._hand_over(eio_sid, target, data)
                    return
        await super()._handle_eio_message(eio_sid, data)

    async def _hand_over(self, eio_sid: str, target: RoutingServer, connect: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        environ = self.environ.get(eio_sid)
        if socket is None or environ is None or socket.closed:
            return  # it went away while its server was looked for
        del self.eio.sockets[eio_sid], self.environ[eio_sid]
        socket.server = target.eio
        target.eio.sockets[eio_sid] = socket
        target.eio.start_heartbeat()  # its pings, scheduled here, go on there (LeanSocket uses socket.server)
        self.eio.moved[eio_sid] = target.eio
        target._arrived[eio_sid] = self.eio
        await target._handle_eio_connect(eio_sid, environ)
        await LegacyAsyncServer._handle_eio_message(target, eio_sid, connect)  # no second routing

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        origin = self._arrived.pop(eio_sid, None)
        if origin is not None:
            origin.moved.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)
