"""Tenants at run time (API.md 12): which database serves a request, and the tenants open here.

`Tenancy` keeps one `TenantHandle` per tenant this process has served (its Context: services
on the tenant's database, opened on first use by the composition root's `opener`), runs
provisioning copies, and deletes. `TenantSelect` (plain ASGI middleware) puts the chosen
tenant's Context in the request's scope, where `context(conn)` finds it:

- `Api-Key: <tenant key>` names the tenant; unknown, rotated or deleted -> 401.
- else a credential issued in a tenant names it (the JWT's `tid`, or the `<tenant>.` prefix of a
  session id, API key or refresh token); a deleted tenant's: the public database, where it is 401.
- a credential of another database than the one chosen is unknown there: 401 on authentication.
- a tenant that is not `ready` -> 503 with Retry-After, before authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from storeengine.auth import credentials, provision
from storeengine.auth.tenants import DELETING, PROVISIONING, READY, TenantRegistry
from storeengine.core.errors import Invalid, StoreError, Unauthorized, Unavailable
from storeengine.core.scope import database_scope
from storeengine.core.types import Doc
from storeengine.http.context import SCOPE_KEY, Context
from storeengine.http.responses import error_response

log = logging.getLogger(__name__)
RETRY_AFTER = "2"  # seconds a client is told to wait for a tenant being provisioned
SWEEP_SECONDS = 5.0  # how often open tenants deleted by another process are closed here


class TenantHandle(Protocol):
    """A tenant's services in this process (built by app.py, which knows every layer)."""

    ctx: Context
    sockets: ASGIApp  # its Socket.IO server (its own rooms), served at /socket.io for its handshakes
    reopenable: bool  # False: closing it would lose its data (a private in-memory database)
    last_used: float  # time.monotonic() of its last selection
    in_flight: int  # requests (and WebSocket connections) being served with it

    def busy(self) -> bool:
        """Sockets are connected to it."""
        ...

    async def start(self) -> None:
        """Make its indexes and start its background tasks."""
        ...

    async def close(self) -> None: ...

    def stores_reloaded(self, names: list[str]) -> None: ...


