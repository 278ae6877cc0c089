"""The embedded database's folder and faults, in-process: persistence, the one-server lock, a
corrupt or foreign file, an unusable folder, a full disk, reads past the query timeout (which
never hold up other reads), TTL indexes, and the runner's cancellation."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from storeengine.core.errors import BadRequest, Conflict, Unavailable
from storeengine.core.formats import utcnow
from storeengine.core.scope import background_work
from storeengine.settings import Settings
from storeengine.storage.sqlite import DataDirError, SqliteStorage
from storeengine.storage.sqlite import runner as runner_module
from storeengine.storage.sqlite.folder import DB_FILE, LOCK_FILE
from storeengine.storage.sqlite.runner import Runner


def settings(folder: Path, **extra: object) -> Settings:
    return Settings(data_dir=str(folder), **extra)  # type: ignore[arg-type]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def test_the_data_outlives_the_storage_and_the_folder_is_made(folder: Path) -> None:
    first = SqliteStorage.open(settings(folder))
    assert first.embedded and (folder / DB_FILE).exists() and (folder / LOCK_FILE).exists()
    await first.collection("notes").insert({"_id": 1, "at": utcnow().replace(microsecond=0)})
    await first.collection("notes").ensure_index([("at", 1)])
    first.shut()
    again = SqliteStorage.open(settings(folder))
    try:
        assert [d["_id"] for d in await again.collection("notes").find({})] == [1]
    finally:
        again.shut()


async def test_a_second_storage_on_a_held_folder_is_refused_with_the_holder(folder: Path) -> None:
    first = SqliteStorage.open(settings(folder))
    try:
        with pytest.raises(DataDirError) as refused:
            SqliteStorage.open(settings(folder))
        assert f"pid {os.getpid()}" in refused.value.message and "another storeengine server" in refused.value.message
    finally:
        first.shut()
    SqliteStorage.open(settings(folder)).shut()  # released on close


def test_the_workers_of_the_holder_share_the_folder(folder: Path) -> None:
    """`serve --workers N`: the parent holds the lock, its workers (children) open without it."""
    claimed = SqliteStorage.claim(settings(folder))
    assert claimed is not None
    try:
        worker = SqliteStorage.open(settings(folder, data_dir_owner=os.getppid()))  # as a child of the holder
        assert not worker.embedded  # shared: the feed counts in the database
        worker.shut()
        own = SqliteStorage.open(settings(folder, data_dir_owner=os.getpid()))  # `serve` itself, one process
        assert own.embedded
        own.shut()
        with pytest.raises(DataDirError):  # anyone else: refused
            SqliteStorage.open(settings(folder, data_dir_owner=1))
    finally:
        claimed.release()


def test_a_corrupt_database_file_is_a_clear_error(folder: Path) -> None:
    folder.mkdir()
    (folder / DB_FILE).write_bytes(b"this is not a database, " * 200)
    with pytest.raises(DataDirError) as refused:
        SqliteStorage.open(settings(folder))
    assert "not an SQLite database" in refused.value.message and str(folder) in refused.value.message
    SqliteStorage.open(settings(folder / "other")).shut()  # and the lock was released


def test_another_program_s_database_is_refused(folder: Path) -> None:
    folder.mkdir()
    with sqlite3.connect(folder / DB_FILE) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.close()
    with pytest.raises(DataDirError) as refused:
        SqliteStorage.open(settings(folder))
    assert "another program's SQLite database" in refused.value.message


def test_a_folder_that_is_a_file_or_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataDirError) as refused:
        SqliteStorage.open(settings(tmp_path / "file"))
    assert "not a folder" in refused.value.message
    with pytest.raises(DataDirError) as refused:
        SqliteStorage.open(settings(tmp_path / "file" / "below"))
    assert "cannot create the folder" in refused.value.message


def test_a_folder_that_is_not_writable_is_a_clear_error(folder: Path) -> None:
    folder.mkdir()
    folder.chmod(0o500)
    target = folder
    if os.access(folder, os.W_OK):  # root writes into any folder, but not into a process's /proc entry
        target = Path("/proc/1")
        if os.access(target, os.W_OK):
            pytest.skip("no folder this user cannot write into")
    try:
        with pytest.raises(DataDirError) as refused:
            SqliteStorage.open(settings(target))
        assert "not writable" in refused.value.message and str(target) in refused.value.message
    finally:
        folder.chmod(0o700)


async def test_a_full_disk_makes_writes_503_and_reads_keep_working(folder: Path) -> None:
    storage = SqliteStorage.open(settings(folder))
    try:
        notes = storage.collection("notes")
        await notes.insert({"_id": 0, "text": "kept"})
        pages = storage.runner.run_now(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
        storage.runner.run_now(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages + 2}"))
        with pytest.raises(Unavailable) as full:
            for n in range(1, 50):
                await notes.insert({"_id": n, "text": "x" * 20_000})
        assert "full" in full.value.message
        assert (await notes.find_one({"_id": 0})) == {"_id": 0, "text": "kept"}
    finally:
        storage.shut()


async def _slow_collection(storage: SqliteStorage, count: int) -> None:
    await storage.collection("big").insert_many([{"_id": n, "o": [{"x": n % 97, "y": "z" * 50}]} for n in range(count)])


async def test_a_read_past_the_timeout_is_interrupted_and_never_holds_up_other_reads(folder: Path) -> None:
    storage = SqliteStorage.open(settings(folder, query_timeout_ms=200))
    try:
        await _slow_collection(storage, 150_000)
        await storage.collection("small").insert({"_id": 1})
        # A sort on a sub-field through arrays computes a key per document (in Python): seconds.
        slow = asyncio.create_task(storage.collection("big").find({}, None, [("o.x", 1)], 0, 10))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        for _ in range(5):
            assert await storage.collection("small").find_one({"_id": 1}) == {"_id": 1}
        assert time.monotonic() - started < 0.25  # served by another reader thread meanwhile
        with pytest.raises(Unavailable) as late:
            await slow
        assert "too long" in late.value.message
        await storage.collection("small").insert({"_id": 2})  # and the writer was never blocked
    finally:
        storage.shut()


async def test_ttl_indexes_remove_what_expired(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "ttl.db"), name="ttl", ttl_sweep_seconds=0)
    try:
        sessions = storage.collection("_sessions")
        await sessions.ensure_index([("expiresAt", 1)], expire_after=0)
        now = utcnow()
        await sessions.insert({"_id": "old", "expiresAt": now - timedelta(seconds=1)})
        await sessions.insert({"_id": "new", "expiresAt": now + timedelta(hours=1)})
        await sessions.insert({"_id": "odd", "expiresAt": "not a date"})  # MongoDB leaves these too
        assert sorted(d["_id"] for d in await sessions.find({})) == ["new", "odd"]
    finally:
        storage.shut()


async def test_a_closed_storage_answers_503(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "c.db"), name="c")
    storage.shut()
    assert not await storage.ping()
    with pytest.raises(Unavailable):
        await storage.collection("x").find_one({})


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    runner = Runner(lambda: sqlite3.connect(tmp_path / "r.db", check_same_thread=False), readers=1)
    yield runner
    runner.close()


async def test_a_read_within_its_deadline_returns_its_result(runner: Runner) -> None:
    assert await runner.read(lambda conn: 42, timeout_ms=1000) == 42


@pytest.mark.parametrize("reading", [True, False])
async def test_cancelling_a_caller_whose_job_just_finished_still_cancels_it(runner: Runner, reading: bool) -> None:
    """The job completes and the caller is cancelled in the same loop turn (as at shutdown, when
    the maintenance task is cancelled mid-read): the cancellation must not be lost (asyncio.wait_for
    in Python 3.11 dropped it, and the server never finished shutting down)."""
    release, finished = threading.Event(), threading.Event()

    def job(conn: sqlite3.Connection) -> int:
        release.wait(5)
        finished.set()
        return 1

    task = asyncio.create_task(runner.read(job, 10_000) if reading else runner.write(job))
    await asyncio.sleep(0.05)  # the task now waits on the thread
    release.set()
    assert finished.wait(5)
    time.sleep(0.05)  # noqa: ASYNC251 (on purpose: the job's result is queued to the blocked loop)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def inline_runner(tmp_path: Path) -> Iterator[Runner]:
    runner = Runner(lambda: sqlite3.connect(tmp_path / "w.db", check_same_thread=False), readers=1,
                    inline_writes=True)
    runner.run_now(lambda conn: conn.execute("PRAGMA journal_mode = WAL"))  # the writer's connection exists
    yield runner
    runner.close()


def _thread(conn: sqlite3.Connection) -> str:
    return threading.current_thread().name


async def test_a_short_write_runs_on_the_callers_thread_when_the_writer_is_idle(inline_runner: Runner) -> None:
    assert await inline_runner.write(_thread, short=True) == threading.current_thread().name
    assert (await inline_runner.write(_thread)).startswith("storeengine-sqlite-write")


async def test_a_short_write_of_background_work_runs_on_the_writer_thread(inline_runner: Runner) -> None:
    """Work no client waits for (core/scope.background_work: a tenant's copy) never writes on the
    event loop's thread, where a write held up by the disk would hold every client up."""
    token = background_work.set(True)
    try:
        assert (await inline_runner.write(_thread, short=True)).startswith("storeengine-sqlite-write")
    finally:
        background_work.reset(token)
    assert await inline_runner.write(_thread, short=True) == threading.current_thread().name


async def test_a_short_write_waits_for_a_write_in_progress_then_runs_here(inline_runner: Runner) -> None:
    """Queued for the thread instead (before), it kept the thread holding the connection, and the
    writes after it found the connection taken and queued in turn: a convoy under load."""
    release = threading.Event()
    order: list[str] = []

    def long_write(conn: sqlite3.Connection) -> str:
        release.wait(5)
        order.append("long")
        return _thread(conn)

    def short_write(conn: sqlite3.Connection) -> str:
        order.append("short")
        return _thread(conn)

    first = asyncio.create_task(inline_runner.write(long_write))
    await asyncio.sleep(0.05)  # the writer thread holds the connection now
    second = asyncio.create_task(inline_runner.write(short_write, short=True))
    await asyncio.sleep(0.05)
    assert not second.done()  # neither run beside the thread nor blocking the loop: waiting
    release.set()
    assert (await first).startswith("storeengine-sqlite-write")
    assert await asyncio.wait_for(second, 5) == threading.current_thread().name
    assert order == ["long", "short"]


async def test_a_short_write_waits_for_a_checkpoint_then_runs_here(inline_runner: Runner,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "CHECKPOINT_EVERY", 1)
    release = threading.Event()
    blocker = inline_runner._writer.submit(release.wait, 5)  # the checkpoint queues behind this
    await inline_runner.write(_thread, short=True)  # one write: a checkpoint is due
    assert inline_runner.checkpointing
    waiting = asyncio.create_task(inline_runner.write(_thread, short=True))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    release.set()
    blocker.result(5)
    assert await asyncio.wait_for(waiting, 5) == threading.current_thread().name


async def test_a_short_read_runs_on_the_callers_thread_when_the_writer_is_idle(inline_runner: Runner) -> None:
    assert await inline_runner.read(_thread, 1000, short=True) == threading.current_thread().name
    assert (await inline_runner.read(_thread, 1000)).startswith("storeengine-sqlite-read")
    release = threading.Event()

    def long_write(conn: sqlite3.Connection) -> str:
        release.wait(5)
        return _thread(conn)

    writing = asyncio.create_task(inline_runner.write(long_write))
    await asyncio.sleep(0.05)  # the writer thread holds its connection: a short read goes to a reader
    assert (await inline_runner.read(_thread, 1000, short=True)).startswith("storeengine-sqlite-read")
    release.set()
    await writing


async def test_a_short_read_keeps_its_deadline(inline_runner: Runner) -> None:
    def endless(conn: sqlite3.Connection) -> object:
        return conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                            "SELECT count(*) FROM n").fetchone()

    with pytest.raises(Unavailable):
        await inline_runner.read(endless, 100, short=True)
    assert await inline_runner.read(_thread, 1000, short=True) == threading.current_thread().name


