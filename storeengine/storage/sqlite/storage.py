"""The embedded database: SQLite files in STORE_DATA_DIR (storage/api.py StorageAPI)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storeengine.settings import Settings
from storeengine.storage.sqlite import schema
from storeengine.storage.sqlite.codec import DATE, encode_value
from storeengine.storage.sqlite.collection import SqliteCollection
from storeengine.storage.sqlite.folder import (
    DB_FILE,
    MEMORY,
    DataDirError,
    FolderLock,
    check_database,
    connect,
    prepare_folder,
)
from storeengine.storage.sqlite.runner import Runner

log = logging.getLogger("storeengine.storage.sqlite")
READERS = 4  # reader threads (and connections); they wait on SQLite with the GIL released
TTL_SWEEP_SECONDS = 60.0  # as MongoDB's TTL monitor: expired documents go within a minute


class SqliteStorage:
    """`embedded` is True when this process alone uses the database (its memory may then hold
    counters, see the feed); False for the workers of `serve --workers N`, which share it."""

    def __init__(self, target: str, *, name: str, embedded: bool = True, query_timeout_ms: int = 10000,
                 lock: FolderLock | None = None, readers: int = READERS,
                 ttl_sweep_seconds: float = TTL_SWEEP_SECONDS) -> None:
        self.target = target
        self.database_name = name
        self.embedded = embedded
        self.query_timeout_ms = query_timeout_ms
        self._lock = lock
        memory = target == MEMORY
        self.runner = Runner(lambda: connect(target), 0 if memory else readers, inline_writes=True)
        self._collections: dict[str, SqliteCollection] = {}
        self._ttl_every = ttl_sweep_seconds
        self._next_sweep = 0.0
        try:
            self.runner.run_now(lambda conn: check_database(conn, target))
        except sqlite3.DatabaseError as exc:  # unreadable before our check could run (connecting)
            self.shut()
            raise DataDirError(f"{target} is not an SQLite database ({exc}): it is corrupt or another program's "
                               "file. Move it away (the server then starts with an empty database) or restore "
                               "a backup") from None
        except sqlite3.Error as exc:
            self.shut()
            raise DataDirError(f"{target}: cannot open the database ({exc}); check the folder's free space and "
                               "permissions") from None
        except BaseException:
            self.shut()
            raise
        self.runner.after_write = self._sweep_if_due
        self.runner.on_abort = self._forget
        self.runner.upkeep_due = lambda: time.monotonic() >= self._next_sweep

    @classmethod
    def open(cls, settings: Settings) -> SqliteStorage:
        """The embedded database of these settings: STORE_DATA_DIR, locked for this server."""
        if settings.data_dir == MEMORY:
            log.warning("STORE_DATA_DIR=:memory: the embedded database (SQLite) lives in memory; "
                        "its data is lost when the process exits")
            return cls(MEMORY, name=f"sqlite:memory:{os.getpid()}:{id(settings)}",
                       query_timeout_ms=settings.query_timeout_ms)
        folder = Path(settings.data_dir).resolve()
        prepare_folder(folder)
        owner = settings.data_dir_owner
        shared = owner is not None and owner == os.getppid()  # a worker of `serve --workers N`
        lock = None if shared or owner == os.getpid() else FolderLock(folder).acquire()
        try:
            storage = cls(str(folder / DB_FILE), name=f"sqlite:{folder}", embedded=not shared,
                          query_timeout_ms=settings.query_timeout_ms, lock=lock, readers=READERS)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if not shared:
            log.info("embedded database: SQLite in %s (STORE_DATA_DIR); data persists across restarts", folder)
        return storage

    @classmethod
    def claim(cls, settings: Settings) -> FolderLock | None:
        """For `storeengine serve`: lock STORE_DATA_DIR for this process and check its database
        (so that every problem is reported before a worker starts). The caller keeps the lock for
        its lifetime and passes STORE_DATA_DIR_OWNER=<its pid> to the app and its workers."""
        if settings.data_dir == MEMORY:
            return None
        folder = Path(settings.data_dir).resolve()
        prepare_folder(folder)
        lock = FolderLock(folder).acquire()
        try:
            cls(str(folder / DB_FILE), name=f"sqlite:{folder}", readers=0).shut()
        except BaseException:
            lock.release()
            raise
        return lock

    def collection(self, name: str) -> SqliteCollection:
        coll = self._collections.get(name)
        if coll is None:
            coll = self._collections[name] = SqliteCollection(self, name)
        return coll

    async def ping(self) -> bool:
        return not self.runner.closed

    async def close(self) -> None:
        self.shut()

    def shut(self) -> None:
        """Close at once, from any thread or none (the seam's `close` is a coroutine)."""
        if not self.runner.closed:
            self.runner.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _forget(self) -> None:
        for coll in list(self._collections.values()):
            coll.forget()

    def _sweep_if_due(self, conn: sqlite3.Connection) -> None:
        """TTL indexes: delete what expired (on the writer thread, after a write, at most once a
        `ttl_sweep_seconds`); MongoDB's TTL monitor is as lazy (once a minute)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._ttl_every
        utcnow = datetime.now(UTC).replace(tzinfo=None)
        for collection, field, seconds in schema.ttl_indexes(conn):
            bound = encode_value(utcnow - timedelta(seconds=seconds))
            try:
                conn.execute(schema.expire_statement(collection, field), (DATE, bound))
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith("no such table"):
                    raise
