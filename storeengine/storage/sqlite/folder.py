"""The data folder (STORE_DATA_DIR): its checks, its lock, and the connections to its database.

Layout: `storeengine.db` (+ SQLite's `-wal` and `-shm` beside it) and `storeengine.lock`.

One server per folder. `storeengine serve` holds an exclusive `flock` on `storeengine.lock`
for as long as it runs; a second, separate server on the folder fails to take it and stops
with a message naming the holder. The lock dies with its process (kill -9 included), so it is
never stale. `serve --workers N` takes it in the parent and tells its workers
(STORE_DATA_DIR_OWNER = its pid): they share the database through SQLite's own locking (WAL:
readers never block, writers take turns).

Every problem with the folder is found at start and said plainly (a DataDirError, which the
CLI prints before any worker starts, so there is no crash loop): a folder that cannot be made
or written, a database file that is corrupt or another program's, a database written by a
newer storeengine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import IO

from storeengine.core.errors import Unavailable
from storeengine.storage.sqlite import functions
from storeengine.storage.sqlite.schema import APPLICATION_ID, BOOKKEEPING, FORMAT_VERSION

DB_FILE, LOCK_FILE = "storeengine.db", "storeengine.lock"
MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 5000  # a writer of another worker holds the lock at most this long before 503


class DataDirError(Unavailable):
    """The data folder cannot be used; the message says why and what to do."""


def prepare_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise DataDirError(f"STORE_DATA_DIR {folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"STORE_DATA_DIR {folder}: cannot create the folder ({exc.strerror})") from None
    if not folder.is_dir():
        raise DataDirError(f"STORE_DATA_DIR {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataDirError(f"STORE_DATA_DIR {folder} is not writable by this user; the embedded database "
                           "keeps its files there (fix its permissions or choose another folder)")


class FolderLock:
    """An exclusive flock on the folder's lock file, held while the server runs."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> FolderLock:
        try:
            handle = self.path.open("a+")
        except OSError as exc:
            raise DataDirError(f"STORE_DATA_DIR {self.path.parent}: cannot open {LOCK_FILE} ({exc.strerror})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirError(
                f"STORE_DATA_DIR {self.path.parent} is in use by another storeengine server (pid {holder}); "
                "one server owns an embedded database: stop that one, or give this one another STORE_DATA_DIR "
                "(serve --workers N shares one folder between the workers of one server)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def connect(target: str) -> sqlite3.Connection:
    """A connection with our settings. synchronous=NORMAL: in WAL mode a commit has written its
    frames to the WAL file (the OS holds them) before it returns, so it survives the process
    being killed at any moment; only a power loss or OS crash can lose the last commits (never
    corrupt the file), which is MongoDB's own promise with its default write concern
    (journaled every 100 ms)."""
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000, cached_statements=256)
    # mmap: pages are read from the OS's page cache in place, shared by every connection, up to
    # SQLite's default ceiling (2 GB of address space, not of memory).
    for pragma in (f"busy_timeout = {BUSY_TIMEOUT_MS}", "synchronous = NORMAL", "cache_size = -8000",
                   "mmap_size = 2147418112", "temp_store = MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    functions.register(conn)
    return conn


def check_database(conn: sqlite3.Connection, where: str) -> None:
    """Make a new database ours, or check that an existing one is (run once, on the writer)."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DataDirError(f"{where} is not an SQLite database ({exc}): it is corrupt or another program's "
                           "file. Move it away (the server then starts with an empty database) or restore "
                           "a backup") from None
    if app_id != APPLICATION_ID and (app_id != 0 or tables):
        raise DataDirError(f"{where} is another program's SQLite database (application_id {app_id:#x}); "
                           "storeengine will not write into it. Choose another STORE_DATA_DIR") from None
    if version > FORMAT_VERSION:
        raise DataDirError(f"{where} was written by a newer storeengine (format {version}, this one reads "
                           f"{FORMAT_VERSION})")
    try:
        if where != MEMORY:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise DataDirError(f"{where}: cannot switch the database to WAL mode (got {mode!r})")
        if app_id == 0:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        for statement in BOOKKEEPING:
            conn.execute(statement)
    except sqlite3.OperationalError as exc:
        raise DataDirError(f"{where}: cannot write the database ({exc}); check the folder's free space "
                           "and permissions") from None
