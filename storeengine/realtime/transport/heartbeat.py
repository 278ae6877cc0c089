"""One timer for the liveness of every Engine.IO socket.

python-engineio keeps each connection alive with a task of its own: every ping interval it
starts a task that sleeps, pings and waits, and a service task wakes once per socket per
ping timeout to check it. At 10,000 sockets that is some 600 task wake-ups a second with no
traffic at all. Here each socket's next step (ping it, check that it answered, check that a
legacy client still pings) is an entry in a wheel of `TICK`-wide slots, and one loop turns
the wheel: a few wake-ups a second whatever the number of sockets. The steps due at a turn
run in chunks of `CHUNK`, spread over the tick that follows: sockets that connected in a
burst are due together, and pinging them all at once would bring all their answers back in
the same loop pass (a stall of 100+ ms at 10,000 sockets); a chunk's answers still arrive
together, so the loop serves many sockets per wake-up.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

TICK = 0.5  # seconds per slot: how late a ping or a check may run
CHUNK = 50  # steps run together; chunks are spread over a tick

Step = Callable[[], Awaitable[None]]


class Heartbeat:
    def __init__(self, tick: float = TICK, chunk: int = CHUNK) -> None:
        self._tick, self._chunk = tick, chunk
        self._slots: dict[int, list[Step]] = {}
        self._turned = math.floor(time.monotonic() / tick)  # the last slot already run

    def at(self, when: float, step: Step) -> None:
        """Run `step` at monotonic time `when`, up to one tick late (never early)."""
        slot = max(math.ceil(when / self._tick), self._turned + 1)
        self._slots.setdefault(slot, []).append(step)

    def __len__(self) -> int:
        return sum(map(len, self._slots.values()))

    async def turn(self, now: float | None = None) -> int:
        """Run every step due by `now`, in chunks spread over one tick; the number run."""
        now = time.monotonic() if now is None else now
        last = math.floor(now / self._tick)
        due: list[Step] = []
        while self._turned < last:
            self._turned += 1
            due.extend(self._slots.pop(self._turned, ()))
        chunks = math.ceil(len(due) / self._chunk)
        for start in range(0, len(due), self._chunk):
            if start:
                await asyncio.sleep(self._tick / chunks)
            for step in due[start:start + self._chunk]:
                await step()
        return len(due)

    async def run(self, stop: asyncio.Event) -> None:
        next_turn = time.monotonic()
        while not stop.is_set():
            next_turn = max(next_turn + self._tick, time.monotonic())
            await asyncio.sleep(next_turn - time.monotonic())
            await self.turn()
