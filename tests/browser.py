"""What the console's browser tests share: Debian's Chromium driven headless by Playwright (never
a downloaded browser; without it the importing module is skipped, loudly), a real server on a
folder of schema files, and helpers to sign in, watch a page and keep its screenshots
(SCREENSHOTS=<dir> keeps them: `make screenshots` takes the README's)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ADMIN_LOGIN, ADMIN_PASSWORD, Server, start_server, stop_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("SKIPPED THE BROWSER TESTS: no Chromium on PATH. Install Debian's package "
                "(apt-get install -y chromium chromium-driver; .ci/run does it) to run them.",
                allow_module_level=True)

from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright  # noqa: E402

# A page's requests wait for the server: on a loaded 2-core machine 5 s (Playwright's default) was
# seen to run out before a store's first list arrived. The expectations themselves are unchanged.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    """Chromium for the module's tests (import `browser_fixture`; tests ask for `browser`)."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def schema_folder(factory: pytest.TempPathFactory, name: str, schemas: dict[str, Any]) -> Path:
    """A fresh folder holding one schema file per store."""
    folder = factory.mktemp(name) / "schemas"
    folder.mkdir()
    for store, schema in schemas.items():
        (folder / f"{store}.json").write_text(json.dumps(schema))
    return folder


@contextlib.contextmanager
def serving(folder: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A real `storeengine serve` on that folder, stopped at the end."""
    server = start_server(folder, folder.parent / "server.log", env=env)
    try:
        yield server
    finally:
        stop_server(server)


class Watch:
    """Every request the page makes and every console message it logs."""

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.foreign: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _request(self, request: object) -> None:
        url: str = request.url  # type: ignore[attr-defined]
        parts = urlsplit(url)
        if parts.scheme not in ("data", "blob") and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(url)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type != "error":
            return
        # Chromium logs every 4xx answer as "Failed to load resource". The console's own API
        # refusals are expected ones (401 before signing in, the 400 the test provokes);
        # anything else (script errors, console.error, other resources) is a failure.
        url = msg.location.get("url", "")
        if msg.text.startswith("Failed to load resource: the server responded with a status of 4") and \
                urlsplit(url).path.startswith("/api/v1/"):
            return
        self.errors.append(f"{msg.text} ({url})")


def shoot(page: Page, name: str, tmp_path: Path) -> None:
    target = Path(os.environ.get("SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000


def admin_headers(server: Server) -> dict[str, str]:
    r = httpx.post(server.url + "/api/v1/auth/token", json={"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def sign_in(page: Page, server: Server) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Login").fill(ADMIN_LOGIN)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
