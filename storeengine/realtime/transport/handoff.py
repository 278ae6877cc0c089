"""Several Socket.IO servers in one process (API.md 12: a tenant's rooms and sessions are its own),
behind one /socket.io path, and a connection that moves between them.

- A socket's later long-polling requests carry no header, whatever chose its server at the
  handshake (python-socketio's client sends its custom headers with the handshake only), so they
  all reach the first server. Every server of a process shares one `directory` (Engine.IO sid ->
  the server its socket is on) and passes a request for a socket of another server on to it.
- A client may name the server it wants in the Socket.IO CONNECT packet (`auth: {"tenant": key}`),
  which arrives after the Engine.IO handshake has opened the connection on the server the
  handshake's headers chose. `RoutingServer` asks its `route` hook, before any connect handler
  runs, which server a CONNECT belongs to (None: this one; the hook refuses with
  ConnectionRefusedError). Another server takes the Engine.IO socket over: its table, its
  heartbeat, its message and disconnect events (the socket finds them through `socket.server`),
  then handles the CONNECT as if the connection had opened there.
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
    directory: Directory  # set by RoutingServer

    async def handle_request(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        query_string: bytes = scope.get("query_string", b"")
        if b"sid=" in query_string:
            sid = urllib.parse.parse_qs(query_string.decode("latin-1")).get("sid", [""])[0]
            target = self.directory.get(sid)
            if target is not None and target is not self and sid not in self.sockets:
                return await target.handle_request(scope, receive, send)
        return await super().handle_request(scope, receive, send)


Directory = dict[str, RoutingEngineServer]


class RoutingServer(LegacyAsyncServer):
    """`directory`: shared by every server of the process (a new one when None)."""

    def __init__(self, *args: Any, directory: Directory | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eio.directory = {} if directory is None else directory
        self.route: Route | None = None

    def _engineio_server_class(self) -> type[RoutingEngineServer]:
        return RoutingEngineServer

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> None:
        self.eio.directory[eio_sid] = self.eio
        await super()._handle_eio_connect(eio_sid, environ)

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
        await target._handle_eio_connect(eio_sid, environ)  # in the directory: there now
        await LegacyAsyncServer._handle_eio_message(target, eio_sid, connect)  # no second routing

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        if self.eio.directory.get(eio_sid) is self.eio:
            del self.eio.directory[eio_sid]
        await super()._handle_eio_disconnect(eio_sid, reason)
