"""Reading requests: credentials (with the CSRF rule), JSON bodies, If-Match."""

from __future__ import annotations

from starlette.requests import Request

from storeengine.acl import Principal
from storeengine.entities import Doc
from storeengine.errors import Forbidden, Unauthorized, UnsupportedMediaType
from storeengine.http.context import context
from storeengine.jsonio import parse_body

UNSAFE = frozenset({"POST", "PATCH", "PUT", "DELETE"})


async def authenticate(request: Request) -> Principal:
    """Bearer token, then API key, then the session cookie; 401 if none is valid."""
    ctx = context(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        return await ctx.auth.authenticate(bearer=token.strip())
    if key := request.headers.get("x-api-key"):
        return await ctx.auth.authenticate(api_key=key)
    if sid := request.cookies.get("sid"):
        principal = await ctx.auth.authenticate(session=sid)
        if request.method in UNSAFE:
            check_origin(request, ctx.settings.allowed_origins)
        return principal
    raise Unauthorized("Authentication required")


def check_origin(request: Request, allowed: tuple[str, ...]) -> None:
    """A cookie is sent by the browser on its own; refuse writes it carries from other sites.
    Requests without Origin (curl, servers) cannot be cross-site browser requests."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin.rstrip("/") not in (own, *allowed):
        raise Forbidden(f"Cross-origin request refused: origin {origin!r} is neither this server's own ({own}) "
                        "nor one of STORE_ALLOWED_ORIGINS")


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
