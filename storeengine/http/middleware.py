"""Plain ASGI middleware: the body size limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storeengine.errors import PayloadTooLarge
from storeengine.http.responses import error_response


class BodyLimit:
    """413 for bodies over the limit: at once from Content-Length, or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                refusal = error_response(PayloadTooLarge(f"Body larger than {self.max_bytes} bytes"))
                await refusal(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(f"Body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)
