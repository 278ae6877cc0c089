"""Reading requests: credentials (with the CSRF rule), JSON bodies, If-Match."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from storeengine.auth import credentials
from storeengine.core.errors import Forbidden, UnsupportedMediaType
from storeengine.core.jsonio import parse_body
from storeengine.core.types import Doc
from storeengine.http.context import SCOPE_KEY, context
from storeengine.model.access import Principal

UNSAFE = frozenset({"POST", "PATCH", "PUT", "DELETE"})


async def authenticate(request: Request) -> Principal:
    """The caller of a request (see auth/credentials.read); 401 if no credential is valid.
    A cookie-authenticated write must come from an allowed origin (CSRF)."""
    ctx = context(request)
    headers = request.headers
    creds = credentials.read(headers.get("authorization"), headers.get("x-api-key"), request.cookies.get("sid"))
    principal = await ctx.auth.authenticate(**creds.as_kwargs())
    if creds.session is not None and request.method in UNSAFE:
        check_origin(request, ctx.settings.allowed_origins)
    return principal


def check_origin(request: Request, allowed: tuple[str, ...]) -> None:
    """A cookie is sent by the browser on its own; refuse writes it carries from other sites."""
    origin, scheme, host = request.headers.get("origin"), request.url.scheme, request.headers.get("host", "")
    if not credentials.origin_allowed(origin, scheme, host, allowed):
        raise Forbidden(f"Cross-origin request refused: origin {origin!r} is neither this server's own "
                        f"({scheme}://{host}) nor one of STORE_ALLOWED_ORIGINS")


Endpoint = Callable[[Request], Awaitable[Response]]
AuthedEndpoint = Callable[[Request, Principal], Awaitable[Response]]


def public(endpoint: Endpoint) -> Endpoint:
    """Marks, in the routes table, an endpoint that answers without credentials."""
    return endpoint


def authenticated(endpoint: AuthedEndpoint) -> Endpoint:
    """An endpoint that needs a caller: 401 comes first, before the endpoint looks anything up
    (so an anonymous caller cannot even learn which stores exist)."""

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        return await endpoint(request, await authenticate(request))

    return run


def store_write(endpoint: AuthedEndpoint) -> AuthedEndpoint:
    """A store route that writes on unsafe methods: with STORE_PUBLIC_READONLY, only the public
    database's admins may write to its stores (API.md 12); tenants are not concerned."""

    @functools.wraps(endpoint)
    async def run(request: Request, principal: Principal) -> Response:
        if request.method in UNSAFE and not principal.is_admin and request.scope.get(SCOPE_KEY) is None \
                and context(request).settings.public_readonly:
            raise Forbidden("The public database is read-only")
        return await endpoint(request, principal)

    return run


async def read_json(request: Request) -> Doc:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType()
    return parse_body(await request.body())


def if_match(request: Request) -> list[str] | None:
    """The versions named by If-Match (quotes stripped; weak tags never match)."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    tags = [part.strip() for part in raw.split(",")]
    return [t.strip('"') if not t.startswith("W/") else "" for t in tags]