class Tenancy:
    def __init__(self, public: Context, registry: TenantRegistry, opener: Callable[[Doc], TenantHandle],
                 drop: Callable[[str], Awaitable[None]]) -> None:
        self.public = public
        self.registry = registry
        # Given by app.py (which knows the storage backends): build a tenant's services on its
        # database; drop a tenant's database.
        self._opener, self._drop = opener, drop
        # Open tenants, least recently used first (a process that served many keeps only these).
        self.handles: dict[str, TenantHandle] = {}
        self.idle_seconds = public.settings.tenant_idle_seconds
        self.open_max = public.settings.tenants_open_max
        self._closing: set[asyncio.Task[None]] = set()
        self._opening: dict[str, asyncio.Lock] = {}
        self.copies: dict[str, asyncio.Task[None]] = {}

    # --- which tenant --------------------------------------------------------------------

    async def handle(self, doc: Doc) -> TenantHandle:
        """The tenant's handle, opened (indexes made, background tasks started) on first use."""
        key = str(doc["_id"])
        found = self.handles.get(key)
        if found is None:
            lock = self._opening.setdefault(key, asyncio.Lock())
            async with lock:
                found = self.handles.get(key)
                if found is None:
                    found = self._opener(doc)
                    try:
                        await found.start()
                    except BaseException:
                        await found.close()
                        raise
                    self.handles[key] = found
                    self._close_beyond_cap()
            self._opening.pop(key, None)
        # No await from here to the caller's use (in_flight, a socket): an idle sweep cannot close it between.
        found.last_used = time.monotonic()
        self.handles[key] = self.handles.pop(key)  # the most recently used last
        return found

    async def select(self, api_key: str | None, tag: str | None) -> Context | None:
        """The Context of a request (None: the public one); raises 401 or 503."""
        handle = await self.select_handle(api_key, tag)
        return None if handle is None else handle.ctx

    async def select_handle(self, api_key: str | None, tag: str | None) -> TenantHandle | None:
        # A credential of another database than the one chosen is refused by that database's
        # authentication (unknown there; a JWT's `tid` is checked), not here: a sign-in, which
        # uses no credential, must not fail for a stale cookie the browser still sends.
        if api_key is not None:
            doc = await self.registry.by_key(api_key)
            if doc is None:
                raise Unauthorized("Unknown tenant key")
        elif tag is not None:
            doc = await self.registry.by_id(tag)
            if doc is None:
                return None  # a deleted tenant's credential: refused by the public database
        else:
            return None
        if doc["status"] != READY:
            if doc["status"] == DELETING:
                raise Unauthorized("The tenant is being deleted")
            raise Unavailable("The tenant is being provisioned; try again shortly")
        return await self.handle(doc)

    def tag_of(self, found: Found) -> str | None:
        """The tenant the request's credential was issued in (the one `credentials.read` picks)."""
        authorization = found.authorization
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            try:
                return self.public.auth.tokens.decode(token.strip()).tenant
            except StoreError:
                return None  # authentication answers 401 for it
        secret = found.x_api_key or found.sid()
        return credentials.tenant_of(secret) if secret else None

    # --- creating and deleting -------------------------------------------------------------

    async def create(self, body: Doc) -> tuple[Doc, str]:
        name = self.registry.check_name(body.get("name"))
        copy = body.get("copy", True)
        if not isinstance(copy, bool):
            raise Invalid(fields={"copy": "must be a boolean"})
        provision.check_admin(body.get("admin"))
        doc, key = await self.registry.create(name, PROVISIONING)
        try:
            handle = await self.handle(doc)
            await provision.create_admin(handle.ctx.service, body["admin"])
        except BaseException:
            await self._discard(doc)
            raise
        if copy:
            self.copies[str(doc["_id"])] = asyncio.create_task(self._copy(doc, handle))
        else:
            await self.registry.set_status(doc["_id"], READY, unless=DELETING)
            doc["status"] = READY
        return doc, key

    async def resume(self) -> None:
        """At start: go on with the copies that a stopped process left unfinished. Entities copied
        already are skipped (their `_id` is taken), so a copy that another process is still running
        is only done twice over, never duplicated."""
        for doc in await self.registry.tenants.find({"status": PROVISIONING}):
            key = str(doc["_id"])
            if key not in self.copies:
                log.warning("tenant %r: resuming its copy of the public data", doc["name"])
                self.copies[key] = asyncio.create_task(self._copy(doc, await self.handle(doc)))

    async def _copy(self, doc: Doc, handle: TenantHandle) -> None:
        async def still_wanted() -> bool:
            current = await self.registry.tenants.find_one({"_id": doc["_id"]}, {"status": 1})
            return current is not None and current["status"] == PROVISIONING

        try:
            copied = await provision.copy_public(self.public.service, handle.ctx.service, still_wanted)
            if copied >= 0:
                await self.registry.set_status(doc["_id"], READY, unless=DELETING)
                log.info("tenant %r ready: %d entities copied", doc["name"], copied)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("copying the public data into tenant %r failed; delete it and create it again",
                          doc["name"])
        finally:
            self.copies.pop(str(doc["_id"]), None)

    async def delete(self, name: str) -> None:
        doc = await self.registry.get(name)
        await self.registry.set_status(doc["_id"], DELETING)
        await self._discard(doc)

    async def _discard(self, doc: Doc) -> None:
        """Stop its copy, close it here, drop its database, then forget it: its name is free again
        only once nothing of it is left."""
        key = str(doc["_id"])
        copy = self.copies.pop(key, None)
        if copy is not None:
            copy.cancel()
            await asyncio.gather(copy, return_exceptions=True)
        handle = self.handles.pop(key, None)
        if handle is not None:
            await handle.close()
        await self._drop(doc["name"])
        await self.registry.remove(doc)

    # --- upkeep ------------------------------------------------------------------------------

    def stores_reloaded(self, names: list[str]) -> None:
        for handle in self.handles.values():
            handle.stores_reloaded(names)

    def _idle(self, key: str, handle: TenantHandle) -> bool:
        return (handle.reopenable and handle.in_flight == 0 and not handle.busy() and key not in self.copies
                and key not in self._opening)

    def _close_beyond_cap(self) -> None:
        """Past `open_max` open tenants, close the least recently used idle ones (busy ones stay:
        the cap can be passed while more tenants than it are in use at once)."""
        excess = len(self.handles) - self.open_max
        for key in [k for k, h in self.handles.items() if self._idle(k, h)][:max(excess, 0)]:
            self._close_later(key)

    def close_idle(self, now: float | None = None) -> int:
        """Close the tenants idle (no request, no socket) for `idle_seconds`; the number closed.
        They reopen on their next request."""
        now = time.monotonic() if now is None else now
        idle = [k for k, h in self.handles.items() if now - h.last_used >= self.idle_seconds and self._idle(k, h)]
        for key in idle:
            self._close_later(key)
        return len(idle)

    def _close_later(self, key: str) -> None:
        # Out of the table now (a request arriving meanwhile opens it afresh), closed in the background.
        handle = self.handles.pop(key)
        task = asyncio.create_task(handle.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def run(self) -> None:
        """Close the tenants that another process deleted (the registry's cache is ≤ 5 s old), and
        those idle for long."""
        while True:
            await asyncio.sleep(min(SWEEP_SECONDS, self.idle_seconds))
            self.close_idle()
            for key in list(self.handles):
                with contextlib.suppress(StoreError):
                    doc = await self.registry.by_id(key)
                    if (doc is None or doc["status"] == DELETING) and key not in self.copies:
                        handle = self.handles.pop(key, None)
                        if handle is not None:
                            await handle.close()

    async def close(self) -> None:
        for copy in list(self.copies.values()):
            copy.cancel()
        await asyncio.gather(*self.copies.values(), return_exceptions=True)
        for handle in list(self.handles.values()):
            await handle.close()
        self.handles.clear()
        await asyncio.gather(*self._closing, return_exceptions=True)


class Found:
    """The few headers that choose a database, read in one pass over the raw headers (this runs
    on every request: Starlette's Headers would copy and decode them all)."""

    __slots__ = ("api_key", "authorization", "cookie", "x_api_key")

    def __init__(self, scope: Scope) -> None:
        self.api_key = self.authorization = self.cookie = self.x_api_key = None
        for name, value in scope["headers"]:
            if name == b"api-key":
                self.api_key = value.decode("latin-1")
            elif name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                self.x_api_key = value.decode("latin-1")
            elif name == b"cookie":
                self.cookie = value.decode("latin-1")

    def sid(self) -> str | None:
        return None if self.cookie is None else cookie_parser(self.cookie).get("sid")  # as Request.cookies

    @property
    def anything(self) -> bool:
        return not (self.api_key is None and self.authorization is None and self.x_api_key is None
                    and self.cookie is None)


class TenantSockets:
    """Hands a Socket.IO handshake (and the later polling requests of its session, which carry the
    same header or cookie) to the Socket.IO server of the tenant its `Api-Key` header or credential
    cookie names; every other one to the public server (`app`)."""

    def __init__(self, app: ASGIApp, tenancy: Tenancy, path: str = "/socket.io") -> None:
        self.app, self.tenancy, self.path = app, tenancy, path

    def __getattr__(self, name: str) -> object:
        # Transparent otherwise: `app.other_asgi_app` still reaches the Starlette app behind it.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(self.path):
            await self.app(scope, receive, send)
            return
        found = Found(scope)
        if not found.anything:
            await self.app(scope, receive, send)
            return
        try:
            handle = await self.tenancy.select_handle(found.api_key, self.tenancy.tag_of(found))
        except StoreError as exc:
            await _refuse(exc, scope, receive, send)
            return
        if handle is None:
            await self.app(scope, receive, send)
            return
        with _serving(handle):  # a WebSocket: for as long as it is open
            await handle.sockets(scope, receive, send)


@contextlib.contextmanager
def _serving(handle: TenantHandle) -> Iterator[None]:
    """While a request or a socket is served in a tenant: its database is the scope's (logs and
    background work name it), and it counts as in use, so it is not closed as idle."""
    token = database_scope.set(handle.ctx.auth.tenant or "")
    handle.in_flight += 1
    try:
        yield
    finally:
        handle.in_flight -= 1
        database_scope.reset(token)


async def _refuse(exc: StoreError, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
        return
    refusal = error_response(exc)
    if exc.status == 503:
        refusal.headers["Retry-After"] = RETRY_AFTER
    await refusal(scope, receive, send)


class TenantSelect:
    """Serves each /api/ request with the database its Api-Key or credential names."""

    def __init__(self, app: ASGIApp, tenancy: Tenancy) -> None:
        self.app = app
        self.tenancy = tenancy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        found = Found(scope)
        try:
            handle = None if not found.anything else await self.tenancy.select_handle(
                found.api_key, self.tenancy.tag_of(found))
        except StoreError as exc:
            await _refuse(exc, scope, receive, send)
            return
        if handle is None:
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = handle.ctx
        with _serving(handle):  # an SSE stream: for its whole life
            await self.app(scope, receive, send)
