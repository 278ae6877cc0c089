"""Socket.IO: authenticated connections, subscriptions, and access-filtered change events.

Subscribers join rooms derived from their principal and the store's read rules; an event
goes to the rooms derived from the entity's access fields. One emit then reaches exactly
the sockets that may read the entity, on every process (through Redis when configured).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import socketio

from storeengine.auth import credentials
from storeengine.auth.service import AuthService
from storeengine.core.errors import BadRequest, StoreError
from storeengine.core.formats import utcnow
from storeengine.core.jsonio import iso_ms, to_json_form
from storeengine.core.scope import database_scope
from storeengine.model import access as acl
from storeengine.model.access import Principal
from storeengine.model.schema import Registry, StoreSchema
from storeengine.realtime.authbus import CHANNEL, RedisBus
from storeengine.realtime.live import filtered_rooms, parse_live_filter
from storeengine.realtime.rechecks import Bus, Watch
from storeengine.realtime.transport.fanout import GcPolicy, manager
from storeengine.realtime.transport.handoff import Directory, RoutingServer
from storeengine.realtime.transport.sendqueue import bound_send_queues, close_now

if TYPE_CHECKING:
    from storeengine.realtime.live import SocketDelivery

log = logging.getLogger(__name__)

# Which server a connect belongs to (API.md 12), given its `auth.tenant` key and the tenant its
# credential names: a tenant's Realtime, or None for the public one; raises 401/503 StoreErrors.
Select = Callable[[str | None, str | None], Awaitable["Realtime | None"]]


class Realtime:
    def __init__(self, registry: Registry, auth: AuthService, *, queue_url: str | None,
                 allowed_origins: tuple[str, ...], ping_interval: int = 25, ping_timeout: int = 60,
                 bus: Bus | None = None, directory: Directory | None = None) -> None:
        self.registry = registry
        self.auth = auth
        # A tenant's server has Redis channels of its own: python-socketio's (its rooms' names are
        # those of every other database) and the auth changes'.
        suffix = "" if auth.tenant is None else f":t:{auth.tenant}"
        # python-socketio's server, able to speak Engine.IO v3 to socket.io-client 2.x as well;
        # its manager sends one encoded packet to every recipient (fanout.py)
        self.sio = RoutingServer(
            async_mode="asgi", client_manager=manager(queue_url, "socketio" + suffix), ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            cors_allowed_origins=self._origin_allowed, logger=False, engineio_logger=False,
            directory=directory,  # the public server's: every server of the process shares it (handoff.py)
        )
        bound_send_queues(self.sio.eio)  # a client that stops reading is cut off (sendqueue.py)
        self._allowed_origins = allowed_origins
        self._queue: asyncio.Queue[tuple[str, list[str], dict[str, Any]]] = asyncio.Queue()
        # Local sockets by user, credential and store: re-checked only when one of those changes.
        self.watch = Watch(auth, refresh=self._refresh_rooms, drop=self._drop,
                           bus=RedisBus(queue_url, CHANNEL + suffix) if queue_url else bus)
        self.gc = GcPolicy()
        self.live: SocketDelivery | None = None  # set when the change feed is on: it delivers the events
        self.select: Select | None = None  # set by app.py when there are tenants
        self.sio.route = self._route
        self.sio.on("connect", self._scoped(self._connect))
        self.sio.on("disconnect", self._scoped(self._disconnect))
        self.sio.on("subscribe", self._scoped(self._subscribe))
        self.sio.on("unsubscribe", self._scoped(self._unsubscribe))

    def _scoped(self, handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """A handler that runs for this server's database (core/scope.py: its feed cursors), also for
        a connection handed over from another server, whose tasks started in that server's scope."""
        tenant = self.auth.tenant or ""

        async def scoped(*args: Any) -> Any:
            token = database_scope.set(tenant)
            try:
                return await handler(*args)
            finally:
                database_scope.reset(token)

        return scoped

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

    async def close(self) -> None:
        """Stop the server (a tenant's, closed while the process runs on): its sockets (an idle
        tenant has none; a deleted one's credentials end with it), its heartbeat and its Redis
        listener."""
        for socket in list(self.sio.eio.sockets.values()):
            await close_now(socket)
        await self.sio.shutdown()
        await self.sio.manager.close()

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

    async def _route(self, environ: Mapping[str, Any], auth: Any) -> RoutingServer | None:
        """The server of a CONNECT (transport/handoff.py), None for this one. `auth.tenant` names a
        tenant; else, on the public server, a tenant's credential in `auth` selects its tenant
        (the handshake's headers and cookie chose the server already: http/tenancy.TenantSockets)."""
        if self.select is None or not isinstance(auth, dict):
            return None
        key = auth.get("tenant")
        if key is not None and not isinstance(key, str):
            raise socketio.exceptions.ConnectionRefusedError("auth.tenant must be a tenant key")
        tag = self._tag(auth) if key is None and self.auth.tenant is None else None
        if key is None and tag is None:
            return None
        try:
            target = await self.select(key, tag)
        except StoreError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message) from None
        if target is None or target is self:
            return None
        if self.auth.tenant is not None:  # the handshake's Api-Key or credential chose another tenant
            raise socketio.exceptions.ConnectionRefusedError("auth.tenant names another tenant than the handshake")
        return target.sio

    def _tag(self, auth: dict[str, Any]) -> str | None:
        """The tenant a credential in the connect payload was issued in (credentials.from_connect's)."""
        token, key = auth.get("token"), auth.get("apiKey")
        if isinstance(token, str):
            try:
                return self.auth.tokens.decode(token).tenant
            except StoreError:
                return None  # authentication refuses it
        return credentials.tenant_of(key) if isinstance(key, str) else None

    async def _connect(self, sid: str, environ: Mapping[str, Any], auth: Any = None) -> None:
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

    async def _subscribe(self, sid: str, data: Any = None, *extra: Any) -> dict[str, Any]:
        try:
            _one_argument("subscribe", extra)
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

    async def _unsubscribe(self, sid: str, data: Any = None, *extra: Any) -> dict[str, Any]:
        try:
            _one_argument("unsubscribe", extra)
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


def _one_argument(event: str, extra: tuple[Any, ...]) -> None:
    """`subscribe` / `unsubscribe` take one object: more is a 400 ack (the handler's own arity
    failed with an exception, and no ack)."""
    if extra:
        raise BadRequest(f"{event} takes one argument: an object with its store")
