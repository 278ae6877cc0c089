"""One Redis pub/sub channel between server processes: the base of every cross-process signal
of ours (auth changes, feed wake-ups). python-socketio's own Redis manager carries the events.

Publishing never blocks the caller: messages wait in an outbox and are retried while Redis is
down. Listening re-subscribes after a break and then calls `on_gap`, because pub/sub keeps
nothing: whatever was published meanwhile is lost, and the listener must catch up another way.
A process's own messages come back to it and are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0


class RedisChannel:
    def __init__(self, url: str, channel: str) -> None:
        self._url, self._channel = url, channel
        self._origin = uuid.uuid4().hex
        self._outbox: asyncio.Queue[str] = asyncio.Queue()

    def publish(self, text: str) -> None:
        self._outbox.put_nowait(text)

    async def run(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        """Send the outbox and hand other processes' messages to `on_message`, until cancelled."""
        client: aioredis.Redis = aioredis.Redis.from_url(self._url)
        try:
            await asyncio.gather(self._send(client), self._listen(client, on_message, on_gap))
        finally:
            await client.aclose()

    async def _send(self, client: aioredis.Redis) -> None:
        while True:
            text = await self._outbox.get()
            while True:
                try:
                    await client.publish(self._channel, f"{self._origin} {text}")
                    break
                except (RedisError, OSError) as exc:
                    log.warning("cannot publish to Redis channel %s (retrying): %s", self._channel, exc)
                    await asyncio.sleep(RETRY_SECONDS)

    async def _listen(self, client: aioredis.Redis, on_message: Callable[[str], None],
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
                        self._deliver(message, on_message)
            except (RedisError, OSError) as exc:
                log.warning("Redis channel %s lost (re-subscribing): %s", self._channel, exc)
                broken = True
                await asyncio.sleep(RETRY_SECONDS)

    def _deliver(self, message: dict[str, object], on_message: Callable[[str], None]) -> None:
        data = message.get("data")
        if not isinstance(data, bytes):
            return
        origin, _, text = data.decode("utf-8", "replace").partition(" ")
        if origin != self._origin:
            on_message(text)
