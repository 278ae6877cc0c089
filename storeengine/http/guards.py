"""405 with `Allow` for the fixed /api/v1 paths, which the generic store routes would otherwise take.

`POST /api/v1/_schemas` or `PUT /api/v1/auth/me` match `/api/v1/{store}` and `/api/v1/{store}/{id}`
too, and would answer as an unknown store (404) or without `Allow`. A guard route per fixed path
takes exactly the methods its real route lacks, so it never shadows the real one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from storeengine.acl import Principal
from storeengine.http.requests import authenticated

# Every method some generic store route accepts: the only ones a fixed path can lose to them.
GENERIC = ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE")


def _refusal(allowed: Collection[str]) -> Callable[[Request], Awaitable[Response]]:
    allow = ", ".join(sorted(allowed))

    async def refuse(request: Request, principal: Principal) -> Response:
        raise HTTPException(405, headers={"Allow": allow})

    return authenticated(refuse)  # authentication before anything else, as on every store route


def with_method_guards(table: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The table with the guards inserted before the first generic store route. After the real
    routes, so that for a method nobody takes (OPTIONS) Starlette's own 405 names the real route's
    methods; before the generic routes, so that they do not take the fixed paths."""
    guards: list[BaseRoute] = []
    for route in table:
        if isinstance(route, Route) and route.path.startswith("/api/v1/") and "{" not in route.path:
            allowed = route.methods or set()
            others = [m for m in GENERIC if m not in allowed]
            if others:
                guards.append(Route(route.path, _refusal(allowed), methods=others))
    first_generic = next((i for i, r in enumerate(table) if isinstance(r, Route) and "{store}" in r.path), len(table))
    return [*table[:first_generic], *guards, *table[first_generic:]]
