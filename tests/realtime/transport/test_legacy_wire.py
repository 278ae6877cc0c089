"""Legacy Socket.IO at the wire (API.md section 8): the seed's raw Engine.IO v3 frames over
WebSocket and long-polling against a real server, and the v3 codec and socket on their own."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

import aiohttp
import pytest
from engineio import packet as eio

from storeengine.realtime.transport.legacy import (
    LegacyEngineServer,
    V3Socket,
    decode_payload,
    encode_payload,
    to_protocol_v4,
)
from tests.conftest import Server
from tests.realtime.transport.test_legacy import ORDER, WAIT, api_of, cookie, fast_ping_server, legacy_server

__all__ = ["fast_ping_server", "legacy_server"]  # module-scoped server fixtures of this module too

# --- the seed's raw frames ---------------------------------------------------------------

def ws_url(server: Server, eio_version: int = 3) -> str:
    return server.url.replace("http://", "ws://") + f"/socket.io/?EIO={eio_version}&transport=websocket"


async def frame(ws: aiohttp.ClientWebSocketResponse) -> str:
    message = await ws.receive(timeout=WAIT)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return str(message.data)


async def test_the_seed_s_raw_websocket_frames(legacy_server: Server) -> None:
    async with api_of(legacy_server) as api, aiohttp.ClientSession() as session:
        _, sid = await api.user()
        async with session.ws_connect(ws_url(legacy_server), headers=cookie(sid)) as ws:
            opened = await frame(ws)
            assert opened.startswith("0{"), opened
            handshake = json.loads(opened[1:])
            assert (handshake["pingInterval"], handshake["pingTimeout"], handshake["upgrades"]) == (25000, 60000, [])
            assert await frame(ws) == "40"  # implicitly in the default namespace: no payload
            await ws.send_str("2")
            assert await frame(ws) == "3"
            await ws.send_str('421["subscribe",{"store":"orders"}]')
            assert await frame(ws) == '431[{"success":true}]'
            created = await api.call("POST", "/api/v1/orders", cookie(sid), ORDER, status=201)
            change = await frame(ws)
            assert change.startswith('42["change",'), change
            name, data = json.loads(change[2:])
            assert (name, data["op"], data["entity"]) == ("change", "create", created)


async def test_a_silent_raw_client_is_closed_after_interval_plus_timeout(fast_ping_server: Server) -> None:
    async with api_of(fast_ping_server) as api, aiohttp.ClientSession() as session:
        _, sid = await api.user()
        async with session.ws_connect(ws_url(fast_ping_server), headers=cookie(sid)) as ws:
            assert (await frame(ws)).startswith("0{")
            assert await frame(ws) == "40"
            start = time.monotonic()
            message = await ws.receive(timeout=15)  # never pings: 1 s + 2 s, checked every 2 s at most
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
            assert time.monotonic() - start >= 3 - 0.1  # not before the heartbeat ran out


async def test_v3_polling_payloads(legacy_server: Server) -> None:
    """`<length>:<packet>` framing in both directions; the server never pings a v3 client."""
    async with api_of(legacy_server) as api:
        _, sid = await api.user()
        url = "/socket.io/?EIO=3&transport=polling"
        r = await api.http.get(url, headers=cookie(sid))
        assert r.status_code == 200, r.text
        match = re.fullmatch(r"(\d+):(0\{.*\})2:40", r.text)
        assert match and int(match[1]) == len(match[2]), r.text
        session = json.loads(match[2][1:])["sid"]
        body = '1:2' + '36:421["subscribe",{"store":"nope-\U0001f984"}]'  # 35 characters, 36 UTF-16 units
        r = await api.http.post(f"{url}&sid={session}", content=body.encode(), headers=cookie(sid))
        assert r.status_code == 200, r.text
        answers = ""
        while "431" not in answers:  # the pong at once, the ack when its handler has run
            answers += (await api.http.get(f"{url}&sid={session}", headers=cookie(sid))).text
        match = re.fullmatch(r"1:3(\d+):(431.*)", answers)
        assert match and int(match[1]) == len(match[2]), answers
        assert json.loads(match[2][3:])[0]["code"] == "404"
        # A length past the end of the payload ends the session; the pending poll gets the CLOSE packet.
        poll = asyncio.create_task(api.http.get(f"{url}&sid={session}", headers=cookie(sid)))
        await asyncio.sleep(0.2)
        bad = '37:421["subscribe",{"store":"nope-\U0001f984"}]'
        r = await api.http.post(f"{url}&sid={session}", content=bad.encode(), headers=cookie(sid))
        assert r.status_code == 400, r.text
        assert (await poll).text == "1:1"


async def test_a_refusal_says_why_in_the_log(legacy_server: Server) -> None:
    async with api_of(legacy_server) as api:
        origin = f"http://evil-{uuid.uuid4().hex[:8]}.example"
        r = await api.http.get("/socket.io/?EIO=3&transport=polling", headers={"Origin": origin})
        assert r.status_code == 400
        r = await api.http.get("/socket.io/?EIO=3&transport=polling", headers={"Origin": legacy_server.url})
        assert r.status_code == 200  # its own origin is welcome
        r = await api.http.get("/socket.io/?EIO=2&transport=polling")
        assert r.status_code == 400
        assert (await api.http.get("/socket.io/?EIO=3&transport=polling&j=0")).status_code == 400
        assert (await api.http.get("/socket.io/?EIO=3&transport=websocket")).status_code == 400  # no upgrade
        before = legacy_server.output().count('"Unauthorized"')
        assert (await api.http.get("/socket.io/?EIO=3&transport=polling")).status_code == 200  # then 44"Unauthorized"
    log = legacy_server.output()
    assert log.count('"Unauthorized"') == before + 1
    assert "refused a legacy Socket.IO (EIO=3) connection from 127.0.0.1" in log
    assert f"origin {origin} is not allowed" in log
    assert "unsupported protocol version EIO='2'" in log
    assert "JSONP polling is not supported" in log
    assert "transport=websocket without a WebSocket upgrade" in log
    assert re.search(r'refused a legacy Socket\.IO \(EIO=3\) connection from [\d.:]+: "Unauthorized"', log)


# --- the v3 codec, without a server ------------------------------------------------------

def test_v3_payload_lengths_count_utf16_units_as_javascript_does() -> None:
    packets = [eio.Packet(eio.MESSAGE, '2["x","\U0001f984é"]'), eio.Packet(eio.PONG, "probe"), eio.Packet(eio.NOOP)]
    encoded = encode_payload(packets)
    assert encoded == '13:42["x","\U0001f984é"]6:3probe1:6'  # the unicorn is two UTF-16 units
    decoded = decode_payload(encoded)
    assert [(p.packet_type, p.data) for p in decoded] == [(eio.MESSAGE, '2["x","\U0001f984é"]'), (eio.PONG, "probe"),
                                                          (eio.NOOP, "")]
    assert encode_payload([]) == "0:"
    binary = decode_payload("6:b4AQI=")  # base64 MESSAGE: 'b', its type, the data
    assert (binary[0].packet_type, binary[0].data) == (eio.MESSAGE, b"\x01\x02")
    assert encode_payload(binary) == "6:b4AQI="


@pytest.mark.parametrize("body", ["", "42", ":42", "x:42", "3:42", "0:", "2:\U0001f984", "3:\U0001f984",
                                  "1:2" * 17, "6:b4@@@@", "1:b", "3:bxA"])
def test_malformed_v3_payloads_are_refused(body: str) -> None:
    if body == "":
        assert decode_payload(body) == []
        return
    with pytest.raises(ValueError):
        decode_payload(body)


@pytest.mark.parametrize(("v5", "v4"), [
    ('0{"sid":"abc"}', "0"),
    ('0/admin,{"sid":"abc"}', "0/admin,"),
    ('4{"message":"Unauthorized"}', '4"Unauthorized"'),
    ('4/admin,{"message":"Unable to connect"}', '4/admin,"Unable to connect"'),
    ('4{"message":"Unauthorized","data":{"why":1}}', '4"Unauthorized"'),
])
def test_server_packets_take_socket_io_protocol_v4_form(v5: str, v4: str) -> None:
    assert to_protocol_v4(v5) == v4


class FakeInput:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self, length: int) -> bytes:
        return self.body[:length]


async def test_a_v3_socket_pongs_and_unwraps_binary_packets_of_either_transport() -> None:
    server = LegacyEngineServer(async_mode="asgi", ping_interval=25, ping_timeout=60)
    messages: list[Any] = []
    server.on("message", lambda sid, data: messages.append(data))
    sock = V3Socket(server, "s1", {})
    await sock.receive(eio.Packet(encoded_packet="2probe"))
    await sock.receive(eio.Packet(encoded_packet="3"))  # a stray pong: ignored, no server ping scheduled
    assert [(p.packet_type, p.data) for p in [sock.queue.get_nowait()]] == [(eio.PONG, "probe")]
    assert sock.queue.empty()
    await sock.handle_post_request({"CONTENT_LENGTH": "8", "wsgi.input": FakeInput(b"6:b4YWJj")})  # polling
    sock.upgraded = True
    await sock.receive(eio.Packet(encoded_packet=b"\x04abc"))  # a WebSocket frame: type byte, then data
    await asyncio.sleep(0)  # message handlers run as tasks
    assert messages == [b"abc", b"abc"]
