"""The console's and the docs page's files: served by us, without credentials, from no other host."""

from __future__ import annotations

import re
from importlib import resources

import httpx

from tests.conftest import Server

CONSOLE = resources.files("storeengine.http") / "console"


async def test_console_and_its_files_need_no_credentials(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/app.js">' in r.text
    for name in ("app.js", "api.js", "form.js", "list.js", "entity.js", "keys.js", "live.js", "dom.js", "aggregate.js"):
        r = await client.get(f"/console/{name}")
        assert r.status_code == 200, name
        assert "javascript" in r.headers["content-type"], (name, r.headers["content-type"])
    assert (await client.get("/console/console.css")).headers["content-type"].startswith("text/css")


async def test_docs_page_serves_swagger_ui_from_the_package(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
        r = await client.get(asset)
        assert r.status_code == 200, asset
        assert r.content, asset
    assert "SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).text


async def test_everything_else_keeps_authentication_before_404(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/nosuchstore", "/api/v1/nosuchstore/1", "/api/v1/_openapi.json"):
        r = await client.get(path)
        assert r.status_code == 401, path
    missing = await client.get("/console/nothing-here.js")
    assert missing.status_code == 404
    assert missing.json()["tags"] == ["error_not_found"]
    refused = await client.post("/console/app.js")
    assert refused.status_code == 405
    assert refused.json()["code"] == "405"


def test_console_files_name_no_other_host() -> None:
    for item in CONSOLE.iterdir():
        if item.name.endswith((".html", ".js", ".css")):
            text = item.read_text("utf-8")
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), item.name


def test_serve_prints_the_console_url_and_the_admin_login(server: Server) -> None:
    out = server.output()
    assert f"console at http://127.0.0.1:{server.port}/" in out
    assert "sign in as 'admin'" in out
