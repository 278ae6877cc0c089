"""Tailing the change feed: one tailer per store, handing every change, in seq order, to local
readers (SSE streams, replays) and to the consumers that registered for the store.

Each process tails the feed (in the database) for the stores its readers follow. Writes of this
process wake the tailer at once (with the change in hand, so no read is needed); writes of other
processes wake it through a Redis message when STORE_SOCKETIO_QUEUE is set, else a short poll
finds them. Because every process reads the one feed in seq order, changes of one store reach
every reader in seq order, whichever process wrote them; emitting from the write path could not
promise that (two processes' emits race through Redis) nor survive a lost message.

A reader that resumes (`since`) first registers a buffer with the tailer, then replays from the
feed until caught up, then releases the buffer, dropping what the replay already sent: no gap
(the buffer holds everything the tailer handles after registration, the replay everything
before) and no duplicate. Knows nothing of Socket.IO or HTTP.

A reader's buffer (its `Follower`) holds only the changes the reader may see (asked before
buffering, so a reader who may read nothing pins nothing), and at most FOLLOWER_MAX_CHANGES of
them or FOLLOWER_MAX_BYTES: a reader that falls further behind (a client that stopped reading)
is ended rather than buffered for, and resumes from its last cursor when it reads again.
A replay holds one page of REPLAY_PAGE changes at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from storeengine.core.errors import StoreError
from storeengine.core.jsonio import dumps
from storeengine.core.pubsub import RedisChannel
from storeengine.core.types import Doc
from storeengine.model.schema import Registry, StoreSchema
from storeengine.store.feed import PAGE, Feed, Page

log = logging.getLogger(__name__)
CHANNEL = "storeengine-feed"
# A replay's page: what one replaying reader holds in memory at a time (it waits on its client).
REPLAY_PAGE = PAGE
# The bound on each reader's buffer of live changes (like the Socket.IO send queue's).
FOLLOWER_MAX_CHANGES = 1000
FOLLOWER_MAX_BYTES = 4 * 1024 * 1024
# Whether a reader may see a change (by its rights and the store's current rules): asked before buffering.
Accepts = Callable[[StoreSchema, Doc], bool]


class Consumer(Protocol):
    """A per-store consumer of the tail besides streams (the Socket.IO delivery)."""

    def active(self, store: str) -> bool:
        """Whether it still follows `store` (the tailer stops when nobody does)."""
        ...

    async def deliver(self, store: StoreSchema, record: Doc) -> None: ...


class Overflowed(Exception):
    """The reader fell more than its buffer's bound behind: it is ended and resumes later."""


class Follower:
    """Changes the tailer handled since this reader registered, waiting to be taken: only those
    `accepts` lets through, at most `max_changes` of them and `max_bytes`. Past the bound the
    buffer is dropped and the follower `overflowed`: its reader ends (`Stream.batch` raises)."""

    def __init__(self, accepts: Accepts | None = None, *, on_overflow: Callable[[], None] | None = None,
                 max_changes: int = FOLLOWER_MAX_CHANGES, max_bytes: int = FOLLOWER_MAX_BYTES) -> None:
        self.buffer: deque[tuple[Doc, int]] = deque()
        self.arrived = asyncio.Event()
        self.ended = asyncio.Event()  # set on overflow
        self.accepts = accepts
        # Told once, at the overflow: a reader blocked on its client (not in `batch`) is ended by it.
        self.on_overflow = on_overflow
        self.max_changes, self.max_bytes = max_changes, max_bytes
        self.bytes = 0

    @property
    def overflowed(self) -> bool:
        return self.ended.is_set()

    def push(self, store: StoreSchema, record: Doc, size: int) -> None:
        if self.overflowed or (self.accepts is not None and not self.accepts(store, record)):
            return
        if len(self.buffer) >= self.max_changes or self.bytes + size > self.max_bytes:
            self.buffer.clear()
            self.bytes = 0
            self.ended.set()
            self.arrived.set()  # a reader waiting for changes finds out at once
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self.buffer.append((record, size))
        self.bytes += size
        self.arrived.set()

    def take(self) -> list[Doc]:
        """Everything buffered, oldest first."""
        out = [record for record, _ in self.buffer]
        self.buffer.clear()
        self.bytes = 0
        return out


