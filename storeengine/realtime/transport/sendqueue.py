"""A bound on each Socket.IO connection's outgoing queue.

python-engineio gives every connection an unbounded asyncio.Queue of packets to send; a
client that stops reading (a stalled tab, a dead network path with the TCP window shut)
lets it grow with every event, without limit. Blocking the emitter instead would stall
every other subscriber, so a connection whose queue passes the bound is disconnected: its
queue is emptied, the end-of-stream marker makes its writer stop, and the socket is closed
(the client's Socket.IO library reconnects and resubscribes when it reads again)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
MAX_PACKETS = 1000
MAX_BYTES = 4 * 1024 * 1024


def _size(pkt: Any) -> int:
    data = getattr(pkt, "data", None)
    return len(data) if isinstance(data, (str, bytes)) else 64


class BoundedSendQueue(asyncio.Queue[Any]):
    """Engine.IO's per-connection queue; past `max_packets` or `max_bytes` waiting, it drops
    what it holds, keeps only the end marker (None) and calls `on_overflow(self)` once."""

    def __init__(self, on_overflow: Callable[[BoundedSendQueue], None], max_packets: int = MAX_PACKETS,
                 max_bytes: int = MAX_BYTES) -> None:
        super().__init__()
        self._on_overflow = on_overflow
        self._max_packets, self._max_bytes = max_packets, max_bytes
        self.queued_bytes = 0
        self.overflowed = False
        self._taken = asyncio.Event()  # set whenever the writer takes a packet (see `room`)

    def put_nowait(self, item: Any) -> None:
        if self.overflowed:
            return  # the connection is being closed: nothing more is sent
        size = _size(item) if item is not None else 0
        if item is not None and (self.qsize() >= self._max_packets or self.queued_bytes + size > self._max_bytes):
            self._overflow()
            return
        self.queued_bytes += size
        super().put_nowait(item)

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        if item is not None:
            self.queued_bytes -= _size(item)
        self._taken.set()
        return item

    async def room(self) -> None:
        """Wait until the queue is at most half full. A sender of many packets to one connection
        (a `since` replay) waits here instead of overflowing the bound of a client that reads."""
        while not self.overflowed and (self.qsize() >= self._max_packets // 2
                                       or self.queued_bytes >= self._max_bytes // 2):
            self._taken.clear()
            await self._taken.wait()

    def _overflow(self) -> None:
        self.overflowed = True
        while not self.empty():  # keep join() balanced: each dropped packet is "done"
            super().get_nowait()
            self.task_done()
        self.queued_bytes = 0
        super().put_nowait(None)  # the writer (websocket) or poll (long-polling) ends on it
        self._on_overflow(self)


def bound_send_queues(eio: Any, max_packets: int = MAX_PACKETS, max_bytes: int = MAX_BYTES) -> None:
    """Give each new connection of the engineio server `eio` a bounded queue."""

    def on_overflow(queue: BoundedSendQueue) -> None:
        # A socket handed to another server (handoff.py) is in that server's table.
        tables = [eio.sockets, *(server.sockets for server in set(getattr(eio, "directory", {}).values()))]
        for sid, socket in [item for table in tables for item in list(table.items())]:
            if socket.queue is queue:
                log.warning("Socket.IO client %s is not reading: disconnected after %d queued packets or %d bytes",
                            sid, max_packets, max_bytes)
                task = asyncio.ensure_future(socket.close(wait=False, abort=True))
                _closing.add(task)
                task.add_done_callback(_closing.discard)

    eio.create_queue = lambda *args, **kwargs: BoundedSendQueue(on_overflow, max_packets, max_bytes)


_closing: set[asyncio.Future[Any]] = set()  # keeps the close tasks alive until they finish


async def close_now(socket: Any) -> None:
    """End an Engine.IO connection at once (a client cut off): its writer stops at the end marker
    and closes the transport; nothing more is sent. The client reconnects when it reads again."""
    socket.queue.put_nowait(None)
    await socket.close(wait=False, abort=True)
