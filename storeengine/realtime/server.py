"""Socket.IO: authenticated connections, subscriptions, and access-filtered change events.

Subscribers join rooms derived from their principal and the store's read rules; an event
goes to the rooms derived from the entity's access fields. One emit then reaches exactly
the sockets that may read the entity, on every process (through Redis when configured).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import socketio

from storeengine.auth import credentials
from storeengine.auth.service import AuthService
from storeengine.core.errors import BadRequest, StoreError
from storeengine.core.formats import utcnow
from storeengine.core.jsonio import iso_ms, to_json_form
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.schema import Registry, StoreSchema
from storeengine.realtime.authbus import RedisBus
from storeengine.realtime.live import filtered_rooms, parse_live_filter
from storeengine.realtime.rechecks import Bus, Watch
from storeengine.realtime.transport.fanout import GcPolicy, manager
from storeengine.realtime.transport.legacy import LegacyAsyncServer
from storeengine.realtime.transport.sendqueue import bound_send_queues

if TYPE_CHECKING:
    from storeengine.realtime.live import SocketDelivery

log = logging.getLogger(__name__)


class Realtime:
    def __init__(self, registry: Registry, auth: AuthService, *, queue_url: str | None,
                 allowed_origins: tuple[str, ...], ping_interval: int = 25, ping_timeout: int = 60,
                 bus: Bus | None = None) -> None:
        self.registry = registry
        self.auth = auth
        # python-socketio's server, able to speak Engine.IO v3 to socket.io-client 2.x as well;
        # its manager sends one encoded packet to every recipient (fanout.py)
        self.sio = LegacyAsyncServer(
            async_mode="asgi", client_manager=manager(queue_url), ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            cors_allowed_origins=self._origin_allowed, logger=False, engineio_logger=False,
        )
        bound_send_queues(self.sio.eio)  # a client that stops reading is cut off (sendqueue.py)
        self._allowed_origins = allowed_origins
        self._queue: asyncio.Queue[tuple[str, list[str], dict[str, Any]]] = asyncio.Queue()
        # Local sockets by user, credential and store: re-checked only when one of those changes.
        self.watch = Watch(auth, refresh=self._refresh_rooms, drop=self._drop,
                           bus=RedisBus(queue_url) if queue_url else bus)
        self.gc = GcPolicy()
        self.live: SocketDelivery | None = None  # set when the change feed is on: it delivers the events
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("subscribe", self._subscribe)
        self.sio.on("unsubscribe", self._unsubscribe)

    def _origin_allowed(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        return credentials.environ_origin_allowed(origin, environ, self._allowed_origins)

    # --- publishing (the service's EventSink) ---------------------------------------------

    def publish(self, store: StoreSchema, op: str, entity: Mapping[str, Any]) -> None:
        """Queue without awaiting, so events leave in the order the writes finished."""
        if self.live is not None:
            return  # the feed's tailers deliver, in seq order (store/tail.py)
        rooms = acl.rooms_for_entity(store.name, store.acl["read"], entity)
        # Without the feed there is no per-view fan-out: properties with x-read stay out (fail closed).
        entity = {k: v for k, v in entity.items() if k not in store.read_rules}
        payload = {"store": store.name, "op": op, "_id": str(entity["_id"]),
                   "entity": to_json_form(entity), "at": iso_ms(utcnow())}
        self._queue.put_nowait(("change", rooms, payload))

    async def run(self) -> None:
        """Emit queued events one after another, and re-check connections when what they
        depend on changes."""
        self.gc.install()
        try:
            await asyncio.gather(self._pump(), self.watch.run())
        finally:
            self.gc.uninstall()

    async def settle(self) -> None:
        """Before an emit: sockets follow the changes made before this write (rooms, revocation)."""
        if self.watch.pending:
            await self.watch.flush()

    async def _pump(self) -> None:
        while True:
            event, rooms, payload = await self._queue.get()
            try:
                await self.settle()
                await self.sio.emit(event, payload, to=rooms)
            except Exception:  # a broken queue must not stop later events
                log.exception("could not emit a change event")

    def stores_reloaded(self, names: list[str]) -> None:
        """New read rules may give subscribers of these stores other rooms."""
        self.watch.stores_changed(names)

    async def _drop(self, sid: str) -> bool:
        if self.sio.manager.is_pre_connected(sid, "/"):
            return False  # its connect handler is still running: the watch tries again shortly
        await self.sio.disconnect(sid)
        return True

    async def _refresh_rooms(self, sid: str, principal: Principal) -> bool:
        """Follow changes to the caller's groups or roles and to the store's read rules: move
        the socket to the rooms they now give, for every store it subscribed to."""
        if self.sio.manager.is_pre_connected(sid, "/"):
            return False  # as in _drop
        if not self.sio.manager.is_connected(sid, "/"):
            return True
        async with self.sio.session(sid) as session:
            session["principal"] = principal
            for name, rooms in list(session["rooms"].items()):
                try:
                    store = self.registry.get(name)
                except StoreError:
                    continue
                if _rooms(store, principal, session["filters"].get(name)) != rooms:
                    await self._join(sid, session, store, principal)
        return True

    # --- handlers -------------------------------------------------------------------------

    async def _connect(self, sid: str, environ: Mapping[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and "tenant" in auth:
            # API.md 12's `auth.tenant` arrives after the Engine.IO handshake, which chose this server
            # already: refused rather than served silently by the wrong database. Not supported yet.
            raise socketio.exceptions.ConnectionRefusedError(
                "auth.tenant is not supported: send the tenant key as the Api-Key header of the handshake")
        try:
            creds = credentials.from_connect(environ, auth).as_kwargs()
            seen = self.watch.changes  # a change made while we authenticate re-checks this socket
            principal = await self.auth.authenticate(**creds)
            expires_at = await self.auth.expires_at(**creds)
        except StoreError:
            raise socketio.exceptions.ConnectionRefusedError("Unauthorized") from None
        # rooms: store -> the rooms joined; filters: store -> the key of its filter (live.py)
        await self.sio.save_session(sid, {"principal": principal, "rooms": {}, "filters": {}})
        self.watch.add(sid, creds, principal, expires_at, seen=seen)
        self.gc.connected()

    async def _disconnect(self, sid: str, *args: Any) -> None:
        self.watch.remove(sid)
        if self.live is not None:
            self.live.forget(sid)

    async def _subscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            store = self.registry.get(self._store_name(data))
            # Checked as `GET ?filter=` checks it, over the properties this caller may query.
            live_filter = parse_live_filter(data.get("filter"), store.seen_by(await self._principal(sid)))
            key = None if live_filter is None else live_filter.key
            if self.live is not None:
                await self.live.subscribe(sid, store, data.get("since"), live_filter,
                                          lambda: self._join_now(sid, store, key), lambda: self._principal(sid))
            elif key is not None:
                raise BadRequest("filter: filtered subscriptions need the change feed")
            else:
                await self._join_now(sid, store, None)
            self.watch.subscribed(sid, store.name)
        except StoreError as exc:
            return exc.body()
        return {"success": True}

    async def _join_now(self, sid: str, store: StoreSchema, key: str | None) -> None:
        async with self.sio.session(sid) as session:
            if key is None:
                session["filters"].pop(store.name, None)
            else:
                session["filters"][store.name] = key
            await self._join(sid, session, store, session["principal"])

    async def _principal(self, sid: str) -> Principal:
        principal: Principal = (await self.sio.get_session(sid))["principal"]
        return principal

    async def _join(self, sid: str, session: dict[str, Any], store: StoreSchema, principal: Principal) -> None:
        rooms = _rooms(store, principal, session["filters"].get(store.name))
        for room in set(session["rooms"].get(store.name, ())) - set(rooms):
            await self.sio.leave_room(sid, room)
        for room in rooms:
            await self.sio.enter_room(sid, room)
        session["rooms"][store.name] = rooms

    async def _unsubscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            name = self._store_name(data)
            async with self.sio.session(sid) as session:
                rooms = session["rooms"].pop(name, None)
                session["filters"].pop(name, None)
            if self.live is not None:
                self.live.forget(sid, name)
            if rooms is None:
                self.registry.get(name)  # 404 for an unknown store
            self.watch.unsubscribed(sid, name)
            for room in rooms or ():
                await self.sio.leave_room(sid, room)
        except StoreError as exc:
            return exc.body()
        return {"success": True}

    @staticmethod
    def _store_name(data: Any) -> str:
        if not isinstance(data, dict) or not isinstance(data.get("store"), str):
            raise BadRequest('Send {"store": "<name>"}')
        name: str = data["store"]
        return name


def _rooms(store: StoreSchema, principal: Principal, key: str | None) -> list[str]:
    """A subscriber's rooms in a store: those of its read rules (a filtered subscriber: its filter
    group's copies of them), and those of its view."""
    rooms = acl.rooms_for_principal(store.name, store.acl["read"], principal)
    return [*(filtered_rooms(key, rooms) if key else rooms), *acl.view_rooms(store, principal)]
