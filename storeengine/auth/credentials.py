"""Reading credentials and checking origins, the same way for HTTP requests and Socket.IO connects.

No Starlette and no python-socketio here: the HTTP layer passes header values, Socket.IO its
WSGI-style environ and connect payload. Checking the credentials is AuthService.authenticate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from storeengine.core.errors import Unauthorized


@dataclass(frozen=True)
class Credentials:
    """At most one of them is set."""

    bearer: str | None = None
    api_key: str | None = None
    session: str | None = None  # the `sid` cookie: sent by browsers on their own (see origin_allowed)

    def as_kwargs(self) -> dict[str, str]:
        """Keyword arguments for AuthService.authenticate."""
        return {k: v for k, v in (("bearer", self.bearer), ("api_key", self.api_key), ("session", self.session))
                if v is not None}


def tenant_of(secret: str) -> str | None:
    """The tenant a session id, refresh token or API key was issued in (`[sk_]<tenant>.<random>`,
    see AuthService); None for the public database's, whose random part has no dot."""
    body = secret[3:] if secret.startswith("sk_") else secret
    tag, dot, rest = body.partition(".")
    return tag if dot and tag and rest else None


def read(authorization: str | None, api_key: str | None, sid: str | None) -> Credentials:
    """The Authorization header (which must then be `Bearer <token>`), else `x-api-key`, else the
    `sid` cookie; 401 when there is none."""
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        return Credentials(bearer=token.strip())
    if api_key:
        return Credentials(api_key=api_key)
    if sid:
        return Credentials(session=sid)
    raise Unauthorized("Authentication required")


def from_connect(environ: Mapping[str, Any], payload: Any) -> Credentials:
    """A Socket.IO connection: the connect payload's `token` or `apiKey` first, then the
    handshake's headers and cookie as for HTTP."""
    if isinstance(payload, dict):
        if isinstance(payload.get("token"), str):
            return Credentials(bearer=payload["token"])
        if isinstance(payload.get("apiKey"), str):
            return Credentials(api_key=payload["apiKey"])
    return read(environ.get("HTTP_AUTHORIZATION") or None, environ.get("HTTP_X_API_KEY"),
                _sid(environ.get("HTTP_COOKIE", "")))


def _sid(cookie_header: str) -> str | None:
    try:
        cookie = SimpleCookie(cookie_header)
    except CookieError:
        return None
    return cookie["sid"].value if "sid" in cookie else None


def origin_allowed(origin: str | None, scheme: str, host: str, allowed: tuple[str, ...]) -> bool:
    """The server's own origin or a configured one. A request without Origin (curl, servers)
    cannot be a cross-site browser request."""
    return origin is None or origin.rstrip("/") in (f"{scheme}://{host}", *allowed)


def environ_origin_allowed(origin: str | None, environ: Mapping[str, Any], allowed: tuple[str, ...]) -> bool:
    """origin_allowed for a Socket.IO handshake."""
    return origin_allowed(origin, environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST", ""), allowed)
