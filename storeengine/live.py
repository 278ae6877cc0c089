"""Live delivery from the change feed: one tailer per store with local listeners.

Each process tails the feed (in the database) for the stores its own sockets and SSE streams
follow, and hands every change, in seq order, to its local listeners. Writes of this process
wake the tailer at once (with the change in hand, so no read is needed); writes of other
processes wake it through a Redis message when STORE_SOCKETIO_QUEUE is set, else a short
poll finds them. Because every process reads the one feed in seq order, events of one store
reach every socket in seq order, whichever process wrote them; emitting from the write path
could not promise that (two processes' emits race through Redis) nor survive a lost message.

Socket.IO fan-out stays room-based: an ordinary change is one emit to the rooms of the
entity; only when the access fields changed are the sockets of the rooms before and after
compared (both: update, after only: enter, before only: leave). No database read per socket.

A reader that resumes (`since`) first registers a buffer with the tailer, then replays from
the feed until caught up, then releases the buffer, dropping what the replay already sent:
no gap (the buffer holds everything the tailer handles after registration, the replay
everything before) and no duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import socketio

from storeengine import acl
from storeengine.acl import Principal
from storeengine.errors import BadRequest, StoreError
from storeengine.feed import PAGE, Doc, Feed, Page, access_of, cursor, parse_cursor, view
from storeengine.jsonio import dumps, to_json_form
from storeengine.schemas import Registry, StoreSchema
from storeengine.sendqueue import BoundedSendQueue

log = logging.getLogger("storeengine.live")
CHANNEL = "storeengine-feed"
# Larger pages for replays: fewer round trips for a subscriber resuming far back.
REPLAY_PAGE = 10000


class Follower:
    """Changes the tailer handled since this reader registered, waiting to be taken."""

    def __init__(self) -> None:
        self.buffer: deque[Doc] = deque()
        self.arrived = asyncio.Event()

    def push(self, record: Doc) -> None:
        self.buffer.append(record)
        self.arrived.set()


class Stream:
    """One reader's changes after a cursor: the backlog from the feed, then its buffer."""

    def __init__(self, hub: LiveHub, tailer: Tailer, follower: Follower, first: Page, since: int) -> None:
        self.hub, self.tailer, self.follower = hub, tailer, follower
        self.page: Page | None = first
        self.position = since

    async def batch(self) -> list[Doc]:
        """The next changes in seq order; [] when the reader has caught up (buffer empty)."""
        if self.page is not None:
            page = self.page
            self.position = page.position
            self.page = await self.hub.feed.read(self.tailer.store, page.position, REPLAY_PAGE) if page.more else None
            return page.records
        out = []
        while self.follower.buffer:
            record = self.follower.buffer.popleft()
            if record["seq"] > self.position:
                out.append(record)
                self.position = record["seq"]
        self.follower.arrived.clear()
        return out

    def close(self) -> None:
        self.tailer.followers.discard(self.follower)


class Tailer:
    def __init__(self, hub: LiveHub, store: StoreSchema) -> None:
        self.hub, self.store = hub, store
        self.position = 0
        self.ready = asyncio.Event()
        self.wake = asyncio.Event()
        self.look = True  # read the feed on the next wake (not only this process's own changes)
        self.offered: dict[int, Doc] = {}
        self.followers: set[Follower] = set()
        self.sockets: set[str] = set()  # subscribed local sockets (joined rooms)
        self.catching_up: dict[str, Follower] = {}  # sockets still replaying: skipped by room emits
        self.task = asyncio.create_task(self.run())

    def idle(self) -> bool:
        return not (self.followers or self.sockets or self.catching_up)

    async def run(self) -> None:
        while not self.ready.is_set():
            try:
                self.position = await self.hub.feed.watermark(self.store)
                self.ready.set()
            except StoreError:
                await asyncio.sleep(self.hub.poll_seconds)
        while True:
            try:  # asyncio.timeout: unlike 3.11's wait_for, it never drops a cancellation
                async with asyncio.timeout(self.hub.poll_seconds):
                    await self.wake.wait()
            except TimeoutError:
                self.look = True
            self.wake.clear()
            if self.idle():  # checked with no await before the removal: a new listener finds it gone
                break
            try:
                await self._advance()
            except Exception:  # a dead database or a broken socket must not end the tailer
                log.exception("change tailer of %s failed; retrying", self.store.name)
        if self.hub.tailers.get(self.store.name) is self:
            del self.hub.tailers[self.store.name]

    async def _advance(self) -> None:
        while True:
            self.store = self.hub.registry_store(self.store)
            while (record := self.offered.pop(self.position + 1, None)) is not None:
                await self._deliver(record)
            self.offered = {s: r for s, r in self.offered.items() if s > self.position}
            if not (self.look or self.offered):
                return  # only this process's changes, all delivered: no read needed
            self.look = False
            page = await self.hub.feed.read(self.store, self.position, PAGE)
            for record in page.records:
                await self._deliver(record)
            self.position = max(self.position, page.position)
            if not page.more:
                return

    async def _deliver(self, record: Doc) -> None:
        self.position = record["seq"]
        for follower in list(self.followers) + list(self.catching_up.values()):
            follower.push(record)
        if self.sockets:
            await self.hub.fan_out(self.store, record, list(self.catching_up))


