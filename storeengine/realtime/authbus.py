"""Carries AuthChanges between server processes: over a small Redis pub/sub channel of our own
(beside python-socketio's, on the same STORE_SOCKETIO_QUEUE server), or, without Redis, through
a MongoDB collection that every process polls.

Either may lose changes while it is broken (pub/sub keeps nothing; a poll cannot reach the
database): afterwards this process re-checks every socket once (`on_gap`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bson import ObjectId

from storeengine.auth.service import AuthChange
from storeengine.core.errors import StoreError
from storeengine.core.formats import utcnow
from storeengine.core.pubsub import RedisChannel
from storeengine.core.types import Doc
from storeengine.storage.api import CollectionAPI

log = logging.getLogger(__name__)
CHANNEL = "storeengine-auth"
RETRY_SECONDS = 1.0


class RedisBus:
    """Auth changes over a Redis channel of our own (core/pubsub.py)."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self._channel = RedisChannel(url, channel)

    def publish(self, change: AuthChange) -> None:
        self._channel.publish(json.dumps({"u": change.user_id, "c": change.credential_id}))

    async def run(self, on_change: Callable[[AuthChange], None], on_gap: Callable[[], None]) -> None:
        await self._channel.run(lambda text: _deliver(text, on_change), on_gap)


def _deliver(text: str, on_change: Callable[[AuthChange], None]) -> None:
    try:
        body = json.loads(text)
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    user, credential = body.get("u"), body.get("c")
    if isinstance(user, str | None) and isinstance(credential, str | None):
        on_change(AuthChange(user, credential))


POLL_SECONDS = 1.0  # well inside the documented 5 s bound
OVERLAP_SECONDS = 3.0  # re-read this far back: an insert may commit after a later one was seen
KEEP_SECONDS = 60  # how long the database keeps a change (TTL index)


class MongoBus:
    """Several processes without Redis (`serve --workers N` on one MongoDB): changes go through a
    small `_auth_changes` collection that every process polls once a second. One indexed query
    per second, whatever the number of sockets."""

    def __init__(self, collection: CollectionAPI) -> None:
        self._coll = collection
        self._origin = uuid.uuid4().hex
        self._outbox: asyncio.Queue[AuthChange] = asyncio.Queue()
        self._seen: dict[Any, float] = {}  # ids read within the overlap window

    def publish(self, change: AuthChange) -> None:
        self._outbox.put_nowait(change)

    async def run(self, on_change: Callable[[AuthChange], None], on_gap: Callable[[], None]) -> None:
        await asyncio.gather(self._send(), self._poll(on_change, on_gap))

    async def _send(self) -> None:
        while True:
            change = await self._outbox.get()
            doc = {"_id": ObjectId(), "o": self._origin, "u": change.user_id, "c": change.credential_id,
                   "at": utcnow()}
            while True:
                try:
                    await self._coll.insert(doc)
                    break
                except StoreError as exc:
                    log.warning("cannot record a revocation (retrying): %s", exc.message)
                    await asyncio.sleep(RETRY_SECONDS)

    async def _poll(self, on_change: Callable[[AuthChange], None], on_gap: Callable[[], None]) -> None:
        broken, ready = False, False
        since = utcnow()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if not ready:
                    await self._coll.ensure_index([("at", 1)], expire_after=KEEP_SECONDS)
                    ready = True
                now = utcnow()
                start = since - timedelta(seconds=OVERLAP_SECONDS)
                docs = await self._coll.find({"at": {"$gte": start}}, sort=[("at", 1)])
            except StoreError:
                broken = True  # changes made meanwhile are still there if it comes back within a minute
                continue
            if broken:
                on_gap()
                broken = False
            since = now
            self._deliver(docs, time.monotonic(), on_change)

    def _deliver(self, docs: list[Doc], now: float, on_change: Callable[[AuthChange], None]) -> None:
        for doc in docs:
            if doc["_id"] in self._seen:
                continue
            self._seen[doc["_id"]] = now
            if doc.get("o") != self._origin:
                on_change(AuthChange(doc.get("u"), doc.get("c")))
        for key in [k for k, at in self._seen.items() if at < now - 2 * OVERLAP_SECONDS]:
            del self._seen[key]
