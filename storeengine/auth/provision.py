"""Filling a new tenant's database (API.md 12): its admin, then a copy of the public data.

The copy takes the public database's groups and every store's entities as they are stored (same
`_id`s and every field, access fields and dates included), never users, sessions, keys or the
feed, and writes each entity as one `create` in the tenant's feed. It reads and writes in batches
of BATCH and yields to the event loop every YIELD_EVERY entities, so other clients are served
throughout, whatever the size of the copy; `still_wanted` is asked between batches, so a tenant
deleted meanwhile stops its copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from storeengine.auth.bootstrap import create_user
from storeengine.core.documents import CARRIED
from storeengine.core.errors import Invalid, StoreError
from storeengine.core.scope import background_work
from storeengine.core.types import Doc
from storeengine.model.access import SYSTEM
from storeengine.model.schema import StoreSchema
from storeengine.store.service import EntityService

log = logging.getLogger(__name__)
BATCH = 500
# Entities copied between two yields to the event loop: on the embedded database a short write runs
# on the loop's own thread (storage/sqlite/runner.py) without suspending, so a batch copied without
# yielding held every other client for its whole length (a loop stall of 100-400 ms per batch).
YIELD_EVERY = 20
NOT_COPIED = frozenset({"users"})  # and everything that is not a store: sessions, keys, the feed


def check_admin(admin: object) -> None:
    if not isinstance(admin, dict) or not isinstance(admin.get("login"), str) \
            or not isinstance(admin.get("password"), str):
        raise Invalid(fields={"admin": 'is required: {"login": "...", "password": "..."}'})


async def create_admin(tenant: EntityService, admin: Doc) -> None:
    """The tenant's only user, role admin; 400 (fields under `admin.`) when it is not valid."""
    check_admin(admin)
    try:
        await create_user(tenant, admin["login"], admin["password"], admin=True, group_names=[])
    except Invalid as exc:
        raise Invalid(fields={f"admin.{k}": v for k, v in (exc.fields or {}).items()}) from None


async def copy_public(public: EntityService, tenant: EntityService,
                      still_wanted: Callable[[], Awaitable[bool]], batch: int = BATCH) -> int:
    """Copy every store's entities (groups first); the number copied, or -1 if stopped."""
    token = background_work.set(True)  # nobody waits for these writes: off the event loop's thread
    try:
        return await _copy_stores(public, tenant, still_wanted, batch)
    finally:
        background_work.reset(token)


async def _copy_stores(public: EntityService, tenant: EntityService,
                       still_wanted: Callable[[], Awaitable[bool]], batch: int) -> int:
    copied = 0
    stores = sorted((s for s in public.registry.all() if s.name not in NOT_COPIED), key=lambda s: s.name != "groups")
    for store in stores:
        last = None
        while True:
            if not await still_wanted():
                return -1
            query: Doc = {} if last is None else {"_id": {"$gt": last}}
            docs = await public.storage.collection(store.name).find(query, sort=[("_id", 1)], limit=batch)
            if not docs:
                break
            for n, doc in enumerate(docs, 1):
                await copy_entity(tenant, store, doc)
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            copied += len(docs)
            last = docs[-1]["_id"]
            await asyncio.sleep(0)  # a batch read from the cache of a reader thread could run back to back
    return copied


async def copy_entity(tenant: EntityService, store: StoreSchema, doc: Doc) -> None:
    """One entity written as it is, carrying its `create` in the tenant's feed (not the change it
    carries in the public database)."""
    try:
        await tenant.writes.create(SYSTEM, store, {k: v for k, v in doc.items() if k != CARRIED})
    except StoreError as exc:
        if exc.status != 409:
            raise
        # already there: a copy resumed after a restart
