"""Socket.IO fan-out with less garbage per event, and the collector policy for many sockets.

python-socketio already encodes an event once for all recipients, but then creates one
asyncio task per recipient and waits on the set. `BatchManager` sends the shared packet to
each recipient from one coroutine instead (each send only queues it on that socket's writer),
yielding to the loop every `BATCH` recipients so a large room never stalls it. Events that
need acks keep python-socketio's path (each recipient needs its own ack id).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

log = logging.getLogger(__name__)
BATCH = 500  # recipients between yields to the loop


class BatchManager(socketio.AsyncManager):  # type: ignore[misc]
    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        room = to or room
        if callback is not None or namespace not in self.rooms:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)
            return
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        encoded = self.server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        packets = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in (encoded if isinstance(encoded, list)
                                                                      else [encoded])]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        send = self.server._send_eio_packet
        for n, (sid, eio_sid) in enumerate(self.get_participants(namespace, room), 1):
            if sid not in skip:
                for pkt in packets:
                    try:
                        await send(eio_sid, pkt)
                    except Exception:  # a socket closing under us must not cost the others their event
                        log.debug("could not queue an event for %s", sid, exc_info=True)
            if n % BATCH == 0:
                await asyncio.sleep(0)


    async def close(self) -> None:
        """Stop what the manager runs for its server (a server closed before its process ends)."""


class BatchRedisManager(socketio.AsyncRedisManager, BatchManager):  # type: ignore[misc]
    """The Redis manager, delivering locally through BatchManager.emit (next in the MRO after
    AsyncPubSubManager, whose `_handle_emit` calls `super().emit`)."""

    async def close(self) -> None:
        listener = getattr(self, "thread", None)  # python-socketio's listening task
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        for connection in (self.pubsub, self.redis):
            if connection is not None:
                with contextlib.suppress(Exception):  # a broken connection is as good as closed
                    await connection.aclose()


def manager(queue_url: str | None, channel: str = "socketio") -> socketio.AsyncManager:
    return BatchRedisManager(queue_url, channel=channel) if queue_url else BatchManager()


# Young collections every 10,000 net allocations instead of 700: a fan-out to thousands of
# sockets allocates in bursts, and fewer, larger young passes cost less in total.
GC_THRESHOLDS = (10_000, 10, 10)
# ...and at least this often. The net count misses long-lived churn: each socket's waiting
# reader is a new chain of objects per message, and the old chain's death in an older
# generation cancels the new one in the count. At 10,000 sockets the young generation then
# grew to 60,000+ objects between passes (passes of 30 ms, and 200 ms stalls).
YOUNG_EVERY = 0.5
FREEZE_AFTER_QUIET = 1.0  # seconds without a new connection that end a burst
FREEZE_AT_LEAST_EVERY = 10.0  # a steady trickle of connections is frozen this often anyway


class GcPolicy:
    """Move the objects of each connection burst out of the collector's sight once it ends.

    Full passes over long-lived connection state (sockets, sessions, rooms) otherwise stall
    the loop for 100+ ms at thousands of sockets. The cost: cyclic garbage left by frozen
    sockets that later disconnect is not reclaimed (measured by bench/realtime_capacity.py).
    """

    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None
        self._young: asyncio.TimerHandle | None = None
        self._first = 0.0  # loop time of the first connection since the last freeze
        self.freezes = 0

    def install(self) -> None:
        gc.set_threshold(*GC_THRESHOLDS)
        if self._young is None:
            self._collect_young()

    def uninstall(self) -> None:
        for timer in (self._young, self._timer):
            if timer is not None:
                timer.cancel()
        self._young = self._timer = None

    def _collect_young(self) -> None:
        gc.collect(0)
        self._young = asyncio.get_running_loop().call_later(YOUNG_EVERY, self._collect_young)

    def connected(self) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is None:
            self._first = loop.time()
        else:
            self._timer.cancel()
        delay = min(FREEZE_AFTER_QUIET, max(0.0, self._first + FREEZE_AT_LEAST_EVERY - loop.time()))
        self._timer = loop.call_later(delay, self._freeze)

    def _freeze(self) -> None:
        self._timer = None
        gc.collect(1)  # the burst's young garbage is not worth keeping for good; a young pass is cheap
        gc.freeze()
        self.freezes += 1
