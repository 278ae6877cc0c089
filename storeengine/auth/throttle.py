"""Failed-login throttling, kept in MongoDB so every server process shares it."""

from __future__ import annotations

import math
from datetime import timedelta

from storeengine.errors import TooManyRequests
from storeengine.formats import utcnow
from storeengine.storage_api import CollectionAPI


class LoginThrottle:
    def __init__(self, failures: CollectionAPI, max_failures: int, window_seconds: int) -> None:
        self._failures = failures
        self._max = max_failures
        self._window = timedelta(seconds=window_seconds)

    async def ensure_indexes(self) -> None:
        await self._failures.ensure_index([("login", 1), ("at", 1)])
        await self._failures.ensure_index([("expiresAt", 1)], expire_after=0)

    async def check(self, login: str) -> None:
        """429 with the seconds until the oldest failure in the window leaves it."""
        since = utcnow() - self._window
        recent = await self._failures.find({"login": login, "at": {"$gte": since}}, sort=[("at", -1)], limit=self._max)
        if len(recent) >= self._max:
            oldest = recent[-1]["at"]
            wait = (oldest + self._window - utcnow()).total_seconds()
            raise TooManyRequests("Too many failed logins; try again later", retry_after=max(1, math.ceil(wait)))

    async def failed(self, login: str) -> None:
        now = utcnow()
        await self._failures.insert({"login": login, "at": now, "expiresAt": now + self._window})

    async def succeeded(self, login: str) -> None:
        await self._failures.delete({"login": login})
