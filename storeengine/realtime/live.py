"""Socket.IO delivery of the feed's tail: subscriptions (with `since` replays) and room fan-out.

Fan-out stays room-based: an ordinary change is one emit to the rooms of the entity; only when
the access fields changed are the sockets of the rooms before and after compared (both: update,
after only: enter, before only: leave). No database read per socket. In a store with `x-read`
properties, subscribers also sit in one room per view (access.view_rooms): a change is encoded
once per distinct view among its recipients, never once per subscriber.

Filtered subscriptions (API.md 14) are grouped by their filter: the sockets of one filter sit in
that filter's own copies of the access rooms (`filtered_rooms`) instead of the plain ones, so a
change costs one in-memory match of the entity before and after per distinct filter, then the
same room emits as for everyone else (update / enter / leave by filter and access alike).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import socketio

from storeengine.core.errors import BadRequest
from storeengine.core.jsonio import dumps, to_json_form
from storeengine.core.types import Doc
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.matcher import matches
from storeengine.model.query import parse_filter
from storeengine.model.schema import StoreSchema
from storeengine.realtime.transport.direct import send_event
from storeengine.realtime.transport.sendqueue import close_now
from storeengine.store.feed import access_of, cursor, parse_cursor, view
from storeengine.store.tail import FeedTail, Follower, Overflowed, Stream

log = logging.getLogger(__name__)
YIELD_EVERY = 100  # changes replayed between two yields to other clients


class _Reader:
    """A replaying socket's principal, as of its last check: which live changes to buffer for it."""

    def __init__(self, principal: Principal, query: Doc | None = None) -> None:
        self.principal, self.query = principal, query  # the subscription's filter (API.md 14), if any

    def accepts(self, store: StoreSchema, record: Doc) -> bool:
        return view(self.principal, store, record, self.query) is not None


@dataclass(frozen=True)
class LiveFilter:
    """A subscription's checked filter, and its key: subscribers whose filters parse to the same
    query share one group (one match per change, one set of rooms)."""

    key: str
    query: Doc


def parse_live_filter(raw: Any, store: StoreSchema) -> LiveFilter | None:
    """`subscribe`'s "filter": the JSON of `GET ?filter=` (as an object or as its text), checked
    exactly as the list checks it; `store` is the store as the caller may query it (`seen_by`)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, dict):
        try:  # the stdlib's: an integer beyond 64 bits is written out, for parse_filter's own 400
            text = json.dumps(raw, allow_nan=False)
        except ValueError:
            raise BadRequest("filter: a number is out of range") from None
    else:
        raise BadRequest("filter must be a JSON object")
    query = parse_filter(text, store)
    return LiveFilter(hashlib.sha256(dumps(query)).hexdigest()[:16], query)


def filtered_rooms(key: str, rooms: list[str]) -> list[str]:
    """A filter group's copies of access rooms: `?<key>|<room>`."""
    return [f"?{key}|{room}" for room in rooms]


@dataclass
class _Group:
    query: Doc
    members: set[str] = field(default_factory=set)



