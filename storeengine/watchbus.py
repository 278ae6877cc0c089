"""Carries AuthChanges between server processes over a small Redis pub/sub channel of our own
(beside python-socketio's, on the same STORE_SOCKETIO_QUEUE server).

Pub/sub delivers in milliseconds but keeps nothing: after the subscription breaks, this
process may have missed changes, so it re-checks every socket once (`on_gap`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from storeengine.auth.service import AuthChange

log = logging.getLogger("storeengine.watch")
CHANNEL = "storeengine-auth"
RETRY_SECONDS = 1.0


class RedisBus:
    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self._url, self._channel = url, channel
        self._origin = uuid.uuid4().hex  # our own messages come back: skip them
        self._outbox: asyncio.Queue[AuthChange] = asyncio.Queue()

    def publish(self, change: AuthChange) -> None:
        self._outbox.put_nowait(change)

    async def run(self, on_change: Callable[[AuthChange], None], on_gap: Callable[[], None]) -> None:
        client: aioredis.Redis = aioredis.Redis.from_url(self._url)
        try:
            await asyncio.gather(self._send(client), self._listen(client, on_change, on_gap))
        finally:
            await client.aclose()

    async def _send(self, client: aioredis.Redis) -> None:
        while True:
            change = await self._outbox.get()
            message = json.dumps({"o": self._origin, "u": change.user_id, "c": change.credential_id})
            while True:
                try:
                    await client.publish(self._channel, message)
                    break
                except (RedisError, OSError) as exc:
                    log.warning("cannot publish a revocation to Redis (retrying): %s", exc)
                    await asyncio.sleep(RETRY_SECONDS)

    async def _listen(self, client: aioredis.Redis, on_change: Callable[[AuthChange], None],
                      on_gap: Callable[[], None]) -> None:
        broken = False
        while True:
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    if broken:
                        on_gap()
                        broken = False
                    async for message in pubsub.listen():
                        self._deliver(message, on_change)
            except (RedisError, OSError) as exc:
                log.warning("revocation channel lost (re-subscribing): %s", exc)
                broken = True
                await asyncio.sleep(RETRY_SECONDS)

    def _deliver(self, message: dict[str, Any], on_change: Callable[[AuthChange], None]) -> None:
        try:
            body = json.loads(message["data"])
        except (KeyError, TypeError, ValueError):
            return
        if not isinstance(body, dict) or body.get("o") == self._origin:
            return
        user, credential = body.get("u"), body.get("c")
        if isinstance(user, str | None) and isinstance(credential, str | None):
            on_change(AuthChange(user, credential))
