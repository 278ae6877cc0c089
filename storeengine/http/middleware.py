"""Plain ASGI middleware: the body size limit, trailing slashes, HEAD, CORS refusals, the
security headers of the pages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storeengine.core.errors import BadRequest, PayloadTooLarge
from storeengine.http.responses import error_response


class BodyLimit:
    """413 for bodies over the limit: at once from Content-Length, or while streaming.
    It sits inside the CORS middleware, so a browser sees the 413 with its CORS headers."""

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


class TrailingSlash:
    """`/api/v1/notes/` is `/api/v1/notes` (API.md 1): served as is, not redirected (a 307
    to an absolute URL breaks clients behind proxies and drops bodies in some of them)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            raw: bytes = scope.get("raw_path") or path.encode()
            scope = {**scope, "path": path.rstrip("/") or "/", "raw_path": raw.rstrip(b"/") or b"/"}
        await self.app(scope, receive, send)


class HeadWithoutBody:
    """HEAD is routed like GET; this drops the body and keeps every header (Content-Length too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def bodiless(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, bodiless)


class Cors(CORSMiddleware):
    """Starlette's CORS, with its preflight refusal in the JSON error envelope. A request without
    `Origin` (no browser's cross-origin call) only gets `Vary: Origin`, added here without
    building Starlette's Headers and MutableHeaders for every request and answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def vary_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_vary_origin(message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, vary_origin)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        what = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        origin = request_headers.get("origin", "")
        message = (f"CORS preflight refused ({what}) for origin {origin!r}: "
                   "allowed origins are set by STORE_ALLOWED_ORIGINS")
        refusal = error_response(BadRequest(message))
        refusal.headers.update(_kept(response.headers))
        return refusal


def _with_vary_origin(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The answer's headers with `Origin` added to `Vary`, as Starlette's CORS does: one `vary`
    header, where the first one was, listing the values of every one before it and `Origin`."""
    out = list(headers)
    found = [i for i, (name, _) in enumerate(out) if name == b"vary"]
    if not found:
        out.append((b"vary", b"Origin"))
        return out
    value = b", ".join([*(out[i][1] for i in found), b"Origin"])
    for i in reversed(found[1:]):
        del out[i]
    out[found[0]] = (b"vary", value)
    return out


def _kept(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}


# The console and docs pages and their files (API.md 11): scripts, styles, fonts, API calls and
# event streams from this server only, nothing inline (Swagger UI sets styles through the DOM,
# which a policy allows), images also as data: URLs (Swagger UI's icons), never inside a frame.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_PAGE_HEADERS = (
    (b"content-security-policy", PAGE_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def is_page(path: str) -> bool:
    return path in ("/", "/docs") or path.startswith(("/console/", "/docs/assets/"))


class SecurityHeaders:
    """`X-Content-Type-Options: nosniff` on every answer; on the pages also the CSP above,
    `X-Frame-Options: DENY` (older browsers) and `Referrer-Policy`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = (_NOSNIFF, *_PAGE_HEADERS) if is_page(scope["path"]) else (_NOSNIFF,)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                added = [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        await self.app(scope, receive, with_headers)
