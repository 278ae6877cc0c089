"""Slow salted password hashes (argon2id), computed off the event loop."""

from __future__ import annotations

import asyncio
import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # Verified against when a login is unknown, so timing does not reveal which logins exist.
        self._dummy = self._hasher.hash("storeengine-dummy-password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


def digest(secret: str) -> str:
    """SHA-256 for high-entropy random secrets (session ids, refresh tokens, API keys):
    enough for 256-bit random values, and cheap enough to look up on every request."""
    return hashlib.sha256(secret.encode()).hexdigest()
