"""Login throttling, kept in MongoDB so every server process shares it.

One document per login counts the attempts of the current window. An attempt is counted
(one atomic `$inc` that returns the new count) BEFORE its password is checked, and checked
only while the count is within the limit: parallel guesses cannot all read a count that
none of them has raised yet. A successful login ends the window."""

from __future__ import annotations

import math
from datetime import timedelta

from storeengine.core.errors import Conflict, TooManyRequests
from storeengine.core.formats import utcnow
from storeengine.storage.api import CollectionAPI


class LoginThrottle:
    def __init__(self, attempts: CollectionAPI, max_failures: int, window_seconds: int) -> None:
        self._attempts = attempts
        self._max = max_failures
        self._window = timedelta(seconds=window_seconds)

    async def ensure_indexes(self) -> None:
        await self._attempts.ensure_index([("expiresAt", 1)], expire_after=0)

    async def attempt(self, login: str) -> None:
        """Count one attempt for `login`; 429 (with the seconds until the window ends) when it
        is past the limit, so the caller must not check the password."""
        now = utcnow()
        # A window that has passed starts over (the TTL index removes it too, but lazily).
        await self._attempts.delete({"_id": login, "expiresAt": {"$lte": now}})
        update = {"$inc": {"attempts": 1}, "$setOnInsert": {"expiresAt": now + self._window}}
        try:
            doc = await self._attempts.increment({"_id": login}, update)
        except Conflict:  # two processes created the document at once: count on the winner's
            doc = await self._attempts.increment({"_id": login}, update)
        if doc["attempts"] > self._max:
            wait = (doc["expiresAt"] - utcnow()).total_seconds()
            raise TooManyRequests("Too many failed logins; try again later", retry_after=max(1, math.ceil(wait)))

    async def succeeded(self, login: str) -> None:
        await self._attempts.delete({"_id": login})
