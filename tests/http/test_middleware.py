"""The plain ASGI middleware of http/middleware.py: CORS headers on answers without `Origin`."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from storeengine.http.middleware import Cors

OPTIONS: dict[str, Any] = {"allow_origins": ["https://app.example"], "allow_credentials": True,
                           "allow_methods": ["*"], "allow_headers": ["*"], "expose_headers": ["ETag"]}


def answering(headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def sent(middleware: Any, request_headers: list[tuple[bytes, bytes]]) -> list[Message]:
    out: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        out.append(message)

    scope = {"type": "http", "method": "GET", "path": "/api/v1/notes", "headers": request_headers}
    await middleware(scope, receive, send)
    return out


@pytest.mark.parametrize("headers", [
    [(b"content-type", b"application/json")],
    [(b"vary", b"Accept"), (b"etag", b'"1"')],
    [(b"vary", b"Accept"), (b"etag", b'"1"'), (b"vary", b"Cookie")],
])
@pytest.mark.parametrize("request_headers", [
    [(b"host", b"testserver")],
    [(b"host", b"testserver"), (b"origin", b"https://app.example")],
    [(b"origin", b"https://evil.example")],
])
async def test_cors_answers_as_starlettes_own(headers: list[tuple[bytes, bytes]],
                                              request_headers: list[tuple[bytes, bytes]]) -> None:
    """Without `Origin` the answer takes a path of its own (no Starlette header objects); its
    headers are byte for byte those of Starlette's CORS, `Vary: Origin` merged into any `Vary`."""
    ours = await sent(Cors(answering(headers), **OPTIONS), request_headers)
    theirs = await sent(CORSMiddleware(answering(headers), **OPTIONS), request_headers)
    assert ours == theirs
    assert next(v for k, v in ours[0]["headers"] if k == b"vary").endswith(b"Origin")