def record_size(record: Doc) -> int:
    """About what holding a change costs: its entity's JSON size, plus the rest of the record."""
    return len(dumps(record.get("entity"))) + 200


class Stream:
    """One reader's changes after a cursor: the backlog from the feed, then its buffer."""

    def __init__(self, hub: FeedTail, tailer: Tailer, follower: Follower, first: Page, since: int) -> None:
        self.hub, self.tailer, self.follower = hub, tailer, follower
        self.page: Page | None = first
        self.more = False  # the feed holds more of the backlog after `position`
        self.position = since

    async def batch(self) -> list[Doc]:
        """The next changes in seq order; [] when the reader has caught up (buffer empty).
        Raises Overflowed once the reader fell further behind than its buffer's bound."""
        if self.follower.overflowed:
            raise Overflowed()
        while self.page is not None or self.more:  # the backlog, one page at a time (read when needed)
            page = self.page or await self.hub.feed.read(self.tailer.store, self.position, REPLAY_PAGE)
            self.page = None
            self.position, self.more = page.position, page.more
            if page.records:  # (a page of voids only is not the end of the backlog)
                return page.records
        out = []
        for record in self.follower.take():
            if record["seq"] > self.position:
                out.append(record)
                self.position = record["seq"]
        self.follower.arrived.clear()
        return out

    def close(self) -> None:
        self.tailer.followers.discard(self.follower)


class Tailer:
    def __init__(self, hub: FeedTail, store: StoreSchema) -> None:
        self.hub, self.store = hub, store
        self.position = 0
        self.ready = asyncio.Event()
        self.wake = asyncio.Event()
        self.look = True  # read the feed on the next wake (not only this process's own changes)
        self.offered: dict[int, Doc] = {}
        self.followers: set[Follower] = set()
        self.task = asyncio.create_task(self.run())

    def idle(self) -> bool:
        return not self.followers and not any(c.active(self.store.name) for c in self.hub.consumers)

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
        if self.followers:
            size = record_size(record)
            for follower in list(self.followers):
                follower.push(self.store, record, size)
        for consumer in self.hub.consumers:
            if consumer.active(self.store.name):
                await consumer.deliver(self.store, record)


class FeedTail:
    def __init__(self, feed: Feed, registry: Registry, *, queue_url: str | None,
                 poll_seconds: float | None = None) -> None:
        self.feed, self.registry = feed, registry
        self.consumers: list[Consumer] = []
        # Polling finds other processes' changes; an embedded database owned by one process has no
        # other process, so there it only polls as a safety net (its workers, sharing it, poll).
        self.poll_seconds = poll_seconds or (30.0 if feed.storage.embedded else 1.0 if queue_url else 0.25)
        self.tailers: dict[str, Tailer] = {}
        channel = f"{CHANNEL}:{feed.storage.database_name}"
        self._wakes = RedisChannel(queue_url, channel) if queue_url else None
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
        if self._wakes is not None:
            self._wakes.publish(store)

    async def run(self) -> None:
        """Wake tailers on other processes' changes (Redis), until cancelled. After a break of the
        channel every tailer reads the feed once (a poll would find the changes too, later)."""
        if self._wakes is not None:
            await self._wakes.run(self._wake, self._wake_all)

    def _wake(self, store: str) -> None:
        if (tailer := self.tailers.get(store)) is not None:
            tailer.look = True
            tailer.wake.set()

    def _wake_all(self) -> None:
        for name in list(self.tailers):
            self._wake(name)

    # --- readers ---------------------------------------------------------------------------

    async def open(self, store: StoreSchema, since: int | None, accepts: Accepts | None = None,
                   on_overflow: Callable[[], None] | None = None) -> Stream:
        """A stream after `since` (None: the oldest retained). 410 / 400 before anything is sent.
        `accepts` decides which live changes are worth buffering for this reader; `on_overflow`
        is told when it fell too far behind (see Follower)."""
        tailer = self.tailer(store)
        follower = Follower(accepts, on_overflow=on_overflow)
        tailer.followers.add(follower)  # registered at once, so the tailer does not stop meanwhile
        try:
            await tailer.ready.wait()  # its starting point is then behind anything the replay reads
            first = await self.feed.read(store, since, REPLAY_PAGE)
        except BaseException:
            tailer.followers.discard(follower)
            raise
        return Stream(self, tailer, follower, first, since or 0)
