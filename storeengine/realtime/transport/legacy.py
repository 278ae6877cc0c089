"""Engine.IO v3 / Socket.IO protocol v4 (socket.io-client 2.x) beside v4 on the same server.

python-engineio 4 speaks only Engine.IO v4. The two versions differ only at the wire, so
this module adds just the v3 framing in front of the one python-socketio `AsyncServer`
(its handlers, rooms, managers and Redis queue stay the same for every client):

- `LegacyEngineServer` is the Engine.IO server python-socketio builds. A request without a
  session and with `EIO=3` opens a `V3Socket`; everything else takes python-engineio's path,
  which serves a `V3Socket`'s later requests through the socket's own methods.
- `V3Socket` answers the client's pings (in v3 the client pings, the server pongs), times
  out a client that stops pinging, and reads and writes the v3 polling payload
  (`<length>:<packet>`, the length counted in UTF-16 code units as JavaScript does).
- Socket.IO protocol v4 joins the default namespace implicitly, so the v3 socket performs
  that connect itself, and turns the two server packets that differ into the old form:
  CONNECT carries no payload (`40`) and CONNECT_ERROR carries a plain string
  (`44"Unauthorized"`). Events and acks are framed alike, so broadcasts are not touched.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import socketio
from engineio import exceptions
from engineio import packet as eio
from engineio.payload import Payload
from socketio import packet as sio

from storeengine.core.errors import BadRequest, MethodNotAllowed, StoreError
from storeengine.core.jsonio import loads_bounded
from storeengine.realtime.transport.engineio import EngineServer, LeanSocket
from storeengine.realtime.transport.sendqueue import close_now

log = logging.getLogger(__name__)
_V3_BINARY_PREFIX = "b4"  # a base64 MESSAGE in a v3 text payload


# --- the v3 polling payload -------------------------------------------------------------

def _js_length(text: str) -> int:
    """Length as JavaScript counts it (UTF-16 code units): the unit of v3 payload lengths."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def _js_end(text: str, start: int, units: int) -> int:
    """Index in `text` that lies `units` UTF-16 code units after `start`."""
    end = start + units
    if text.isascii():
        return end
    index = start
    while units > 0 and index < len(text):
        units -= 2 if ord(text[index]) > 0xFFFF else 1
        index += 1
    if units < 0:
        raise ValueError("a packet length splits a character")
    return index + units  # past the end if the payload ran out first


def encode_packet(pkt: Any) -> str:
    if pkt.binary:
        return _V3_BINARY_PREFIX + base64.b64encode(pkt.data).decode("ascii")
    return str(pkt.encode())


def encode_payload(packets: list[Any]) -> str:
    """v3 text payload: each packet as `<length>:<packet>`; no packet at all is `0:`."""
    if not packets:
        return "0:"
    return "".join(f"{_js_length(text)}:{text}" for text in map(encode_packet, packets))


def decode_payload(body: str) -> list[Any]:
    """The packets of a v3 text payload; ValueError if it is malformed."""
    return list(_split_payload(body))


def _split_payload(body: str) -> Iterator[Any]:
    index = count = 0
    while index < len(body):
        colon = body.find(":", index, index + 12)
        if colon <= index or not body[index:colon].isdigit():
            raise ValueError("a payload packet needs a <length>: prefix")
        end = _js_end(body, colon + 1, int(body[index:colon]))
        if end > len(body) or end == colon + 1:
            raise ValueError("a payload packet is shorter than its length")
        count += 1
        if count > Payload.max_decode_packets:  # python-engineio's bound on a v4 payload
            raise ValueError("too many packets in one payload")
        yield _decode_packet(body[colon + 1:end])
        index = end


def _decode_packet(text: str) -> Any:
    if text.startswith("b"):  # base64 binary: 'b', the packet type, the data
        if not text[1:2].isdigit():
            raise ValueError("a base64 packet needs its packet type")
        return eio.Packet(int(text[1]), base64.b64decode(text[2:], validate=True))
    return eio.Packet(encoded_packet=text)


# --- Socket.IO protocol v4 differences --------------------------------------------------

def to_protocol_v4(message: str) -> str:
    """A server CONNECT or CONNECT_ERROR in the form socket.io-client 2.x reads: CONNECT
    without the v5 `{"sid"}` payload, CONNECT_ERROR as the bare message string."""
    pkt = sio.Packet(encoded_packet=message)
    namespace = "" if pkt.namespace in (None, "/") else f"{pkt.namespace},"
    if pkt.packet_type == sio.CONNECT:
        return f"0{namespace}"
    data = pkt.data
    text = data.get("message", "") if isinstance(data, dict) else data
    return f"4{namespace}{sio.Packet.json.dumps(str(text))}"


