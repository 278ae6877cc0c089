"""Group commit: the short writes that arrive in one turn of the event loop share one transaction.

A commit costs more than the write it ends: each one appends every page it changed to the WAL (an
entity's row and its ~12 index entries: ~8 pages), and the commit's own bookkeeping. Measured on
this machine with the standard library's sqlite3, WAL, synchronous=NORMAL and the engine's six
indexes: 71 us per insert, each its own transaction, against 11 us per insert in one transaction.
So the writes that are ready together (32 POSTs in flight) run one after another inside one
`BEGIN IMMEDIATE ... COMMIT`, each in a savepoint of its own: a write that fails (a duplicate, a
lost compare-and-swap) is undone alone and fails alone, the others commit. Each caller hears back
only after the commit: an acknowledged write is as durable as before.

If the commit itself fails (a full disk, an I/O error), or an error ends the whole transaction,
every write of the group fails with it, and `on_abort` tells the caller's state to forget what
those writes recorded in memory (collection.py: tables made, array paths noted).

`transaction` is every write's own transaction: inside a group's, a savepoint.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

Outcome = tuple[bool, Any]  # (True, the write's result) or (False, the exception it raised)
Write = Callable[[sqlite3.Connection], Any]


def _busy(exc: sqlite3.Error) -> bool:
    """Another connection (another process sharing the folder) holds SQLite's write lock."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def run_group(conn: sqlite3.Connection, writes: Sequence[Write], on_abort: Callable[[], None]) -> list[Outcome] | None:
    """Each write's outcome, in order; None when the write lock was taken (nothing ran, nothing
    changed: a lone write is one statement or a `BEGIN IMMEDIATE` transaction, which fail first)."""
    if len(writes) == 1:  # alone: as it is, in its own transaction (no savepoint to pay for)
        try:
            return [(True, writes[0](conn))]
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                return [(False, exc)]
            if conn.in_transaction:  # BUSY past a transaction's start (not ours to expect): undone
                conn.execute("ROLLBACK")
            return None
        except Exception as exc:
            return [(False, exc)]
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _busy(exc):
            return None
        return [(False, exc)] * len(writes)
    try:
        outcomes = [_one(conn, write) for write in writes]
        conn.execute("COMMIT")
        return outcomes
    except sqlite3.Error as exc:  # the transaction as a whole: nothing of the group stays
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        on_abort()
        return [(False, exc)] * len(writes)


def _one(conn: sqlite3.Connection, write: Write) -> Outcome:
    """A write in its savepoint (`transaction` inside the group's): undone alone when it fails; an
    error that ended the whole transaction (SQLite rolls it back on a full disk, an I/O error) is
    the group's (raised)."""
    try:
        with transaction(conn):
            result = write(conn)
    except Exception as exc:
        if isinstance(exc, sqlite3.Error) and not conn.in_transaction:
            raise
        return False, exc
    return True, result


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock at once, so a read-modify-write inside cannot race
    another writer (another process sharing the folder included). Inside a group's transaction
    (group.py, which holds the lock already), a savepoint: undone alone, committed with the group."""
    if conn.in_transaction:
        conn.execute("SAVEPOINT tx")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO tx")
                conn.execute("RELEASE tx")
            raise
        conn.execute("RELEASE tx")
        return
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
