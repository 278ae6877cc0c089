"""Every SQLite call off the event loop: one writer thread, a few reader threads.

Each thread owns one connection (SQLite connections are not shared between threads here).
Writes go to the single writer thread, so this process never contends with itself for the
write lock, and a write transaction never waits behind a slow read. Reads go to the reader
threads, each with its own connection: in WAL mode a reader sees the database as of its
statement's start (every transaction committed before it, none half-done) and neither blocks
nor is blocked by the writer. So a slow list does not hold up a GET by id or a POST (with one
thread it would, for up to STORE_QUERY_TIMEOUT_MS), and a write that returned is visible to the
next read on any thread. An in-memory database is private to its connection, so there one
thread does everything. Measured (bench/embedded_readers.py, 10,000 entities, one client listing
10,000 in a loop while four GET by id and one POSTs): GET 153 req/s, p99 131 ms and POST 26 req/s,
p99 155 ms with the reader threads, against 73 req/s, p99 716 ms and 9 req/s, p99 1,031 ms with
one thread for every call (with lists of 1,000: GET 284 against 223 req/s, POST 37 against 28).

Short writes (one insert, a write pinned to one `_id`: a POST's entity and its change) run on
the event loop's own thread, on the writer's connection (a lock says who holds it), in groups:
the short writes of one turn of the loop share one transaction (group.py; measured below).
Handing a write to a thread costs more than the write: the thread must win the GIL from a busy
event loop, once to start and again after every statement, and each time can wait the
interpreter's switch interval (5 ms). Measured with bench/vs_pocketbase.py's POST at 32
connections, one process, on a loaded 2-core machine: 470 -> 573 req/s with a 0.5 ms switch
interval alone; 357 -> 1,033 req/s with the writes inline (main's server beside, same run; CPU
per POST 0.85 -> 0.74 ms). Not in memory (one thread does everything there). When the writer
thread holds the connection (a checkpoint, a long write), the group awaits its release (the
thread wakes the loop) and then runs here: queued behind the thread instead, a write kept the
thread busy, and the next writes found the connection taken in turn and queued too (a convoy: a
third of a process's POSTs went through the thread under load). With both, on a quiet machine
(main's server beside, same run): POST 1,470 -> 2,712 req/s, CPU per POST 0.72 -> 0.37 ms.

Another process may hold SQLite's write lock (the workers of `serve --workers N` share the
database): the event loop must never sleep in SQLite's busy handler for it. So the writer's
connection has no busy timeout while the loop may use it: a group that finds the lock taken
fails at its first statement with SQLITE_BUSY, before it changed anything (its `BEGIN
IMMEDIATE`; a lone short write is one statement, or a `BEGIN IMMEDIATE` transaction). It tries
again after a pause (BUSY_PAUSES: the loop serves others meanwhile; another worker's short write
holds the lock for a fraction of a millisecond), and past them goes to the writer thread, which
waits for the lock with the full busy timeout (then 503). Straight to the thread (before), a
tenth of the writes of `--workers 2` under POST load did, and the thread held the connection
while SQLite's busy handler slept (1, 2, 5 ms...): this process's other writes waited behind it.

The checkpoints (copying the WAL into the database file, with an fsync) run on the writer thread,
every CHECKPOINT_EVERY writes, never on the event loop; holding the writer's connection, so that no
write of this process lands while one runs. RESTART: it also takes SQLite's write lock (from the
other workers) and waits, at most CHECKPOINT_WAIT_MS, for the readers still on the WAL, so that the
next write starts the WAL again from its beginning. (PASSIVE, on a reader thread beside the writes,
a checkpoint was never complete under load, and the WAL grew by every write: 110 MB after seeding
3,000 entities; on the writer thread still 19 MB, and 56 MB with two workers: the next write only
starts the WAL again if no reader is on it at that instant.) While a checkpoint is due, calls do
not run inline: the event loop, holding the GIL, would take the connection back after every write
before the writer thread woke, and the checkpoint would wait while the WAL grows.

A read runs with a deadline: SQLite calls the progress handler every few thousand virtual
machine steps, and past the deadline the handler interrupts the statement (SQLITE_INTERRUPT:
the statement stops, nothing is left running) -> 503. Writes have none: abandoning a write
half-way buys nothing, and writes here are short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from storeengine.core.errors import StoreError, Unavailable
from storeengine.core.scope import background_work
from storeengine.storage.sqlite.group import Outcome, Write, run_group
from storeengine.storage.sqlite.outcomes import guarded, result, settle

log = logging.getLogger("storeengine.storage.sqlite")
T = TypeVar("T")
PROGRESS_STEPS = 1000  # VM steps between deadline checks (a few microseconds of work)
# Writes between two checkpoints when writes run on the event loop: the WAL's size between two is
# about this many writes x ~9 pages (an entity and its ~12 index entries): 100 -> ~4 MB, as SQLite's
# own default (1,000 pages); 500 let it grow to 19 MB.
CHECKPOINT_EVERY = 100
CHECKPOINT_WAIT_MS = 50  # a checkpoint's wait for the write lock and for readers (this process's writes queue)
# Seconds before each new attempt of an inline write that found another process's write lock (0: after
# the loop's other ready work), about 0.1 s in all; then the writer thread waits for the lock.
BUSY_PAUSES = (0, 0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.02, 0.02, 0.02)
# Writes in one group at most: a group runs on the event loop without a break (~30-50 us a write),
# so a burst of writes is committed in several groups with the loop serving others in between.
GROUP_MAX = 64


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Runner:
    """`inline_writes`: short writes (and reads) may run on the caller's thread (see above); needs
    reader threads."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], readers: int, inline_writes: bool = False) -> None:
        self._connect = connect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[sqlite3.Connection, bool]] = []  # (connection, on a reader thread)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="storeengine-sqlite-write")
        self._readers = (ThreadPoolExecutor(readers, thread_name_prefix="storeengine-sqlite-read")
                         if readers > 0 else self._writer)
        self._inline = inline_writes and readers > 0
        self._write_lock = threading.Lock()  # who uses the writer's connection: its thread or the loop
        self._write_conn: sqlite3.Connection | None = None
        self._busy_ms = 0  # the writer's busy timeout on its thread (none on the event loop)
        self.busy_fallbacks = 0  # inline calls sent to a thread: another process held the write lock
        self._writes = 0
        self._checkpointing = False
        self._free_waiters: list[asyncio.Future[None]] = []  # short writes waiting for the writer thread
        self._group: list[tuple[Write, asyncio.Future[Any]]] = []  # short writes for the next commit (group.py)
        self._committer: asyncio.Task[None] | None = None
        self.on_abort: Callable[[], None] = lambda: None  # a group's transaction failed as a whole (group.py)
        self.after_write: Callable[[sqlite3.Connection], None] | None = None
        self.upkeep_due: Callable[[], bool] = lambda: self.after_write is not None  # may it have work to do?
        self.closed = False

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (made on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.set_progress_handler(self._past_deadline, PROGRESS_STEPS)
            self._local.conn = conn
            reader = threading.current_thread().name.startswith("storeengine-sqlite-read")
            if not reader and self._inline:
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run on the writer thread (_count_write)
                self._busy_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
                conn.execute("PRAGMA busy_timeout = 0")  # the event loop never waits for the lock (see above)
                self._write_conn = conn
            with self._lock:
                self._connections.append((conn, reader))
        return conn

    def _past_deadline(self) -> int:
        deadline: float | None = getattr(self._local, "deadline", None)
        return 1 if deadline is not None and time.monotonic() > deadline else 0

    def check_deadline(self) -> None:
        """Between rows of a long answer (decoding runs in Python, past SQLite's handler)."""
        if self._past_deadline():
            raise Unavailable("The query took too long")

    def run_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the writer thread, waiting for it here (start-up and tests: blocks the caller;
        SQLite's own errors are the caller's to explain)."""
        def job() -> T:
            with self._on_thread() as conn:
                return fn(conn)

        return self._writer.submit(job).result()

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The writer's connection on the writer thread; on release, the short writes waiting for
        it are woken (on the event loop: they run there)."""
        with self._write_lock:
            yield
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            waiters, self._free_waiters = self._free_waiters, []
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                waiter.get_loop().call_soon_threadsafe(_release, waiter)

    async def _writer_free(self) -> None:
        """Until the writer thread gives the connection back (at once if it did meanwhile)."""
        waiter = asyncio.get_running_loop().create_future()
        with self._lock:
            self._free_waiters.append(waiter)
        if not (self._write_lock.locked() or self._checkpointing) or self.closed:  # released before we queued
            _release(waiter)
        await waiter

    @contextlib.contextmanager
    def _on_thread(self) -> Iterator[sqlite3.Connection]:
        """The writer's connection on the writer thread, held (`_held`), with its busy timeout, which
        the event loop's calls go without."""
        with self._held():
            conn = self.connection()
            if conn is not self._write_conn or not self._busy_ms:
                yield conn
                return
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            try:
                yield conn
            finally:
                conn.execute("PRAGMA busy_timeout = 0")

    async def read(self, fn: Callable[[sqlite3.Connection], T], timeout_ms: int, *, short: bool = False) -> T:
        """`fn` on a reader thread, or here on the writer's connection when it is `short` (a few
        rows found by `_id`: a GET by id, a reference check, a page's referenced entities; see
        collection.SHORT_ROWS) and that connection is free this instant: the hop to a thread and
        back cost more than the read (the same reasoning as the inline writes above). Either way
        with the deadline."""
        inline = self._write_conn
        if short and inline is not None and not self.closed and not self._checkpointing \
                and self._write_lock.acquire(blocking=False):
            self._local.deadline = time.monotonic() + timeout_ms / 1000
            try:
                found = run_group(inline, [fn], lambda: None)  # a group of one: as it is
            finally:
                self._local.deadline = None
                self._write_lock.release()
            if found is not None:
                return result(found[0])  # type: ignore[no-any-return]
            self.busy_fallbacks += 1  # BUSY (another process's lock, a rare case for a read)

        def job() -> T:
            self._local.deadline = time.monotonic() + timeout_ms / 1000
            try:
                return fn(self.connection())
            finally:
                self._local.deadline = None

        return await self._submit(self._readers, job)

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, short: bool = False) -> T:
        """`fn` on the writer's connection: on the writer thread, or here when it is `short` (one
        row), in a group with the other short writes of this turn of the loop (group.py)."""
        if short and self._write_conn is not None and not self.closed and not self.upkeep_due() \
                and not background_work.get():
            waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            self._group.append((fn, waiter))
            if self._committer is None:
                self._committer = asyncio.get_running_loop().create_task(self._commit_groups())
            return await waiter

        def job() -> T:
            with self._on_thread() as conn:
                result = fn(conn)
                if self.after_write is not None:
                    try:
                        self.after_write(conn)
                    except sqlite3.Error as exc:  # upkeep (TTL) failing must not fail the write that ran
                        log.warning("embedded database upkeep failed: %s", exc)
            self._count_write()
            return result

        return await self._submit(self._writer, job)

    async def _commit_groups(self) -> None:
        """The short writes waiting, a group at a time, here on the event loop (see above), until
        none is left; each caller gets its own outcome."""
        conn = self._write_conn
        assert conn is not None
        pauses, group = iter(BUSY_PAUSES), []
        try:
            while self._group:
                await asyncio.sleep(0)  # the writes of this turn of the loop join the group
                if self.closed:
                    raise Unavailable("The database is closed")
                if self._checkpointing or not self._write_lock.acquire(blocking=False):
                    await self._writer_free()  # the writer thread has it (see above)
                    continue
                group, self._group = self._group[:GROUP_MAX], self._group[GROUP_MAX:]
                group = [(fn, w) for fn, w in group if not w.done()]
                try:
                    outcomes = run_group(conn, [fn for fn, _ in group], self.on_abort)
                finally:
                    self._write_lock.release()
                if outcomes is None:  # another process writes (see above)
                    pause = next(pauses, None)
                    if pause is not None:
                        self._group[:0] = group
                        await asyncio.sleep(pause)
                        continue
                    self.busy_fallbacks += 1
                    outcomes = await self._group_on_thread([fn for fn, _ in group])
                pauses = iter(BUSY_PAUSES)
                self._count_write(len(group))
                for (_, waiter), outcome in zip(group, outcomes, strict=True):
                    settle(waiter, outcome)
        except BaseException as exc:
            for _, waiter in group + self._group:
                settle(waiter, (False, exc if isinstance(exc, Exception) else Unavailable("The database is closed")))
            self._group = []
            if not isinstance(exc, Exception):
                raise
        finally:
            self._committer = None

    async def _group_on_thread(self, writes: list[Write]) -> list[Outcome]:
        """A group on the writer thread, which waits for another process's write lock with the busy
        timeout (then 503 for each)."""
        def job() -> list[Outcome]:
            with self._on_thread() as conn:
                outcomes = run_group(conn, writes, self.on_abort)
            return outcomes if outcomes is not None else [(False, Unavailable())] * len(writes)

        try:
            return await self._submit(self._writer, job)
        except StoreError as exc:
            return [(False, exc)] * len(writes)

    @property
    def checkpointing(self) -> bool:
        """A checkpoint is queued or running on the writer thread."""
        return self._checkpointing

    def _count_write(self, writes: int = 1) -> None:
        """Every CHECKPOINT_EVERY writes, a checkpoint on the writer thread (see above; what it
        cannot copy yet, the next one does)."""
        if not self._inline:
            return
        with self._lock:
            self._writes += writes
            if self._writes < CHECKPOINT_EVERY or self._checkpointing or self.closed:
                return
            self._writes, self._checkpointing = 0, True

        def checkpoint() -> None:
            try:
                with self._held():
                    conn = self.connection()
                    conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
                    try:  # past the wait it copies what it can (SQLite answers busy, not an error)
                        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                    finally:
                        conn.execute("PRAGMA busy_timeout = 0")
            except sqlite3.Error as exc:
                if not self.closed:
                    log.warning("embedded database checkpoint failed: %s", exc)
            finally:
                self._checkpointing = False
                self._wake()

        try:
            self._writer.submit(checkpoint)
        except RuntimeError:  # shut down meanwhile
            self._checkpointing = False
            self._wake()

    async def _submit(self, pool: ThreadPoolExecutor, job: Callable[[], T]) -> T:
        if self.closed:
            raise Unavailable("The database is closed")
        try:
            future = pool.submit(job)
        except RuntimeError:  # shut down meanwhile
            raise Unavailable("The database is closed") from None
        try:
            return await guarded(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and task is not None and not task.cancelling():
                raise Unavailable("The database is closed") from None  # dropped by close(), not by our caller
            raise

    def close(self) -> None:
        """Stop reads in progress, let the current write finish, close every connection (the
        last one to close checkpoints the WAL into the database file)."""
        self.closed = True
        with self._lock:
            connections = list(self._connections)
        for conn, reader in connections:
            if reader:
                conn.interrupt()
        self._readers.shutdown(wait=True, cancel_futures=True)
        self._writer.shutdown(wait=True, cancel_futures=True)
        self._wake()  # short writes waiting for the thread: they find the database closed
        for conn, _ in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