async def test_a_short_write_fails_as_any_write(folder: Path) -> None:
    storage = SqliteStorage.open(settings(folder))
    try:
        notes = storage.collection("notes")
        await notes.insert({"_id": 1})
        with pytest.raises(Conflict):
            await notes.insert({"_id": 1})
        with pytest.raises(BadRequest):
            await notes.insert({"_id": 2, "n": 2**70})
        assert await notes.count({}) == 1
    finally:
        await storage.close()


async def test_writes_on_the_event_loop_leave_checkpoints_to_a_reader(folder: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With SQLite's automatic checkpoints off on the writer's connection, the WAL stays bounded
    only if the reader's checkpoints run (without them: 300 x 4 KB and more)."""
    monkeypatch.setattr(runner_module, "CHECKPOINT_EVERY", 20)
    storage = SqliteStorage.open(settings(folder))
    try:
        notes = storage.collection("notes")
        await notes.insert({"_id": -1})
        for n in range(300):
            await notes.insert({"_id": n, "text": "x" * 4000})
            for _ in range(500):  # the checkpoint runs on its thread meanwhile (an fsync: may take a while)
                if not storage.runner.checkpointing:
                    break
                await asyncio.sleep(0.01)
        wal = folder / (DB_FILE + "-wal")
        assert wal.stat().st_size < 300 * 4000 / 2
        assert await notes.count({}) == 301
    finally:
        await storage.close()


async def test_a_short_write_never_waits_on_the_loop_for_another_process_s_lock(folder: Path) -> None:
    """A worker of `serve --workers N` writes inline like one process, but when another process
    holds SQLite's write lock its write goes to the writer thread (which waits for the lock), never
    sleeping on the event loop in SQLite's busy handler (before: the loop stood still until the
    other process committed, up to the 5 s busy timeout)."""
    claimed = SqliteStorage.claim(settings(folder))
    assert claimed is not None
    worker = SqliteStorage.open(settings(folder, data_dir_owner=os.getppid()))  # a worker, sharing the folder
    other = sqlite3.connect(folder / DB_FILE, isolation_level=None, check_same_thread=False)  # another worker
    try:
        notes = worker.collection("notes")
        await notes.insert({"_id": 0})
        assert await worker.runner.write(lambda conn: threading.current_thread().name, short=True) == \
            threading.current_thread().name  # a worker's short writes run inline
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
        ticks: list[float] = []

        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)
        await notes.insert({"_id": 1})  # waits for the other worker's commit, on the writer thread
        ticker.cancel()
        assert worker.runner.busy_fallbacks == 1
        assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.25  # the loop kept running
        assert sorted(d["_id"] for d in await notes.find({})) == [0, 1]
        # The thread gave the connection back without a busy timeout: the next one is inline again.
        assert await worker.runner.write(lambda conn: conn.execute("PRAGMA busy_timeout").fetchone()[0],
                                         short=True) == 0
    finally:
        other.close()
        worker.shut()
        claimed.release()