class SocketDelivery:
    """The tail's Socket.IO consumer: per store, the local sockets subscribed and those replaying."""

    def __init__(self, tail: FeedTail, sio: socketio.AsyncServer,
                 settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.tail, self.sio = tail, sio
        # Before each fan-out: sockets first follow revocations and room changes made earlier.
        self.settle = settle
        self.sockets: dict[str, set[str]] = {}  # store -> subscribed local sockets (joined rooms)
        self.catching_up: dict[str, dict[str, Follower]] = {}  # store -> sockets replaying: skipped by emits
        self.groups: dict[str, dict[str, _Group]] = {}  # store -> filter key -> its subscribers
        self.filter_of: dict[str, dict[str, LiveFilter]] = {}  # store -> socket -> its filter
        self._replays: dict[tuple[str, str], asyncio.Task[None]] = {}  # (socket, store) -> its replay
        self._locks: dict[str, asyncio.Lock] = {}  # one subscribe at a time per socket
        self._closing: set[asyncio.Future[None]] = set()  # connections being cut off
        tail.consumers.append(self)

    def active(self, store: str) -> bool:
        return bool(self.sockets.get(store) or self.catching_up.get(store))

    async def deliver(self, store: StoreSchema, record: Doc) -> None:
        if self.sockets.get(store.name):
            await self.fan_out(store, record, list(self.catching_up.get(store.name, ())))

    async def subscribe(self, sid: str, store: StoreSchema, since_text: Any, live_filter: LiveFilter | None,
                        join: Callable[[], Awaitable[None]], principal: Callable[[], Awaitable[Principal]]) -> None:
        """Join the rooms; with `since`, replay first (in a task) and go live without a gap.
        One socket's subscribes are handled one at a time; a subscription replaces the socket's
        earlier one to the store (its filter, its replay)."""
        if since_text is not None and not isinstance(since_text, str):
            raise BadRequest("since must be a cursor string")
        since = None if since_text is None else parse_cursor(store.name, since_text)
        lock = self._locks.setdefault(sid, asyncio.Lock())
        async with lock:
            if not self.sio.manager.is_connected(sid, "/"):
                return  # it left while waiting its turn
            self.forget(sid, store.name)
            if live_filter is not None:  # known to fan_out before the socket enters the group's rooms
                self.filter_of.setdefault(store.name, {})[sid] = live_filter
                group = self.groups.setdefault(store.name, {}).setdefault(live_filter.key, _Group(live_filter.query))
                group.members.add(sid)
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
                reader = _Reader(await principal(), None if live_filter is None else live_filter.query)
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
                    if (shown := view(reader.principal, stream.tailer.store, record, reader.query)) is not None:
                        shown.pop("by")  # a socket event has no `by` (API.md 8)
                        await send_event(self.sio, sid, "change", shown)
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

    def forget(self, sid: str, store: str | None = None) -> None:
        """A socket left a store (None: every store, and the socket is gone)."""
        for name in [store] if store is not None else list({*self.sockets, *self.catching_up}):
            self.sockets.get(name, set()).discard(sid)
            self._stop_replay(sid, name)
            if (old := self.filter_of.get(name, {}).pop(sid, None)) is not None:
                groups = self.groups.get(name, {})
                groups[old.key].members.discard(sid)
                if not groups[old.key].members:
                    del groups[old.key]
        if store is None:
            self._locks.pop(sid, None)

    # --- Socket.IO fan-out -----------------------------------------------------------------

    async def fan_out(self, store: StoreSchema, record: Doc, skip: list[str]) -> None:
        if self.settle is not None:
            await self.settle()
        op = record["op"]
        before, after = record.get("before"), (None if op == "delete" else record["entity"])
        moved = before is not None and after is not None and access_of(after) != access_of(before)
        await self._route(store, record, "", before, after, moved, skip)  # the unfiltered subscribers
        # One match per distinct filter: the group sees the entity where it matches, and the
        # group's rooms then decide by access, as the plain rooms do.
        for key, group in list(self.groups.get(store.name, {}).items()):
            was = before if before is not None and matches(before, group.query) else None
            now = after if after is not None and matches(after, group.query) else None
            await self._route(store, record, key, was, now, moved, skip)

    async def _route(self, store: StoreSchema, record: Doc, key: str, before: Mapping[str, Any] | None,
                     after: Mapping[str, Any] | None, moved: bool, skip: list[str]) -> None:
        """Emit one change to the (filter group's) rooms of the entity before and after: an op
        of its own where both or neither side is known, else update / enter / leave by socket."""
        rules, op = store.acl["read"], record["op"]

        def rooms(entity: Mapping[str, Any]) -> list[str]:
            found = acl.rooms_for_entity(store.name, rules, entity)
            return filtered_rooms(key, found) if key else found

        if after is None and before is None:
            return
        if after is None:
            assert before is not None
            await self._emit(store, record, op if op == "delete" else "leave", rooms(before), skip)
        elif before is None:
            await self._emit(store, record, op if op == "create" else "enter", rooms(after), skip)
        elif not moved:
            await self._emit(store, record, op, rooms(after), skip)
        else:
            was, now = self._local_sockets(rooms(before)), self._local_sockets(rooms(after))
            for shown, sids in ((op, was & now), ("enter", now - was), ("leave", was - now)):
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
