"""405 with `Allow`, after authentication, for the fixed /api/v1 paths.

`POST /api/v1/_schemas` or `PUT /api/v1/auth/me` would otherwise get Starlette's own 405, which
answers before authentication. A guard route per fixed path takes exactly the methods its real
route lacks, so it never shadows the real one. (The generic store routes cannot take these
paths: their store segment excludes the reserved names, see routes.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from storeengine.http.requests import authenticated
from storeengine.model.access import Principal

# The methods the API serves; a fixed path's guard takes those its route does not.
GENERIC = ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE")


def _refusal(allowed: Collection[str]) -> Callable[[Request], Awaitable[Response]]:
    allow = ", ".join(sorted(allowed))

    async def refuse(request: Request, principal: Principal) -> Response:
        raise HTTPException(405, headers={"Allow": allow})

    return authenticated(refuse)  # authentication before anything else, as on every store route


def with_method_guards(table: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The table with the guards after it: after the real routes, so that for a method nobody
    takes (OPTIONS) Starlette's own 405 names the real route's methods."""
    guards: list[BaseRoute] = []
    for route in table:
        if not isinstance(route, Route) or not route.path.startswith("/api/v1/"):
            continue
        if "{" not in route.path or route.path.startswith("/api/v1/_schemas/"):  # no store route takes these
            allowed = route.methods or set()
            others = [m for m in GENERIC if m not in allowed]
            if others:
                guards.append(Route(route.path, _refusal(allowed), methods=others))
    return [*table, *guards]
