"""Server-Sent Events streams of the change feed: how many one credential may hold open, and the
end of a stream whose reader fell too far behind.

A client that stops reading blocks its stream in a send; its reader's buffer of live changes is
bounded (store/tail.py), and once past the bound the stream is cut off at once, even in the
middle of that send: the rest of the response is one end-of-stream, sent when the client reads
again (or dropped when it leaves). A browser's EventSource then reconnects with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable

from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from storeengine.core.errors import TooManyRequests
from storeengine.model.access import Principal

RETRY_AFTER_SECONDS = 5


class StreamSlots:
    """The SSE streams each credential holds open in this process; past `limit` → 429."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def take(self, principal: Principal) -> Callable[[], None]:
        """Count one more stream of this caller's credential; returns its release (idempotent)."""
        credential = principal.credential
        key = f"{credential.kind}:{credential.id}" if credential is not None else f"user:{principal.user_id}"
        held = self.open.get(key, 0)
        if held >= self.limit:
            raise TooManyRequests(f"At most {self.limit} event streams per credential at once "
                                  "(STORE_SSE_STREAMS_PER_CREDENTIAL): close one first",
                                  retry_after=RETRY_AFTER_SECONDS)
        self.open[key] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self.open.get(key, 1) - 1
            if left > 0:
                self.open[key] = left
            else:
                self.open.pop(key, None)

        return release


class FeedEvents(EventSourceResponse):
    """An SSE response that stops as soon as `ended` is set (its reader overflowed), even while a
    send to a client that does not read is pending; `done` runs once the response is over."""

    def __init__(self, content: AsyncIterable[object], *, ended: asyncio.Event, done: Callable[[], None],
                 ping: int) -> None:
        super().__init__(content, ping=ping)
        self._ended, self._done = ended, done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(super().__call__(scope, receive, send))
        ending = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait((streaming, ending), return_when=asyncio.FIRST_COMPLETED)
            if streaming.done():
                streaming.result()  # its own end, or its error
                return
            streaming.cancel()  # closes the generator (and its reader) even in the middle of a send
            await asyncio.wait((streaming,))
            if not self._response_started:
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            # The end of the stream, written when the client reads again (or skipped once it left).
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            ending.cancel()
            streaming.cancel()
            self._done()
