"""The face of the server: the OpenAPI document, the docs page and the console's files.

The console and the docs page are static files anyone may load (they hold no data); the
document is an API route like the others and needs credentials."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from storeengine.http.context import context
from storeengine.http.requests import authenticated, public
from storeengine.model.access import Principal

CONSOLE = resources.files("storeengine.http") / "console"
# The page shells are small and never change while the server runs: read them once.
_PAGES: dict[str, bytes] = {}


def _page(name: str) -> Response:
    if name not in _PAGES:
        _PAGES[name] = CONSOLE.joinpath(name).read_bytes()
    return Response(_PAGES[name], media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


async def index(request: Request) -> Response:
    return _page("index.html")


async def docs(request: Request) -> Response:
    return _page("docs.html")


async def openapi_document(request: Request, principal: Principal) -> Response:
    return Response(context(request).openapi.get(principal), media_type="application/json")


def routes() -> list[BaseRoute]:
    return [
        Route("/", public(index), methods=["GET"]),
        Route("/docs", public(docs), methods=["GET"]),
        Route("/api/v1/_openapi.json", authenticated(openapi_document), methods=["GET"]),
        Mount("/console", StaticFiles(directory=str(CONSOLE))),
        Mount("/docs/assets", StaticFiles(directory=str(Path(str(swagger_ui_path))))),
    ]
