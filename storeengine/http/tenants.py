"""Endpoints of /api/v1/_tenants (API.md 12): admins of the public database only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from storeengine.auth.tenants import shown
from storeengine.core.errors import Forbidden
from storeengine.http.context import SCOPE_KEY
from storeengine.http.requests import read_json
from storeengine.http.responses import json_response
from storeengine.http.tenancy import Tenancy
from storeengine.model.access import Principal


def _tenancy(request: Request, principal: Principal) -> Tenancy:
    """403 for anyone but an admin of the public database (a tenant's own admins included)."""
    if request.scope.get(SCOPE_KEY) is not None or not principal.is_admin:
        raise Forbidden("Only admins of the public database manage tenants")
    tenancy: Tenancy = request.app.state.tenancy
    return tenancy


async def collection(request: Request, principal: Principal) -> Response:
    tenancy = _tenancy(request, principal)
    if request.method in ("GET", "HEAD"):
        return json_response([shown(doc) for doc in await tenancy.registry.list()])
    doc, key = await tenancy.create(await read_json(request))
    location = f"/api/v1/_tenants/{doc['name']}"
    return json_response({**shown(doc), "key": key}, 201, {"Location": location})


async def tenant(request: Request, principal: Principal) -> Response:
    tenancy = _tenancy(request, principal)
    name = request.path_params["name"]
    if request.method == "DELETE":
        await tenancy.delete(name)
        return json_response({"success": True})
    return json_response(shown(await tenancy.registry.get(name)))


async def rotate_key(request: Request, principal: Principal) -> Response:
    tenancy = _tenancy(request, principal)
    return json_response({"key": await tenancy.registry.rotate(request.path_params["name"])})