class LiveHub:
    def __init__(self, feed: Feed, registry: Registry, sio: socketio.AsyncServer, *, queue_url: str | None,
                 poll_seconds: float | None = None, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.feed, self.registry, self.sio = feed, registry, sio
        # Before each fan-out: sockets first follow revocations and room changes made earlier.
        self.settle = settle
        self.queue_url = queue_url
        # Polling finds other processes' changes; an embedded database owned by one process has no
        # other process, so there it only polls as a safety net (its workers, sharing it, poll).
        self.poll_seconds = poll_seconds or (30.0 if feed.storage.embedded else 1.0 if queue_url else 0.25)
        self.tailers: dict[str, Tailer] = {}
        self._redis: aioredis.Redis | None = aioredis.Redis.from_url(queue_url) if queue_url else None
        self._channel = f"{CHANNEL}:{feed.storage.database_name}"
        self._pokes: set[asyncio.Task[Any]] = set()
        feed.listeners.append(self.on_change)

    def registry_store(self, store: StoreSchema) -> StoreSchema:
        """The store's current schema (read rules may have changed), or the last one known."""
        try:
            return self.registry.get(store.name)
        except StoreError:
            return store

    def tailer(self, store: StoreSchema) -> Tailer:
        found = self.tailers.get(store.name)
        if found is None or found.task.done():
            found = self.tailers[store.name] = Tailer(self, store)
        return found

    # --- changes written here and elsewhere ------------------------------------------------

    def on_change(self, store: str, record: Doc) -> None:
        tailer = self.tailers.get(store)
        if tailer is not None:
            tailer.offered[record["seq"]] = record
            tailer.wake.set()
        if self._redis is not None:
            task = asyncio.create_task(self._poke(store))
            self._pokes.add(task)
            task.add_done_callback(self._pokes.discard)

    async def _poke(self, store: str) -> None:
        assert self._redis is not None
        try:
            await self._redis.publish(self._channel, store)
        except Exception:  # the poll still finds the change
            log.warning("could not poke other processes through Redis")

    async def run(self) -> None:
        """Wake tailers on other processes' changes (Redis), until cancelled."""
        if self._redis is None:
            return
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message["type"] == "message" and (t := self.tailers.get(message["data"].decode())):
                            t.look = True
                            t.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Redis subscription lost; polling until it is back")
                await asyncio.sleep(self.poll_seconds)

    # --- readers ---------------------------------------------------------------------------

    async def open(self, store: StoreSchema, since: int | None) -> Stream:
        """A stream after `since` (None: the oldest retained). 410 / 400 before anything is sent."""
        tailer = self.tailer(store)
        follower = Follower()
        tailer.followers.add(follower)  # registered at once, so the tailer does not stop meanwhile
        try:
            await tailer.ready.wait()  # its starting point is then behind anything the replay reads
            first = await self.feed.read(store, since, REPLAY_PAGE)
        except BaseException:
            tailer.followers.discard(follower)
            raise
        return Stream(self, tailer, follower, first, since or 0)

    async def subscribe(self, sid: str, store: StoreSchema, since_text: Any,
                        join: Callable[[], Awaitable[None]], principal: Callable[[], Awaitable[Principal]]) -> None:
        """Join the rooms; with `since`, replay first (in a task) and go live without a gap."""
        if since_text is not None and not isinstance(since_text, str):
            raise BadRequest("since must be a cursor string")
        since = None if since_text is None else parse_cursor(store.name, since_text)
        tailer = self.tailer(store)
        if since is None:
            tailer.sockets.add(sid)
            await join()
            await tailer.ready.wait()  # writes after the ack are past the tailer's starting point
            return
        stream = await self.open(store, since)
        stream.close()  # a socket's buffer lives in `catching_up`, skipped by room emits
        tailer.catching_up[sid] = stream.follower
        tailer.sockets.add(sid)
        await join()
        task = asyncio.create_task(self._replay(sid, tailer, stream, principal))
        self._pokes.add(task)
        task.add_done_callback(self._pokes.discard)

    async def _replay(self, sid: str, tailer: Tailer, stream: Stream,
                      principal: Callable[[], Awaitable[Principal]]) -> None:
        try:
            while True:
                batch = await stream.batch()
                if not batch and not stream.follower.buffer:
                    return  # caught up: from here on the room emits reach this socket
                who = await principal()
                for record in batch:
                    if (shown := view(who, tailer.store, record)) is not None:
                        shown.pop("by")  # a socket event has no `by` (API.md 8)
                        await self._send(sid, shown)
        except Exception:
            log.exception("replay to %s failed", sid)
        finally:
            tailer.catching_up.pop(sid, None)

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
        """A socket left a store (None: every store)."""
        for name, tailer in list(self.tailers.items()):
            if store is None or name == store:
                tailer.sockets.discard(sid)
                tailer.catching_up.pop(sid, None)

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
