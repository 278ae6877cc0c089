"""Event-driven re-checks of Socket.IO connections: no per-socket polling.

A connection is re-authenticated only when something it depends on changed: its credential
was revoked or expired, its user was written (deactivated, deleted, groups, roles, password),
or the read rules of a store it subscribed to were reloaded. Local sockets are indexed by
user id, credential id and store, so a change costs O(sockets it touches) and an idle
server costs nothing per socket. Expiry is one loop timer per connection.

Changes made by this process arrive from AuthService at once; changes made by other
processes arrive through a `Bus` (Redis pub/sub, see `storeengine.realtime.authbus`), which makes
this process forget its cached view of them before re-checking.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from storeengine.auth.service import AuthChange, AuthService
from storeengine.core.errors import StoreError, Unauthorized
from storeengine.model.access import Principal

log = logging.getLogger(__name__)
BATCH = 200  # re-checks between yields to the loop, so a burst never stalls it for long
RETRY_SECONDS = 1.0  # database down during a re-check: try that socket again after this
CONNECTING_SECONDS = 0.05  # a socket whose connect handler still runs: try it again after this
EXPIRY_MARGIN = 0.05  # fire just after the credential's own expiry, never before it


class Bus(Protocol):
    """Carries AuthChanges to the other server processes."""

    def publish(self, change: AuthChange) -> None: ...

    async def run(self, on_change: Callable[[AuthChange], None], on_gap: Callable[[], None]) -> None: ...


@dataclass
class _Entry:
    creds: dict[str, str]
    user: str | None
    credential: str | None
    stores: set[str] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None


def _index_add(index: dict[str, set[str]], key: str | None, sid: str) -> None:
    if key is not None:
        index.setdefault(key, set()).add(sid)


def _index_drop(index: dict[str, set[str]], key: str | None, sid: str) -> None:
    if key is not None and key in index:
        index[key].discard(sid)
        if not index[key]:
            del index[key]


class Watch:
    def __init__(self, auth: AuthService, *, refresh: Callable[[str, Principal], Awaitable[bool]],
                 drop: Callable[[str], Awaitable[bool]], bus: Bus | None = None) -> None:
        """`refresh` moves a socket to the rooms of its new principal, `drop` disconnects it;
        either answers False when the socket is still connecting (it is re-checked shortly)."""
        self.auth = auth
        self._refresh, self._drop, self._bus = refresh, drop, bus
        self._entries: dict[str, _Entry] = {}
        self._by_user: dict[str, set[str]] = {}
        self._by_credential: dict[str, set[str]] = {}
        self._by_store: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one flush at a time: a waiting flush sees the running one end
        self.rechecks = 0  # how many re-checks ran (tests and benchmarks read it)
        self.changes = 0  # how many changes arrived: a socket added after one is re-checked
        auth.revocation_listeners.append(self.local_change)

    # --- the index ------------------------------------------------------------------------

    def add(self, sid: str, creds: dict[str, str], principal: Principal, expires_at: float | None, *,
            seen: int | None = None) -> None:
        """Index a connection; `seen` is `changes` from before it was authenticated."""
        credential = principal.credential.id if principal.credential else None
        user = str(principal.user_id) if principal.user_id is not None else None
        entry = _Entry(creds, user, credential)
        self._entries[sid] = entry
        _index_add(self._by_user, user, sid)
        _index_add(self._by_credential, credential, sid)
        self._arm(sid, entry, expires_at)
        if seen is not None and seen != self.changes:
            self._mark((sid,))

    def remove(self, sid: str) -> None:
        entry = self._entries.pop(sid, None)
        if entry is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        _index_drop(self._by_user, entry.user, sid)
        _index_drop(self._by_credential, entry.credential, sid)
        for store in entry.stores:
            _index_drop(self._by_store, store, sid)
        self._dirty.discard(sid)

    def subscribed(self, sid: str, store: str) -> None:
        entry = self._entries.get(sid)
        if entry is not None:
            entry.stores.add(store)
            _index_add(self._by_store, store, sid)

    def unsubscribed(self, sid: str, store: str) -> None:
        entry = self._entries.get(sid)
        if entry is not None:
            entry.stores.discard(store)
            _index_drop(self._by_store, store, sid)

    def _arm(self, sid: str, entry: _Entry, expires_at: float | None) -> None:
        """One timer per connection, at its credential's expiry (loop time, from wall time)."""
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        if expires_at is not None:
            loop = asyncio.get_running_loop()
            when = loop.time() + max(0.0, expires_at - time.time()) + EXPIRY_MARGIN
            entry.timer = loop.call_at(when, self._mark, (sid,))

    # --- what changed -----------------------------------------------------------------------

    def local_change(self, change: AuthChange) -> None:
        """A revocation or user write made by this process: re-check at once, tell the others."""
        self._mark(self._touched(change))
        if self._bus is not None:
            self._bus.publish(change)

    def remote_change(self, change: AuthChange) -> None:
        """Another process's change: forget what we cached about it, then re-check."""
        sids = self._touched(change)
        if sids:
            self.auth.forget(change)
            self._mark(sids)

    def stores_changed(self, names: Iterable[str]) -> None:
        """Schemas were reloaded: their read rules may give other rooms."""
        self._mark({sid for name in names for sid in self._by_store.get(name, ())})

    def recheck_all(self) -> None:
        """Changes may have been missed (the bus was down): re-check every socket once."""
        self.auth.forget(AuthChange())
        self._mark(self._entries)

    def _touched(self, change: AuthChange) -> set[str]:
        self.changes += 1
        sids: set[str] = set()
        if change.user_id is not None:
            sids |= self._by_user.get(change.user_id, set())
        if change.credential_id is not None:
            sids |= self._by_credential.get(change.credential_id, set())
        return sids

    def _mark(self, sids: Iterable[str]) -> None:
        self._dirty.update(sid for sid in sids if sid in self._entries)
        if self._dirty:
            self._wake.set()

    # --- re-checking ------------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._work())]
        if self._bus is not None:
            tasks.append(asyncio.create_task(self._bus.run(self.remote_change, self.recheck_all)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    @property
    def pending(self) -> bool:
        return bool(self._dirty) or self._lock.locked()

    async def flush(self) -> None:
        """Re-check every marked socket now. The event pump awaits this before its next emit,
        so no event published after a change reaches a socket that change excluded."""
        async with self._lock:
            while self._dirty:
                batch, self._dirty = self._dirty, set()
                for n, sid in enumerate(batch, 1):
                    try:
                        await self._recheck(sid)
                    except Exception:  # one bad socket must not stop the others' re-checks
                        log.exception("re-checking socket %s failed", sid)
                    if n % BATCH == 0:
                        await asyncio.sleep(0)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def _recheck(self, sid: str) -> None:
        entry = self._entries.get(sid)
        if entry is None:
            return
        self.rechecks += 1
        try:
            principal = await self.auth.authenticate(**entry.creds)
            expires_at = await self.auth.expires_at(**entry.creds)
        except Unauthorized:
            if await self._drop(sid):
                self.remove(sid)
            else:
                self._later(sid, CONNECTING_SECONDS)
            return
        except StoreError:  # database down: keep the socket, try it again shortly
            self._later(sid, RETRY_SECONDS)  # (not now: the flush would spin while the database is down)
            return
        if sid in self._entries:
            self._arm(sid, entry, expires_at)
            if not await self._refresh(sid, principal):
                self._later(sid, CONNECTING_SECONDS)

    def _later(self, sid: str, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self._mark, (sid,))
