"""Socket.IO: authenticated connections, subscriptions, and access-filtered change events.

Subscribers join rooms derived from their principal and the store's read rules; an event
goes to the rooms derived from the entity's access fields. One emit then reaches exactly
the sockets that may read the entity, on every process (through Redis when configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import socketio

from storeengine import acl
from storeengine.acl import Principal
from storeengine.auth import credentials
from storeengine.auth.service import AuthService
from storeengine.errors import BadRequest, StoreError, Unauthorized
from storeengine.formats import utcnow
from storeengine.jsonio import iso_ms, to_json_form
from storeengine.legacy_sio import LegacyAsyncServer
from storeengine.schemas import Registry, StoreSchema
from storeengine.sendqueue import bound_send_queues

if TYPE_CHECKING:
    from storeengine.live import LiveHub

log = logging.getLogger("storeengine.realtime")
SWEEP_SECONDS = 1.0


class Realtime:
    def __init__(self, registry: Registry, auth: AuthService, *, queue_url: str | None,
                 allowed_origins: tuple[str, ...], ping_interval: int = 25, ping_timeout: int = 60) -> None:
        self.registry = registry
        self.auth = auth
        manager = socketio.AsyncRedisManager(queue_url) if queue_url else None
        # python-socketio's server, able to speak Engine.IO v3 to socket.io-client 2.x as well
        self.sio = LegacyAsyncServer(
            async_mode="asgi", client_manager=manager, ping_interval=ping_interval, ping_timeout=ping_timeout,
            cors_allowed_origins=self._origin_allowed, logger=False, engineio_logger=False,
        )
        bound_send_queues(self.sio.eio)  # a client that stops reading is cut off (sendqueue.py)
        self._allowed_origins = allowed_origins
        self._queue: asyncio.Queue[tuple[str, list[str], dict[str, Any]]] = asyncio.Queue()
        self._sockets: dict[str, dict[str, str]] = {}  # local sid -> credentials, for revocation
        self._sweep_now = asyncio.Event()
        self.live: LiveHub | None = None  # set when the change feed is on: it delivers the events
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("subscribe", self._subscribe)
        self.sio.on("unsubscribe", self._unsubscribe)
        auth.revocation_listeners.append(self._sweep_now.set)

    def _origin_allowed(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        return credentials.environ_origin_allowed(origin, environ, self._allowed_origins)

    # --- publishing (the service's EventSink) ---------------------------------------------

    def publish(self, store: StoreSchema, op: str, entity: Mapping[str, Any]) -> None:
        """Queue without awaiting, so events leave in the order the writes finished."""
        if self.live is not None:
            return  # the feed's tailers deliver, in seq order (storeengine/live.py)
        rooms = acl.rooms_for_entity(store.name, store.acl["read"], entity)
        payload = {"store": store.name, "op": op, "_id": str(entity["_id"]),
                   "entity": to_json_form(entity), "at": iso_ms(utcnow())}
        self._queue.put_nowait(("change", rooms, payload))

    async def run(self) -> None:
        """Emit queued events one after another, and drop connections whose credential died."""
        await asyncio.gather(self._pump(), self._sweeper(), *([self.live.run()] if self.live else []))

    async def _pump(self) -> None:
        while True:
            event, rooms, payload = await self._queue.get()
            try:
                await self.sio.emit(event, payload, to=rooms)
            except Exception:  # a broken queue must not stop later events
                log.exception("could not emit a change event")

    async def _sweeper(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_now.wait(), SWEEP_SECONDS)
            self._sweep_now.clear()
            for sid, creds in list(self._sockets.items()):
                try:
                    principal = await self.auth.authenticate(**creds)
                except Unauthorized:
                    await self.sio.disconnect(sid)
                    continue
                except StoreError:
                    continue  # database down: keep the socket, check again later
                await self._refresh_rooms(sid, principal)

    async def _refresh_rooms(self, sid: str, principal: Principal) -> None:
        """Follow changes to the caller's groups or roles and to the store's read rules: move
        the socket to the rooms they now give, for every store it subscribed to."""
        if not self.sio.manager.is_connected(sid, "/"):
            return
        async with self.sio.session(sid) as session:
            session["principal"] = principal
            for name, rooms in list(session["rooms"].items()):
                try:
                    store = self.registry.get(name)
                except StoreError:
                    continue
                if acl.rooms_for_principal(store.name, store.acl["read"], principal) != rooms:
                    await self._join(sid, session, store, principal)

    # --- handlers -------------------------------------------------------------------------

    async def _connect(self, sid: str, environ: Mapping[str, Any], auth: Any = None) -> None:
        try:
            creds = credentials.from_connect(environ, auth).as_kwargs()
            principal = await self.auth.authenticate(**creds)
        except StoreError:
            raise socketio.exceptions.ConnectionRefusedError("Unauthorized") from None
        await self.sio.save_session(sid, {"principal": principal, "rooms": {}})
        self._sockets[sid] = creds

    async def _disconnect(self, sid: str, *args: Any) -> None:
        self._sockets.pop(sid, None)
        if self.live is not None:
            self.live.forget(sid)

    async def _subscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            store = self.registry.get(self._store_name(data))
            if self.live is not None:
                await self.live.subscribe(sid, store, data.get("since"), lambda: self._join_now(sid, store),
                                          lambda: self._principal(sid))
                return {"success": True}
            await self._join_now(sid, store)
        except StoreError as exc:
            return exc.body()
        return {"success": True}

    async def _join_now(self, sid: str, store: StoreSchema) -> None:
        async with self.sio.session(sid) as session:
            await self._join(sid, session, store, session["principal"])

    async def _principal(self, sid: str) -> Principal:
        principal: Principal = (await self.sio.get_session(sid))["principal"]
        return principal

    async def _join(self, sid: str, session: dict[str, Any], store: StoreSchema, principal: Principal) -> None:
        rooms = acl.rooms_for_principal(store.name, store.acl["read"], principal)
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
            if self.live is not None:
                self.live.forget(sid, name)
            if rooms is None:
                self.registry.get(name)  # 404 for an unknown store
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
