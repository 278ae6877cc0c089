"""create_app(settings): the only module that knows every layer and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import socketio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from storeengine.auth.admins import LastAdminGuard
from storeengine.auth.bootstrap import bootstrap_admin
from storeengine.auth.passwords import Passwords
from storeengine.auth.service import AuthService
from storeengine.auth.tenants import TenantRegistry
from storeengine.auth.throttle import LoginThrottle
from storeengine.auth.tokens import TokenIssuer
from storeengine.core.errors import StoreError, Unavailable
from storeengine.core.scope import database_scope
from storeengine.core.types import Doc
from storeengine.http.context import Context
from storeengine.http.middleware import BodyLimit, Cors, HeadWithoutBody, SecurityHeaders, TrailingSlash
from storeengine.http.polling import PollingOff
from storeengine.http.responses import EXCEPTION_HANDLERS
from storeengine.http.routes import routes
from storeengine.http.streams import StreamSlots
from storeengine.http.tenancy import Tenancy, TenantSelect, TenantSockets
from storeengine.model.keyset import Keyset
from storeengine.model.schema import Registry, StoreSchema
from storeengine.realtime.authbus import MongoBus
from storeengine.realtime.live import SocketDelivery
from storeengine.realtime.server import Realtime, Select
from storeengine.settings import Settings
from storeengine.storage import connect
from storeengine.storage.api import StorageAPI
from storeengine.storage.databases import close_database, database_name, drop_database, open_database, reopenable
from storeengine.store.feed import Feed
from storeengine.store.service import EntityService
from storeengine.store.tail import FeedTail

log = logging.getLogger(__name__)


class Maintenance:
    """Background upkeep that must survive a dead database: schema reloads, index creation,
    the first admin. Each step retries on the next tick until it succeeds."""

    def __init__(self, ctx: Context, on_reload: Callable[[list[str]], None] | None = None, *,
                 tenant: bool = False, registry: TenantRegistry | None = None) -> None:
        self.ctx = ctx
        self.registry = registry  # the public database's: the tenant registry's indexes
        self.on_reload = on_reload  # told which stores were reloaded (Socket.IO re-joins their subscribers)
        for store in ctx.registry.all():
            ctx.service.indexes.due(store)
        self.auth_ready = False
        # A tenant's: the public database's maintenance rescans the (shared) schema folder and
        # passes the stores it reloaded on (stores_reloaded); a tenant's admin is made at its creation.
        self.tenant = tenant
        self.admin_ready = tenant
        self.next_expiry = 0.0
        self.next_settle = 0.0

    def stores_reloaded(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(StoreError):
                self.ctx.service.indexes.due(self.ctx.registry.get(name))

    async def tick(self) -> None:
        reloaded = [] if self.tenant else self.ctx.registry.rescan()
        for store in reloaded:
            self.ctx.service.indexes.due(store)
        if reloaded and self.on_reload is not None:
            self.on_reload([store.name for store in reloaded])
        self._check_schemas(reloaded)
        for name in self.ctx.service.indexes.pending():
            try:
                await self.ctx.service.indexes.ready(name)
            except Unavailable:
                return
        await self._once()
        feed = self.ctx.service.feed
        if feed.enabled and time.monotonic() >= self.next_settle:
            # Recovery (feed.py, G): finish what dead writers left, so the feed matches the data.
            self.next_settle = time.monotonic() + feed.settle_seconds
            try:
                await feed.settle(self.ctx.registry.all())
            except Unavailable:
                pass
            except StoreError:  # never the reason a server does not start: the next tick tries again
                log.exception("settling the change feed failed")
        if feed.enabled and time.monotonic() >= self.next_expiry:
            # Every process sweeps; raising the floor is idempotent. Not every tick: a sweep reads.
            self.next_expiry = time.monotonic() + min(feed.retention.total_seconds() / 2, 5.0)
            with contextlib.suppress(Unavailable):
                await feed.expire(self.ctx.registry.all())

    def _check_schemas(self, reloaded: list[StoreSchema]) -> None:
        """The console's report: each (re)loaded file's schema over its stored entities, in the
        background (the built-in stores have no file and never change)."""
        checks = self.ctx.checks
        checks.keep_only({s.name for s in self.ctx.registry.all()})
        for store in reloaded:
            checks.schedule(store)

    async def _once(self) -> None:
        with contextlib.suppress(Unavailable):
            if not self.auth_ready:
                await self.ctx.auth.ensure_indexes()
                await self.ctx.service.feed.ensure_indexes()
                if self.registry is not None:
                    await self.registry.ensure_indexes()
                self.auth_ready = True
            if not self.admin_ready:
                settings = self.ctx.settings
                await bootstrap_admin(self.ctx.service, settings.admin_login, settings.admin_password)
                self.admin_ready = True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.schema_poll_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("maintenance tick failed")


def build_context(settings: Settings, storage: StorageAPI | None = None) -> tuple[Context, Realtime]:
    secret = settings.secret
    if not secret:
        secret = secrets.token_urlsafe(32)
        log.warning("STORE_SECRET is not set: using a random secret; tokens die with this process, "
                    "and several processes need one STORE_SECRET")
    storage = storage or connect(settings)
    registry = Registry(settings.schema_dir)
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    tokens = TokenIssuer(secret, settings.token_issuer, settings.token_ttl_seconds)
    return _services(settings, storage, registry, passwords, tokens, Keyset(secret), tenant=None)


def _services(settings: Settings, storage: StorageAPI, registry: Registry, passwords: Passwords,
              tokens: TokenIssuer, keyset: Keyset, *, tenant: str | None,
              public: Realtime | None = None) -> tuple[Context, Realtime]:
    """Every service on one database: the public one (tenant None) or a tenant's (API.md 12), which
    shares the schema registry, password hasher and token signer with it."""
    throttle = LoginThrottle(storage.collection("_login_failures"), settings.login_max_failures,
                             settings.login_window_seconds)
    auth = AuthService(
        storage, passwords, tokens, throttle,
        session_ttl=settings.session_ttl_seconds, refresh_ttl=settings.refresh_ttl_seconds,
        cache_seconds=settings.auth_cache_seconds, tenant=tenant,
    )
    # Without Redis, processes sharing a database (MongoDB, or the embedded one under `serve --workers
    # N`) tell each other about revocations through it.
    shared_db = not storage.embedded and not settings.socketio_queue
    bus = MongoBus(storage.collection("_auth_changes")) if shared_db else None
    # A tenant's Socket.IO server has Redis channels of its own (Realtime), so rooms of one name in
    # two databases never mix.
    realtime = Realtime(registry, auth, queue_url=settings.socketio_queue, allowed_origins=settings.allowed_origins,
                        ping_interval=settings.socketio_ping_interval_seconds,
                        ping_timeout=settings.socketio_ping_timeout_seconds, bus=bus,
                        directory=None if public is None else public.sio.eio.directory)
    feed = Feed(storage, retention_seconds=settings.changes_retention_seconds, enabled=settings.changes_feed)
    service = EntityService(registry, storage, passwords.hash, realtime, feed, keyset)
    tail = FeedTail(feed, registry, queue_url=settings.socketio_queue) if feed.enabled else None
    if tail is not None:
        realtime.live = SocketDelivery(tail, realtime.sio, settle=realtime.settle)
    service.write_hooks.append(auth.on_user_write)
    service.write_guards.append(LastAdminGuard(storage))
    streams = StreamSlots(settings.sse_streams_per_credential) if tail is not None else None
    return Context(settings, storage, registry, service, auth, tail, streams), realtime


class TenantServices:
    """A tenant's services in this process (http/tenancy.TenantHandle): its Context, Socket.IO
    server and upkeep, on its own database beside the public one."""

    def __init__(self, public: Context, doc: Doc, select: Select | None = None,
                 public_realtime: Realtime | None = None) -> None:
        storage = open_database(public.storage, doc["name"])
        auth = public.auth
        self.ctx, self.realtime = _services(public.settings, storage, public.registry, auth.passwords, auth.tokens,
                                            public.service.keyset.derived(str(doc["_id"])), tenant=str(doc["_id"]),
                                            public=public_realtime)
        self.realtime.select = select  # refuses an `auth.tenant` naming another tenant than the handshake
        self.reopenable = reopenable(storage)
        self.last_used = time.monotonic()
        self.in_flight = 0
        self.ctx.service.indexes.where = f" in tenant {doc['name']!r}"
        self.maintenance = Maintenance(self.ctx, self.realtime.stores_reloaded, tenant=True)
        sockets: ASGIApp = socketio.ASGIApp(self.realtime.sio, socketio_path="socket.io")
        self.sockets = sockets if public.settings.polling_allowed else PollingOff(sockets)
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.maintenance.tick()
        # Its tasks, and all they spawn, serve its database (core/scope.py: its feed cursors).
        scoped = contextvars.copy_context()
        scoped.run(database_scope.set, self.ctx.auth.tenant or "")
        runs = [self.maintenance.run(), self.realtime.run()]
        if self.ctx.tail is not None:
            runs.append(self.ctx.tail.run())
        self.tasks = [asyncio.create_task(run, context=scoped) for run in runs]

    def stores_reloaded(self, names: list[str]) -> None:
        self.maintenance.stores_reloaded(names)
        self.realtime.stores_reloaded(names)

    def busy(self) -> bool:
        return bool(self.realtime.sio.eio.sockets)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.realtime.close()
        await self.ctx.checks.close()
        close_database(self.ctx.storage)


def build_tenancy(ctx: Context, realtime: Realtime | None = None) -> Tenancy:
    """The tenants (API.md 12) beside the public database of `ctx` (and its Socket.IO server: a
    connect whose `auth` names a tenant moves to that tenant's server)."""
    tenants = TenantRegistry(ctx.storage, ctx.settings.auth_cache_seconds,
                             functools.partial(database_name, ctx.storage))

    async def select(key: str | None, tag: str | None) -> Realtime | None:
        handle = await tenancy.select_handle(key, tag)
        return None if handle is None else cast(TenantServices, handle).realtime

    tenancy = Tenancy(ctx, tenants, lambda doc: TenantServices(ctx, doc, select, realtime),
                      functools.partial(drop_database, ctx.storage))
    if realtime is not None:
        realtime.select = select
    return tenancy


def create_app(settings: Settings | None = None, *, storage: StorageAPI | None = None) -> ASGIApp:
    """The whole server as one ASGI app. `storage` replaces the database (tests: a failing or slow one)."""
    settings = settings or Settings()
    ctx, realtime = build_context(settings, storage)
    tenancy = build_tenancy(ctx, realtime)
    tenants = tenancy.registry

    def reloaded(names: list[str]) -> None:
        realtime.stores_reloaded(names)
        tenancy.stores_reloaded(names)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        maintenance = Maintenance(ctx, reloaded, registry=tenants)
        await maintenance.tick()
        with contextlib.suppress(StoreError):  # a database down at start: copies resume at the next start
            await tenancy.resume()
        # Start-up objects (modules, schemas, compiled validators) live for good: keep them out
        # of the collector's full passes, which otherwise stall the event loop for tens of ms.
        gc.freeze()
        tasks = [asyncio.create_task(maintenance.run()), asyncio.create_task(realtime.run()),
                 asyncio.create_task(tenancy.run())]
        if ctx.tail is not None:
            tasks.append(asyncio.create_task(ctx.tail.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ctx.checks.close()
            await tenancy.close()
            await ctx.storage.close()

    # Outermost first: CORS sees every answer (413 and other refusals get their CORS headers).
    middleware = [Middleware(Cors, allow_origins=list(settings.allowed_origins), allow_credentials=True,
                             allow_methods=["*"], allow_headers=["*"],
                             expose_headers=["ETag", "Location", "X-Change-Cursor", "X-Next-After"]),
                  Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
                  Middleware(TrailingSlash),
                  Middleware(SecurityHeaders),
                  Middleware(TenantSelect, tenancy=tenancy)]
    app = Starlette(routes=routes(), middleware=middleware, exception_handlers=EXCEPTION_HANDLERS,
                    lifespan=lifespan)
    app.router.redirect_slashes = False  # TrailingSlash serves `/x/` as `/x`
    app.state.ctx = ctx
    app.state.tenancy = tenancy
    app.state.realtime = realtime
    http = HeadWithoutBody(app)
    asgi: ASGIApp = socketio.ASGIApp(realtime.sio, other_asgi_app=http, socketio_path="socket.io")
    asgi = TenantSockets(asgi, tenancy)
    return asgi if settings.polling_allowed else PollingOff(asgi)
