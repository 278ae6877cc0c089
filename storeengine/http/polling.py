"""Engine.IO long-polling off: behind several workers (or processes without sticky sessions) a
polling client's requests reach different processes, each of which knows only its own sessions,
so the connection would fail at random. Refuse it at once, in the error envelope, with the fix."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from storeengine.core.errors import BadRequest
from storeengine.http.responses import error_response

MESSAGE = ("Socket.IO long-polling is off on this server (several workers; a polling client's requests would "
           "reach different ones): connect with transports ['websocket'], or run one worker per address "
           "behind sticky sessions with STORE_SOCKETIO_POLLING=true")


class PollingOff:
    def __init__(self, app: ASGIApp, path: str = "/socket.io") -> None:
        self.app, self.path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") == self.path:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if query.get("transport", ["polling"])[0] != "websocket":
                await error_response(BadRequest(MESSAGE))(scope, receive, send)
                return
        await self.app(scope, receive, send)
