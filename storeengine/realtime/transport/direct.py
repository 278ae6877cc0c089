"""One event to one socket without python-socketio's per-message task: the packet is framed here.

`sio.emit(..., to=sid)` spawns and awaits a task per message, most of a 10,000-change replay's
cost. A Socket.IO EVENT packet of the default namespace is "2" + its JSON array, so the caller's
JSON (orjson, ObjectIds and dates already encoded) goes straight to the Engine.IO socket, after
waiting for room in a bounded send queue: a long replay paces itself to the client's reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import socketio

from storeengine.core.jsonio import dumps, to_json_form
from storeengine.realtime.transport.sendqueue import BoundedSendQueue


async def send_event(sio: socketio.AsyncServer, sid: str, event: str, data: Mapping[str, Any]) -> None:
    """`data` may hold ObjectIds and dates (encoded on the way). A socket that is gone, or a server
    with another serializer, gets an ordinary emit."""
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    if eio_sid is None or sio.packet_class is not socketio.packet.Packet:
        await sio.emit(event, to_json_form(dict(data)), to=sid, ignore_queue=True)
        return
    socket = sio.eio.sockets.get(eio_sid)
    if socket is not None and isinstance(socket.queue, BoundedSendQueue):
        await socket.queue.room()
    await sio.eio.send(eio_sid, "2" + dumps([event, data]).decode())
