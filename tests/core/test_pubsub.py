"""The Redis channel under every cross-process signal: delivery to others, never to oneself."""

from __future__ import annotations

import asyncio
import uuid

from storeengine.core.pubsub import RedisChannel


async def test_a_message_reaches_other_processes_and_not_its_sender(redis_url: str) -> None:
    name = f"test-{uuid.uuid4().hex}"
    one, two = RedisChannel(redis_url, name), RedisChannel(redis_url, name)
    heard: dict[str, list[str]] = {"one": [], "two": []}
    got = asyncio.Event()

    def on_two(text: str) -> None:
        heard["two"].append(text)
        got.set()

    tasks = [asyncio.create_task(one.run(heard["one"].append, lambda: None)),
             asyncio.create_task(two.run(on_two, lambda: None))]
    try:
        await asyncio.sleep(0.3)  # both subscribed: pub/sub keeps nothing for late listeners
        one.publish("hello world")
        async with asyncio.timeout(5):
            await got.wait()
        await asyncio.sleep(0.2)
        assert heard == {"one": [], "two": ["hello world"]}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
