"""Socket.IO delivery of the feed's tail: subscriptions (with `since` replays) and room fan-out.

Fan-out stays room-based: an ordinary change is one emit to the rooms of the entity; only when
the access fields changed are the sockets of the rooms before and after compared (both: update,
after only: enter, before only: leave). No database read per socket. In a store with `x-read`
properties, subscribers also sit in one room per view (access.view_rooms): a change is encoded
once per distinct view among its recipients, never once per subscriber.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from storeengine.core.errors import BadRequest
from storeengine.core.jsonio import to_json_form
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.schema import StoreSchema
from storeengine.realtime.transport.direct import send_event
from storeengine.store.feed import access_of, cursor, parse_cursor, view
from storeengine.store.tail import FeedTail, Follower, Stream

log = logging.getLogger(__name__)


class SocketDelivery:
    """The tail's Socket.IO consumer: per store, the local sockets subscribed and those replaying."""

    def __init__(self, tail: FeedTail, sio: socketio.AsyncServer,
                 settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.tail, self.sio = tail, sio
        # Before each fan-out: sockets first follow revocations and room changes made earlier.
        self.settle = settle
        self.sockets: dict[str, set[str]] = {}  # store -> subscribed local sockets (joined rooms)
        self.catching_up: dict[str, dict[str, Follower]] = {}  # store -> sockets replaying: skipped by emits
        self._tasks: set[asyncio.Task[Any]] = set()
        tail.consumers.append(self)

    def active(self, store: str) -> bool:
        return bool(self.sockets.get(store) or self.catching_up.get(store))

    async def deliver(self, store: StoreSchema, record: Doc) -> None:
        if self.sockets.get(store.name):
            await self.fan_out(store, record, list(self.catching_up.get(store.name, ())))

    async def subscribe(self, sid: str, store: StoreSchema, since_text: Any,
                        join: Callable[[], Awaitable[None]], principal: Callable[[], Awaitable[Principal]]) -> None:
        """Join the rooms; with `since`, replay first (in a task) and go live without a gap."""
        if since_text is not None and not isinstance(since_text, str):
            raise BadRequest("since must be a cursor string")
        since = None if since_text is None else parse_cursor(store.name, since_text)
        tailer = self.tail.tailer(store)
        if since is None:
            self.sockets.setdefault(store.name, set()).add(sid)
            await join()
            await tailer.ready.wait()  # writes after the ack are past the tailer's starting point
            return
        stream = await self.tail.open(store, since)
        self.catching_up.setdefault(store.name, {})[sid] = stream.follower  # skipped by room emits
        self.sockets.setdefault(store.name, set()).add(sid)
        await join()
        task = asyncio.create_task(self._replay(sid, stream, principal))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replay(self, sid: str, stream: Stream,
                      principal: Callable[[], Awaitable[Principal]]) -> None:
        try:
            while True:
                batch = await stream.batch()
                if not batch and not stream.follower.buffer:
                    return  # caught up: from here on the room emits reach this socket
                who = await principal()
                for record in batch:
                    if (shown := view(who, stream.tailer.store, record)) is not None:
                        shown.pop("by")  # a socket event has no `by` (API.md 8)
                        await send_event(self.sio, sid, "change", shown)
        except Exception:
            log.exception("replay to %s failed", sid)
        finally:
            stream.close()
            self.catching_up.get(stream.tailer.store.name, {}).pop(sid, None)

    def forget(self, sid: str, store: str | None = None) -> None:
        """A socket left a store (None: every store)."""
        for name in [store] if store is not None else list(self.sockets):
            self.sockets.get(name, set()).discard(sid)
            self.catching_up.get(name, {}).pop(sid, None)

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
        entity = None if op == "leave" else record["entity"]
        payload = {"seq": cursor(store.name, record["seq"]), "store": store.name, "op": op, "_id": record["id"],
                   "entity": entity, "at": record["at"]}
        if entity is None or not store.read_rules:
            await self.sio.emit("change", _socket_form(payload), to=to, skip_sid=skip, ignore_queue=True)
            return
        # One encoding per view: the recipients grouped by the properties they may not read.
        for hidden, sids in self._views(store, entity, to).items():
            shown = {**payload, "entity": {k: v for k, v in entity.items() if k not in hidden}}
            await self.sio.emit("change", _socket_form(shown), to=sids, skip_sid=skip, ignore_queue=True)

    def _views(self, store: StoreSchema, entity: Doc, to: list[str]) -> dict[frozenset[str], list[str]]:
        """The local recipients of `to`, by view. A view room says which properties its members
        never read and which they read by entity; for the latter, the rooms of that property's
        rules on this entity say who reads it. Rooms only: no database read, no session read."""
        recipients = self._local_sockets(to)
        groups: dict[frozenset[str], list[str]] = {}
        readers: dict[str, set[str]] = {}
        for room in list(self.sio.manager.rooms.get("/", {})):
            view = acl.parse_view_room(store.name, room) if isinstance(room, str) else None  # None: everyone
            members = recipients & self._local_sockets([room]) if view is not None else None
            if not members or view is None:
                continue
            recipients -= members
            never, some = view
            for prop in some:
                if prop not in readers:
                    readers[prop] = self._local_sockets(acl.readers_rooms(store, prop, entity))
            for sid in members:
                groups.setdefault(never | {p for p in some if sid not in readers[p]}, []).append(sid)
        if recipients:  # in no view room yet (joined before the rules were loaded): every rule fails
            groups.setdefault(frozenset(store.read_rules), []).extend(recipients)
        return groups


def _socket_form(change: Doc) -> Doc:
    form: Doc = to_json_form(change)
    return form
