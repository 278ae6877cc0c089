"""Group commit (storage/sqlite/group.py): short writes ready together share one transaction, each
failing alone, none acknowledged before the commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storeengine.core.errors import Conflict
from storeengine.settings import Settings
from storeengine.storage.sqlite import SqliteStorage
from storeengine.storage.sqlite import runner as runner_module
from storeengine.storage.sqlite.group import run_group


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    opened = SqliteStorage.open(Settings(data_dir=str(tmp_path)))  # type: ignore[call-arg]
    await opened.runner.write(lambda conn: None)  # the first write's upkeep (TTL sweep) runs on the thread
    yield opened
    await opened.close()


def _in_transaction(conn: sqlite3.Connection) -> bool:
    return conn.in_transaction


async def test_short_writes_ready_together_share_one_transaction(storage: SqliteStorage) -> None:
    alone = await storage.runner.write(_in_transaction, short=True)
    together = await asyncio.gather(*(storage.runner.write(_in_transaction, short=True) for _ in range(5)))
    assert alone is False  # a lone write is its own transaction, as before
    assert together == [True] * 5  # one BEGIN IMMEDIATE ... COMMIT around the five


async def test_a_burst_of_writes_is_committed_in_bounded_groups(storage: SqliteStorage,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A group runs on the event loop without a break: 500 writes at once go as groups of at most
    GROUP_MAX, with the loop free between them."""
    sizes: list[int] = []

    def counted(conn: sqlite3.Connection, writes: list[object], on_abort: object) -> object:
        sizes.append(len(writes))
        return run_group(conn, writes, on_abort)  # type: ignore[arg-type]

    monkeypatch.setattr(runner_module, "run_group", counted)
    notes = storage.collection("notes")
    await notes.insert({"_id": -1})
    sizes.clear()
    await asyncio.gather(*(notes.insert({"_id": n}) for n in range(500)))
    assert sum(sizes) == 500 and max(sizes) == runner_module.GROUP_MAX
    assert await notes.count({}) == 501


async def test_a_write_that_fails_in_a_group_fails_alone(storage: SqliteStorage) -> None:
    notes = storage.collection("notes")
    await notes.insert({"_id": 1})
    answers = await asyncio.gather(notes.insert({"_id": 2, "tags": ["a"]}), notes.insert({"_id": 1}),
                                   notes.insert({"_id": 3, "n": 2**70}), notes.insert({"_id": 4}),
                                   return_exceptions=True)
    assert answers[0] is None and answers[3] is None
    assert isinstance(answers[1], Conflict)
    assert type(answers[2]).__name__ == "BadRequest"
    assert sorted(d["_id"] for d in await notes.find({})) == [1, 2, 4]
    assert [d["_id"] for d in await notes.find({"tags": "a"})] == [2]  # its array path was recorded


async def test_a_group_undone_as_a_whole_fails_every_write_and_is_forgotten(storage: SqliteStorage) -> None:
    """An error that ends the whole transaction (SQLite rolls it back on a full disk, an I/O error)
    takes every write of the group with it: none is acknowledged, and what they recorded in
    memory (a table made, an array path) is forgotten, so the next write records it again."""
    notes = storage.collection("notes")

    def transaction_lost(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    answers = await asyncio.gather(notes.insert({"_id": 1, "tags": ["a"]}),
                                   storage.runner.write(transaction_lost, short=True),
                                   notes.insert({"_id": 2}), return_exceptions=True)
    assert all(isinstance(answer, Exception) for answer in answers)
    assert await notes.count({}) == 0
    await notes.insert({"_id": 3, "tags": ["a"]})
    assert [d["_id"] for d in await notes.find({"tags": "a"})] == [3]
    shapes = await storage.runner.read(lambda conn: conn.execute("SELECT path FROM _se_paths WHERE coll = 'notes'")
                                       .fetchall(), 1000)
    assert shapes == [("tags",)]


async def test_a_write_whose_caller_left_before_its_group_ran_is_not_run(storage: SqliteStorage) -> None:
    ran: list[int] = []

    def write(n: int) -> object:
        return lambda conn: ran.append(n)

    first = asyncio.ensure_future(storage.runner.write(write(1), short=True))
    second = asyncio.ensure_future(storage.runner.write(write(2), short=True))
    await asyncio.sleep(0)  # both queued for the next group
    first.cancel()
    await second
    assert ran == [2]


def test_a_group_that_finds_the_write_lock_taken_runs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    ran: list[int] = []
    other.execute("BEGIN IMMEDIATE")
    insert = lambda c: (ran.append(1), c.execute("INSERT INTO t VALUES (1)"))  # noqa: E731
    assert run_group(conn, [insert, insert], lambda: None) is None
    assert run_group(conn, [insert], lambda: None) is None
    assert ran == [1]  # the lone write ran up to its statement, which changed nothing
    other.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    conn.close()
    other.close()
