"""A TCP proxy in front of the wire server that holds each request for `delay` seconds, and can
drop everything it still holds ("cut"), for the crash test (tests/crashing.py).

Killing a server process with SIGKILL loses only what it had not sent: requests already in the
database's socket are still carried out. With a fast database the moments between two steps of a
write are short, and a random kill rarely falls there. Behind this proxy a request reaches the
database `delay` seconds after it was sent, and killing = cutting the proxy, then SIGKILL: the
process dies with every request of its last `delay` seconds unsent, so each write in flight is cut
between two of its steps, wherever it was. Runs its own event loop on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any


class DelayProxy:
    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop).result(10)
        self.port = int(self.server.sockets[0].getsockname()[1])

    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self.writers |= {client_writer, server_writer}
        for task in (self._pipe(client_reader, server_writer, True), self._pipe(server_reader, client_writer, False)):
            t = asyncio.create_task(task)
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool) -> None:
        """Requests (`delayed`) are held `self.delay` seconds, read as each arrives: a test may change it."""
        held: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, chunk = await held.get()
                if chunk is None:  # the sending side closed: all it sent has gone
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(chunk)
                await writer.drain()

        forwarding = asyncio.create_task(forward())
        try:
            while chunk := await reader.read(65536):
                held.put_nowait((time.monotonic() + (self.delay if delayed else 0.0), chunk))
            held.put_nowait((0.0, None))
            await forwarding
        except OSError:
            pass
        finally:  # (cancelled by cut(): what is still held is dropped)
            forwarding.cancel()
            with contextlib.suppress(OSError):
                writer.close()

    def cut(self) -> None:
        """Drop every connection and everything held on it (new connections are accepted)."""
        async def drop() -> None:
            for task in list(self.tasks):
                task.cancel()
            for writer in list(self.writers):
                with contextlib.suppress(OSError):
                    writer.transport.abort()
            self.writers.clear()

        asyncio.run_coroutine_threadsafe(drop(), self.loop).result(10)

    def close(self) -> None:
        self.cut()
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()  # its self-pipe (a socket pair) would otherwise be left for the GC to warn about
