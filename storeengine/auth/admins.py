"""The last active admin (API.md 9): never deleted, deactivated or stripped of `admin` (409).

A write that takes an active admin out (a delete, `active: false`, `roles` without `admin`)
first takes one lock document (`_locks`, `_id: "admins"`: an insert that the database's unique
`_id` lets exactly one writer win), then counts the other active admins, then writes, then
releases the lock. Such writes are therefore serialised across every process sharing the
database, and each one counts with every earlier one finished: two admins demoting each other at
once get one 200 and one 409, never zero admins. Writes that add admins need no lock: they
only raise the count.

A lock left by a process that died is taken over after LOCK_SECONDS by a compare-and-swap on its
`at`; its owner's late release then matches nothing. A writer that waits longer than
WAIT_SECONDS for the lock gets 409 (try again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from storeengine.core.errors import Conflict
from storeengine.core.formats import utcnow
from storeengine.model.access import ADMIN_ROLE, Principal
from storeengine.model.schema import StoreSchema
from storeengine.storage.api import StorageAPI

LOCK_ID = "admins"
LOCK_SECONDS = 30.0
WAIT_SECONDS = 5.0


def active_admin(user: Mapping[str, Any] | None) -> bool:
    return user is not None and ADMIN_ROLE in (user.get("roles") or ()) and user.get("active", True) is not False


class LastAdminGuard:
    """A write guard of the entity service (`EntityService.write_guards`)."""

    def __init__(self, storage: StorageAPI) -> None:
        self.users = storage.collection("users")
        self.locks = storage.collection("_locks")

    @contextlib.asynccontextmanager
    async def __call__(self, principal: Principal, store: StoreSchema, before: Mapping[str, Any] | None,
                       after: Mapping[str, Any] | None) -> AsyncIterator[None]:
        if store.name != "users" or not active_admin(before) or active_admin(after):
            yield
            return
        assert before is not None
        held = await self._lock()
        try:
            others = await self.users.count({"_id": {"$ne": before["_id"]}, "roles": ADMIN_ROLE,
                                             "active": {"$ne": False}})
            if others == 0:
                raise Conflict("The last active admin cannot be deleted, deactivated or lose the admin role")
            yield
        finally:
            await self.locks.delete({"_id": LOCK_ID, "at": held})

    async def _lock(self) -> datetime:
        give_up = time.monotonic() + WAIT_SECONDS
        while True:
            now = utcnow()
            try:
                await self.locks.insert({"_id": LOCK_ID, "at": now})
                return now
            except Conflict:  # held: by a live writer (wait), or by one that died (take it over)
                current = await self.locks.find_one({"_id": LOCK_ID})
                stale = current is not None and now - current["at"] > timedelta(seconds=LOCK_SECONDS)
                if stale and current is not None and await self.locks.update_if(
                        {"_id": LOCK_ID, "at": current["at"]}, {"$set": {"at": now}}):
                    return now
            if time.monotonic() > give_up:
                raise Conflict("Another change of administrators is in progress; try again")
            await asyncio.sleep(0.02)
