"""Writes to one entity, one at a time in this process.

A write reads the entity, changes it and swaps it in if nobody wrote it meanwhile (service.py),
or runs again. Forty concurrent PATCHes of one entity through one process lost round after
round to each other: each round one won, and past MAX_RETRIES rounds the last ones were 409
("keeps changing"). Queued here, each runs once; the swap still guards against the writes of
other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable


class KeyedLocks:
    """An asyncio lock per key, kept while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