def _peer(environ: Mapping[str, Any]) -> str:
    client = environ.get("asgi.scope", {}).get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


class V3Socket(LeanSocket):
    """One Engine.IO v3 connection; python-engineio's transport code does the rest."""

    def __init__(self, server: Any, sid: str, environ: Mapping[str, Any]) -> None:
        super().__init__(server, sid)
        self.peer = _peer(environ)
        self.last_seen = time.monotonic()

    async def send(self, pkt: Any) -> None:
        if pkt.packet_type == eio.MESSAGE and isinstance(pkt.data, str) and pkt.data[:1] in ("0", "4"):
            message = to_protocol_v4(pkt.data)
            if message.startswith("4"):
                log.warning("refused a legacy Socket.IO (EIO=3) connection from %s: %s", self.peer, message[1:])
            pkt = eio.Packet(eio.MESSAGE, message)
        await super().send(pkt)

    async def receive(self, pkt: Any) -> None:
        self.last_seen = time.monotonic()  # any packet shows the client is alive (as engine.io 3 does)
        if pkt.packet_type == eio.PING:
            await self.send(eio.Packet(eio.PONG, pkt.data))
        elif pkt.packet_type == eio.PONG:
            return  # v3 servers do not ping: a stray pong must not start v4 pings
        elif pkt.packet_type == eio.MESSAGE and isinstance(pkt.data, bytes) and self.upgraded:
            # a v3 binary WebSocket frame starts with its packet type (base64 polling packets do not)
            await super().receive(eio.Packet(eio.MESSAGE, pkt.data[1:]))
        elif pkt.packet_type == eio.MESSAGE and _connects_default(pkt.data):
            return  # already connected to "/" implicitly at the open
        else:
            await super().receive(pkt)

    def silence_bound(self) -> float:
        return float(self.server.ping_interval + self.server.ping_timeout)

    async def check_ping_timeout(self) -> bool:
        if self.closed:
            raise exceptions.SocketIsClosedError()
        silent = time.monotonic() - self.last_seen
        if silent > self.silence_bound():
            log.info("legacy Socket.IO client %s sent no ping for %.0f s: closing", self.peer, silent)
            await self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
            return False
        return True

    def watch_silence(self) -> None:
        """v3 clients ping the server: the heartbeat checks that they still do."""
        self.server.heartbeat.at(self.last_seen + self.silence_bound(), self._still_pinging)

    async def _still_pinging(self) -> None:
        if self.closed or self.closing:
            self.server.forget(self)
        elif await self.check_ping_timeout():
            self.watch_silence()  # heard from within the bound: look again when it next runs out
        else:
            self.timed_out()

    async def handle_get_request(self, environ: Mapping[str, Any]) -> Any:
        answer = await super().handle_get_request(environ)
        return payload_response(answer) if isinstance(answer, list) else answer

    async def handle_post_request(self, environ: Mapping[str, Any]) -> None:
        length = int(environ.get("CONTENT_LENGTH", "0"))
        if length > self.server.max_http_buffer_size:
            raise exceptions.ContentTooLongError()
        body = await environ["wsgi.input"].read(length)
        try:
            packets = decode_payload(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:  # binascii.Error is a ValueError
            log.info("legacy Socket.IO client %s sent a bad payload: %s", self.peer, exc)
            raise exceptions.EngineIOError() from exc
        for pkt in packets:
            await self.receive(pkt)


def _connects_default(data: Any) -> bool:
    if not isinstance(data, str) or not data.startswith("0"):
        return False
    return sio.Packet(encoded_packet=data).namespace in (None, "/")


def payload_response(packets: list[Any]) -> dict[str, Any]:
    return {"status": "200 OK", "headers": [("Content-Type", "text/plain; charset=UTF-8")],
            "response": encode_payload(packets).encode("utf-8")}


# --- the Engine.IO server ---------------------------------------------------------------

def _refusal(error: StoreError, status: str) -> dict[str, Any]:
    return {"status": status, "headers": [("Content-Type", "application/json")],
            "response": json.dumps(error.body()).encode()}


class LegacyEngineServer(EngineServer):
    """python-engineio's server, plus new `EIO=3` sessions and a log line for other versions; its
    refusals (an origin not allowed, an unknown session or transport, a method) answered with the
    error body of API.md section 2, as every other error of the server, not as text."""

    def _bad_request(self, message: Any = None) -> dict[str, Any]:
        return _refusal(BadRequest(message if isinstance(message, str) else None), "400 BAD REQUEST")

    def _method_not_found(self) -> dict[str, Any]:
        return _refusal(MethodNotAllowed(), "405 METHOD NOT ALLOWED")

    async def handle_request(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "sid" not in query:
            version = query.get("EIO", [""])[0]
            if version == "3":
                return await self._open_v3(query, scope, receive, send)
            if version != "4":
                log.warning("refused a Socket.IO connection from %s: unsupported protocol version EIO=%r "
                            "(EIO=3 and EIO=4 are served)", _peer({"asgi.scope": scope}), version)
        return await super().handle_request(scope, receive, send)

    async def _open_v3(self, query: dict[str, list[str]], scope: dict[str, Any], receive: Any, send: Any) -> Any:
        environ = await self._async["translate_request"](scope, receive, send)
        if not environ:
            return None  # the client went away before its request arrived
        refusal = self._v3_refusal(query, environ)
        if refusal is not None:
            log.warning("refused a legacy Socket.IO (EIO=3) connection from %s: %s", _peer(environ), refusal)
            return await self._make_response(self._bad_request(refusal), environ)
        if environ["REQUEST_METHOD"] == "OPTIONS":
            return await self._make_response(self._ok(), environ)
        answer = await self._connect_v3(environ, query.get("transport", ["polling"])[0])
        return await self._make_response(answer, environ) if isinstance(answer, dict) else answer

    def _v3_refusal(self, query: dict[str, list[str]], environ: Mapping[str, Any]) -> str | None:
        """Why a new v3 session cannot open, or None (the same checks python-engineio makes)."""
        origin = environ.get("HTTP_ORIGIN")
        if origin and self.cors_allowed_origins != []:
            allowed = self._cors_allowed_origins(environ)
            if allowed is not None and origin not in allowed:
                return f"origin {origin} is not allowed"
        transport = query.get("transport", ["polling"])[0]
        if transport not in self.transports:
            return f"unknown transport {transport!r}"
        if "j" in query:
            return "JSONP polling is not supported"
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "OPTIONS"):
            return f"{method} without a session"
        upgrade = environ.get("HTTP_UPGRADE", "").lower()
        if transport == "websocket" and upgrade != "websocket":
            return "transport=websocket without a WebSocket upgrade"
        return None

    async def _connect_v3(self, environ: dict[str, Any], transport: str) -> Any:
        self.start_heartbeat()
        sid = self.generate_id()
        sock = V3Socket(self, sid, environ)
        self.sockets[sid] = sock
        sock.watch_silence()
        await sock.send(eio.Packet(eio.OPEN, {
            "sid": sid, "upgrades": self._upgrades(sid, transport),
            "pingInterval": int(self.ping_interval * 1000), "pingTimeout": int(self.ping_timeout * 1000),
        }))
        await self._trigger_event("connect", sid, environ, run_async=False)
        # Socket.IO protocol v4: the client is in the default namespace without asking.
        await self._trigger_event("message", sid, "0", run_async=False)
        if transport == "websocket":
            answer = await sock.handle_get_request(environ)
            if sock.closed:
                self.sockets.pop(sid, None)
            return answer
        sock.connected = True
        try:
            return payload_response(await sock.poll())
        except exceptions.QueueEmpty:
            return self._bad_request()


class PacketJSON:
    """The JSON module of both libraries' packets: a client's JSON is parsed without recursion and
    refused (ValueError) past MAX_DEPTH levels; Python's `json` recursed into a RecursionError."""

    dumps = staticmethod(json.dumps)
    loads = staticmethod(loads_bounded)


class LegacyAsyncServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer over `LegacyEngineServer`: one server for both protocols,
    with packets parsed by PacketJSON."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, json=PacketJSON, **kwargs)

    def _engineio_server_class(self) -> type[LegacyEngineServer]:
        return LegacyEngineServer

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        """An event is an array that starts with its name. Anything else is answered with a 400 when
        it asks for an ack (python-socketio failed on it with an exception logged per packet)."""
        if isinstance(data, list) and data and isinstance(data[0], str):
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        log.info("Socket.IO client %s sent an event without a name", eio_sid)
        if id is not None:
            refused = BadRequest("An event is an array whose first element is its name").body()
            await self._send_packet(eio_sid, self.packet_class(sio.ACK, namespace=namespace or "/", id=id,
                                                               data=[refused]))

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """A packet that cannot be decoded ends the connection with one line of log (python-engineio
        would log a traceback for each, as many as a client cares to send)."""
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, RecursionError) as exc:
            log.warning("Socket.IO client %s sent a malformed packet (%s): disconnected", eio_sid, exc)
            socket = self.eio.sockets.get(eio_sid)
            if socket is not None:
                await close_now(socket)