async def test_a_short_write_finding_another_process_s_lock_briefly_tries_again_on_the_loop(folder: Path) -> None:
    """Another worker's short write holds SQLite's lock for well under a millisecond: the write tries
    again after a pause, inline, instead of going to the writer thread, whose busy handler sleeps
    1, 2, 5 ms... holding the connection while this process's other writes wait (before)."""
    claimed = SqliteStorage.claim(settings(folder))
    assert claimed is not None
    worker = SqliteStorage.open(settings(folder, data_dir_owner=os.getppid()))
    other = sqlite3.connect(folder / DB_FILE, isolation_level=None, check_same_thread=False)
    try:
        await worker.runner.write(lambda conn: conn.execute("CREATE TABLE scratch (a)"))

        def insert(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO scratch VALUES (1)")
            return _thread(conn)

        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.005, lambda: other.execute("COMMIT")).start()
        assert await worker.runner.write(insert, short=True) == threading.current_thread().name
        assert worker.runner.busy_fallbacks == 0
        assert other.execute("SELECT count(*) FROM scratch").fetchone()[0] == 1
    finally:
        other.close()
        worker.shut()
        claimed.release()


async def test_the_wal_stays_bounded_while_writes_keep_coming(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints hold the writer's connection: with writes landing beside them (a reader thread's
    checkpoint, before), a checkpoint was never complete, the WAL never started again from its
    beginning and grew by every write (110 MB after 3,000 POSTs)."""
    monkeypatch.setattr(runner_module, "CHECKPOINT_EVERY", 20)
    storage = SqliteStorage.open(settings(folder))
    try:
        notes = storage.collection("notes")
        await notes.insert({"_id": -1})

        async def writer(k: int) -> None:
            for n in range(20):
                await notes.insert({"_id": k * 100 + n, "text": "x" * 4000})
                await asyncio.sleep(0)

        await asyncio.gather(*(writer(k) for k in range(30)))  # 600 writes, never waiting for a checkpoint
        wal = folder / (DB_FILE + "-wal")
        assert wal.stat().st_size < 600 * 4000  # the data written: 600 x 4 KB (before: 9.9 MB)
        assert await notes.count({}) == 601
    finally:
        await storage.close()


async def test_an_array_path_first_met_by_a_refused_insert_is_still_recorded_by_the_next(tmp_path: Path) -> None:
    """The paths that may hold arrays are kept in the database (a restart, or another worker, reads
    them). A refused insert (a duplicate) rolls its record back: what this process remembers must
    go with it, or the next insert with that array is not recorded, and after a restart
    `{tags: "x"}` no longer finds `tags: ["x", "y"]`."""
    path = str(tmp_path / "shapes.db")
    storage = SqliteStorage(path, name="shapes")
    try:
        coll = storage.collection("things")
        await coll.ensure_index([("email", 1)], unique=True)
        await coll.insert({"email": "a@x"})
        with pytest.raises(Conflict):
            await coll.insert({"email": "a@x", "tags": ["x", "y"]})
        await coll.insert({"email": "b@x", "tags": ["x", "y"]})
        assert [d["email"] for d in await coll.find({"tags": "x"})] == ["b@x"]
    finally:
        storage.shut()
    again = SqliteStorage(path, name="shapes")
    try:
        assert [d["email"] for d in await again.collection("things").find({"tags": "x"})] == ["b@x"]
    finally:
        again.shut()
