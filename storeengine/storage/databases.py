"""Other databases beside the one a server was started on (tenants, API.md 12).

A tenant's database shares what the public one opened: on MongoDB the same client (and so its
connection pool: a tenant is `client[<name>]`, no client per tenant); on the embedded database a
file of its own in STORE_DATA_DIR/tenants/ (SQLite has no databases inside a file; one file per
tenant makes dropping it a file removal and keeps one tenant's writes from queueing behind
another's). Kept outside mongo.py and sqlite/ so that neither module has to change for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

from storeengine.core.errors import BadRequest, StoreError
from storeengine.storage.api import StorageAPI

TENANT_FOLDER = "tenants"
# MongoDB: no `/\. "$*<>:|?` in a database name, and at most 63 bytes.
_MONGO_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
# A tenant's embedded database has one writer and one reader thread (the public one has four readers):
# what it costs a process stays small when a process serves many tenants.
TENANT_READERS = 1


def database_name(storage: StorageAPI, tenant: str) -> str:
    """The name of a tenant's database beside `storage`'s; 400 when it would not be a valid one."""
    from storeengine.storage.mongo import Storage

    if isinstance(storage, Storage):
        name = f"{storage.database_name}-t-{tenant}"
        if not _MONGO_NAME.fullmatch(name):
            raise BadRequest(f"name: the tenant's database name {name!r} would not be a valid MongoDB "
                             "database name (letters, digits, - and _, at most 63 bytes)")
        return name
    return tenant


def open_database(storage: StorageAPI, tenant: str) -> StorageAPI:
    """A tenant's database beside `storage` (created on first write)."""
    from storeengine.storage.mongo import Storage
    from storeengine.storage.sqlite import SqliteStorage
    from storeengine.storage.sqlite.folder import MEMORY

    name = database_name(storage, tenant)
    if isinstance(storage, Storage):
        return Storage(storage.client, name, embedded=False, query_timeout_ms=storage.query_timeout_ms)
    if isinstance(storage, SqliteStorage):
        if storage.target == MEMORY:
            return SqliteStorage(MEMORY, name=f"{storage.database_name}:tenant:{name}",
                                 query_timeout_ms=storage.query_timeout_ms)
        folder = Path(storage.target).parent / TENANT_FOLDER
        folder.mkdir(exist_ok=True)
        target = folder / f"{name}.db"
        return SqliteStorage(str(target), name=f"sqlite:{target}", embedded=storage.embedded,
                             query_timeout_ms=storage.query_timeout_ms, readers=TENANT_READERS)
    raise StoreError("This storage cannot hold tenants")


def reopenable(storage: StorageAPI) -> bool:
    """Whether a tenant's database outlives its handle: not a private in-memory one."""
    from storeengine.storage.sqlite import SqliteStorage
    from storeengine.storage.sqlite.folder import MEMORY

    return not (isinstance(storage, SqliteStorage) and storage.target == MEMORY)


def close_database(storage: StorageAPI) -> None:
    """Release what a tenant's database holds in this process (never the shared MongoDB client)."""
    from storeengine.storage.sqlite import SqliteStorage

    if isinstance(storage, SqliteStorage):
        storage.shut()


async def drop_database(public: StorageAPI, tenant: str, opened: StorageAPI | None = None) -> None:
    """Remove a tenant's database and everything in it. `opened`: this process's handle on it, if
    any, closed first (on the embedded database its threads hold the file open)."""
    from storeengine.storage.mongo import Storage, guard
    from storeengine.storage.sqlite import SqliteStorage
    from storeengine.storage.sqlite.folder import MEMORY

    name = database_name(public, tenant)
    if opened is not None:
        close_database(opened)
    if isinstance(public, Storage):
        async with guard():
            await public.client.drop_database(name)
    elif isinstance(public, SqliteStorage) and public.target != MEMORY:
        target = Path(public.target).parent / TENANT_FOLDER / f"{name}.db"

        def remove() -> None:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{target}{suffix}").unlink()

        await asyncio.to_thread(remove)
