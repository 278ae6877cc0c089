"""Socket.IO delivery of the feed's tail: subscriptions (with `since` replays) and room fan-out.

Fan-out stays room-based: an ordinary change is one emit to the rooms of the entity; only when
the access fields changed are the sockets of the rooms before and after compared (both: update,
after only: enter, before only: leave). No database read per socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from storeengine.core.errors import BadRequest
from storeengine.core.jsonio import dumps, to_json_form
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.schema import StoreSchema
from storeengine.realtime.transport.sendqueue import BoundedSendQueue, close_now
from storeengine.store.feed import access_of, cursor, parse_cursor, view
from storeengine.store.tail import FeedTail, Follower, Overflowed, Stream

log = logging.getLogger(__name__)
YIELD_EVERY = 100  # changes replayed between two yields to other clients


class _Reader:
    """A replaying socket's principal, as of its last check: which live changes to buffer for it."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def accepts(self, store: StoreSchema, record: Doc) -> bool:
        return view(self.principal, store, record) is not None


class SocketDelivery:
    """The tail's Socket.IO consumer: per store, the local sockets subscribed and those replaying."""

    def __init__(self, tail: FeedTail, sio: socketio.AsyncServer,
                 settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.tail, self.sio = tail, sio
        # Before each fan-out: sockets first follow revocations and room changes made earlier.
        self.settle = settle
        self.sockets: dict[str, set[str]] = {}  # store -> subscribed local sockets (joined rooms)
        self.catching_up: dict[str, dict[str, Follower]] = {}  # store -> sockets replaying: skipped by emits
        self._replays: dict[tuple[str, str], asyncio.Task[None]] = {}  # (socket, store) -> its replay
        self._locks: dict[str, asyncio.Lock] = {}  # one subscribe at a time per socket
        self._closing: set[asyncio.Future[None]] = set()  # connections being cut off
        tail.consumers.append(self)

    def active(self, store: str) -> bool:
        return bool(self.sockets.get(store) or self.catching_up.get(store))

    async def deliver(self, store: StoreSchema, record: Doc) -> None:
        if self.sockets.get(store.name):
            await self.fan_out(store, record, list(self.catching_up.get(store.name, ())))

    async def subscribe(self, sid: str, store: StoreSchema, since_text: Any,
                        join: Callable[[], Awaitable[None]], principal: Callable[[], Awaitable[Principal]]) -> None:
        """Join the rooms; with `since`, replay first (in a task) and go live without a gap.
        One socket's subscribes are handled one at a time, and a new one replaces the store's replay."""
        if since_text is not None and not isinstance(since_text, str):
            raise BadRequest("since must be a cursor string")
        since = None if since_text is None else parse_cursor(store.name, since_text)
        lock = self._locks.setdefault(sid, asyncio.Lock())
        async with lock:
            if not self.sio.manager.is_connected(sid, "/"):
                return  # it left while waiting its turn
            self._stop_replay(sid, store.name)
            tailer = self.tail.tailer(store)
            if since is None:
                self.sockets.setdefault(store.name, set()).add(sid)
                await join()
                await tailer.ready.wait()  # writes after the ack are past the tailer's starting point
                return
            # Skipped by room emits from here on: what they would send now, the replay sends (it reads
            # the feed after its follower is registered), so nothing comes twice.
            replaying = self.catching_up.setdefault(store.name, {})
            replaying[sid] = Follower(lambda _store, _record: False)
            try:
                reader = _Reader(await principal())
                stream = await self.tail.open(store, since, reader.accepts,
                                              lambda: self._fell_behind(sid, store.name))
            except BaseException:
                replaying.pop(sid, None)
                raise
            replaying[sid] = stream.follower
            self.sockets.setdefault(store.name, set()).add(sid)
            await join()
            task = asyncio.create_task(self._replay(sid, stream, reader, principal))
            self._replays[sid, store.name] = task

            def finished(_: asyncio.Task[None]) -> None:
                if self._replays.get((sid, store.name)) is task:
                    del self._replays[sid, store.name]

            task.add_done_callback(finished)

    def _fell_behind(self, sid: str, store: str) -> None:
        """Live changes piled up past the bound while this socket's replay waited on its client:
        end the replay and close the connection (as the send queue does); the client reconnects
        and subscribes again from its last seq when it reads again."""
        log.warning("Socket.IO client %s fell too far behind its replay of %s: disconnected", sid, store)
        self._stop_replay(sid, store)
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        socket = self.sio.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if socket is not None:
            closing = asyncio.ensure_future(close_now(socket))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    def _stop_replay(self, sid: str, store: str) -> None:
        task = self._replays.pop((sid, store), None)
        if task is not None:
            task.cancel()  # its `finally` closes its stream
        self.catching_up.get(store, {}).pop(sid, None)

    async def _replay(self, sid: str, stream: Stream, reader: _Reader,
                      principal: Callable[[], Awaitable[Principal]]) -> None:
        sent = 0
        try:
            while True:
                try:
                    batch = await stream.batch()
                except Overflowed:  # (the overflow has cut this socket off already: _fell_behind)
                    return
                if not batch and not stream.follower.buffer:
                    return  # caught up: from here on the room emits reach this socket
                reader.principal = await principal()
                for record in batch:
                    if (shown := view(reader.principal, stream.tailer.store, record)) is not None:
                        shown.pop("by")  # a socket event has no `by` (API.md 8)
                        await self._send(sid, shown)
                        sent += 1
                        if sent % YIELD_EVERY == 0:
                            await asyncio.sleep(0)  # other clients get their turn during a long replay
        except Exception:  # (a cancellation, when a new subscribe replaces this replay, passes through)
            log.exception("replay to %s failed", sid)
        finally:
            stream.close()
            followers = self.catching_up.get(stream.tailer.store.name, {})
            if followers.get(sid) is stream.follower:
                followers.pop(sid)

    async def _send(self, sid: str, change: Doc) -> None:
        """A change to one socket: encoded once and handed to its Engine.IO socket, in order.
        (`sio.emit` spawns and awaits a task per message, most of a 10,000-change replay.)"""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None or self.sio.packet_class is not socketio.packet.Packet:  # gone, or another serializer
            await self.sio.emit("change", _socket_form(change), to=sid, ignore_queue=True)
            return
        socket = self.sio.eio.sockets.get(eio_sid)
        if socket is not None and isinstance(socket.queue, BoundedSendQueue):
            await socket.queue.room()  # a long replay paces itself to the client's reading
        # A Socket.IO EVENT packet of the default namespace is "2" + its JSON array; orjson
        # encodes ObjectIds and dates on the way (no JSON round trip as for room emits).
        await self.sio.eio.send(eio_sid, "2" + dumps(["change", change]).decode())

    def forget(self, sid: str, store: str | None = None) -> None:
        """A socket left a store (None: every store, and the socket is gone)."""
        for name in [store] if store is not None else list({*self.sockets, *self.catching_up}):
            self.sockets.get(name, set()).discard(sid)
            self._stop_replay(sid, name)
        if store is None:
            self._locks.pop(sid, None)

    # --- Socket.IO fan-out -----------------------------------------------------------------

    async def fan_out(self, store: StoreSchema, record: Doc, skip: list[str]) -> None:
        if self.settle is not None:
            await self.settle()
        rules, op = store.acl["read"], record["op"]
        before, after = record.get("before"), (None if op == "delete" else record["entity"])
        if before is None or after is None or access_of(after) == before:
            rooms = acl.rooms_for_entity(store.name, rules, after if after is not None else before)  # type: ignore[arg-type]
            await self._emit(store, record, op, rooms, skip)
            return
        was = self._local_sockets(acl.rooms_for_entity(store.name, rules, before))
        now = self._local_sockets(acl.rooms_for_entity(store.name, rules, after))
        for shown, sids in (("update", was & now), ("enter", now - was), ("leave", was - now)):
            if sids:
                await self._emit(store, record, shown, list(sids), skip)

    def _local_sockets(self, rooms: list[str]) -> set[str]:
        return {sid for sid, _ in self.sio.manager.get_participants("/", rooms)}

    async def _emit(self, store: StoreSchema, record: Doc, op: str, to: list[str], skip: list[str]) -> None:
        payload = {"seq": cursor(store.name, record["seq"]), "store": store.name, "op": op, "_id": record["id"],
                   "entity": None if op == "leave" else record["entity"], "at": record["at"]}
        await self.sio.emit("change", _socket_form(payload), to=to, skip_sid=skip, ignore_queue=True)


def _socket_form(change: Doc) -> Doc:
    form: Doc = to_json_form(change)
    return form
