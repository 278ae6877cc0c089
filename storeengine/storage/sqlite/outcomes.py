"""SQLite's errors as the StoreErrors the storage seam raises, and a call's outcome as its
caller gets it (a result, or a StoreError): only StoreErrors leave the storage, as mongo.guard()
does for MongoDB."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable
from typing import Any, TypeVar

from storeengine.core.errors import BadRequest, Conflict, StoreError, Unavailable
from storeengine.storage.sqlite.group import Outcome

log = logging.getLogger("storeengine.storage.sqlite")
T = TypeVar("T")


def translate(exc: sqlite3.Error) -> StoreError:
    """SQLite's errors as StoreErrors: a unique index -> 409; interrupted, busy, full disk or I/O
    -> 503; a value SQLite cannot bind -> 400; anything else (corruption) -> 500, logged."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    name = getattr(exc, "sqlite_errorname", "")
    if isinstance(exc, sqlite3.IntegrityError) or code == sqlite3.SQLITE_CONSTRAINT:
        return Conflict("An entity with the same unique value exists")
    if code == sqlite3.SQLITE_INTERRUPT:
        return Unavailable("The query took too long")
    if code == sqlite3.SQLITE_FULL:
        log.error("the embedded database cannot grow: %s", exc)
        return Unavailable("The database is full (no space left on the disk)")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
                sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM):
        log.warning("embedded database unavailable: %s (%s)", exc, name)
        return Unavailable()
    if isinstance(exc, sqlite3.InterfaceError | sqlite3.ProgrammingError) and "bind" in str(exc):
        return BadRequest("A value cannot be stored")
    if "parser stack overflow" in str(exc) or "too large" in str(exc):
        # SQLite's parser nests at most ~100 levels: about 9 nested `$elemMatch` compile past it.
        return BadRequest("The filter is too complex for the embedded database (nested $elemMatch: at most 8)")
    log.error("embedded database error: %s (%s)", exc, name)
    return StoreError()


def explained(exc: Exception) -> StoreError | None:
    """A job's exception as the StoreError its caller gets (only StoreErrors leave the storage,
    as mongo.guard() does); None for a StoreError, which goes as it is."""
    if isinstance(exc, sqlite3.Error):
        return translate(exc)
    if isinstance(exc, OverflowError | UnicodeEncodeError):
        return BadRequest("A value cannot be stored (integers must fit in signed 64 bits)")
    if isinstance(exc, StoreError):
        return None
    log.exception("embedded database call failed")
    return StoreError()


def result(outcome: Outcome) -> Any:
    """A call's result, or its error raised as a StoreError (as `guarded`)."""
    done, value = outcome
    if done:
        return value
    error = explained(value)
    raise value if error is None else error


def settle(waiter: asyncio.Future[Any], outcome: Outcome) -> None:
    """A grouped write's caller gets its outcome (see `result`)."""
    if waiter.done():  # its caller went away
        return
    try:
        waiter.set_result(result(outcome))
    except Exception as exc:
        waiter.set_exception(exc)


async def guarded(waiting: Awaitable[T]) -> T:
    try:
        return await waiting
    except Exception as exc:
        error = explained(exc)
        if error is None:
            raise
        raise error from None
