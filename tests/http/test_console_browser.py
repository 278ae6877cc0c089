"""The console in headless Chromium (Debian's package, driven by Playwright; no browser download).

Sign in, a create refused with a field message, fixed and saved, the row listed, a write by
another client arriving live (needs the change feed of API.md 10), sign out; the page loads
nothing from another host and logs no error. Set SCREENSHOTS=<dir> to keep the screenshots
(the README's come from `make screenshots`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import (
    Browser,
    Page,
    Watch,
    admin_headers,
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    expect,
    schema_folder,
    serving,
    shoot,
    sign_in,
)
from tests.conftest import ADMIN_LOGIN, Server

STORE = "gizmos"
SCHEMA = {
    "title": "Gizmos for the browser test",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "price": {"type": "number", "minimum": 0},
        "size": {"enum": ["small", "large"]},
        "ready": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return schema_folder(tmp_path_factory, "browser", {STORE: SCHEMA})


@pytest.fixture(scope="module")
def live_server(schemas: Path) -> Iterator[Server]:
    with serving(schemas) as server:
        yield server


def field_error(page: Page, label: str) -> str:
    described = page.get_by_label(label, exact=True).get_attribute("aria-describedby")
    assert described
    return page.locator(f"#{described}").inner_text()


def test_sign_in_create_fix_save_live_sign_out(browser: Browser, live_server: Server, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    watch = Watch(page, live_server.url)
    sign_in(page, live_server)
    page.get_by_role("navigation", name="stores").get_by_role("link", name=STORE).click()
    expect(page.get_by_role("heading", name=STORE)).to_be_visible()

    page.get_by_role("button", name="Create").click()
    page.get_by_label("name", exact=True).fill("first gizmo")
    page.get_by_label("price", exact=True).fill("-3")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("[aria-invalid=true]")).to_have_count(1)
    assert field_error(page, "price") == "must be >= 0"
    shoot(page, "form-error", tmp_path)

    page.get_by_label("price", exact=True).fill("12.5")
    page.get_by_label("size", exact=True).select_option(label="large")
    page.get_by_role("button", name="Save").click()
    table = page.get_by_role("table", name=f"{STORE} entities")
    expect(table.get_by_role("cell", name="first gizmo")).to_be_visible()
    expect(table.get_by_role("cell", name="large")).to_be_visible()

    # Another client writes: the open list shows it without a reload.
    expect(page.locator("#live")).to_have_text("● live", timeout=5000)
    r = httpx.post(f"{live_server.url}/api/v1/{STORE}", json={"name": "from elsewhere", "price": 1},
                   headers=admin_headers(live_server))
    assert r.status_code == 201, r.text
    expect(table.get_by_role("cell", name="from elsewhere")).to_be_visible(timeout=5000)
    shoot(page, "list", tmp_path)

    page.get_by_role("link", name=r.json()["_id"]).click()
    page.get_by_text("Full JSON").click()
    expect(page.locator(".json-view")).to_contain_text('"from elsewhere"')
    shoot(page, "entity", tmp_path)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "sid" and c["value"]]
    assert watch.foreign == []
    assert watch.errors == []


def test_narrow_screen_and_docs_page(browser: Browser, live_server: Server, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 800})
    watch = Watch(page, live_server.url)
    sign_in(page, live_server)
    page.get_by_role("navigation", name="stores").get_by_role("link", name=STORE).click()
    expect(page.get_by_role("button", name="Create")).to_be_in_viewport()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a narrow screen ({width}px)"
    shoot(page, "narrow", tmp_path)

    page.goto(live_server.url + "/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=15000)
    expect(page.get_by_text(f"/api/v1/{STORE}/{{id}}/acl").first).to_be_attached()
    assert watch.foreign == []
    assert watch.errors == []


def test_keys_access_and_delete(browser: Browser, live_server: Server) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    watch = Watch(page, live_server.url)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of revoke and delete
    sign_in(page, live_server)

    # Admins manage users and groups: they are stores too.
    page.get_by_role("navigation", name="stores").get_by_role("link", name="users").click()
    expect(page.get_by_role("table", name="users entities").get_by_role("cell", name=ADMIN_LOGIN).first).to_be_visible()
    page.get_by_role("navigation", name="stores").get_by_role("link", name="groups").click()
    page.get_by_role("button", name="Create").click()
    page.get_by_label("name", exact=True).fill("editors")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("table", name="groups entities").get_by_role("cell", name="editors")).to_be_visible()

    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name", exact=True).fill("laptop")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("output.secret")
    expect(secret).to_contain_text("sk_")
    key = secret.inner_text()
    assert httpx.get(live_server.url + "/api/v1/auth/me", headers={"x-api-key": key}).status_code == 200
    keys = page.get_by_role("table", name="API keys")
    expect(keys.get_by_role("cell", name="laptop")).to_be_visible()
    keys.get_by_role("button", name="Revoke").click()
    expect(keys.get_by_role("cell", name="laptop")).to_have_count(0)
    assert httpx.get(live_server.url + "/api/v1/auth/me", headers={"x-api-key": key}).status_code == 401

    headers = admin_headers(live_server)
    created = httpx.post(f"{live_server.url}/api/v1/{STORE}", json={"name": "to share"}, headers=headers).json()
    page.goto(f"{live_server.url}/#/s/{STORE}/{created['_id']}")
    page.get_by_text("Access", exact=True).click()
    other = "0123456789abcdef01234567"
    page.get_by_label("access", exact=True).fill(other)
    page.get_by_role("button", name="Change access").click()
    expect(page.get_by_role("status").filter(has_text="Access changed")).to_be_visible()
    entity = httpx.get(f"{live_server.url}/api/v1/{STORE}/{created['_id']}", headers=headers).json()
    assert entity["access"] == [other]

    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name=STORE)).to_be_visible()
    assert httpx.get(f"{live_server.url}/api/v1/{STORE}/{created['_id']}", headers=headers).status_code == 404
    assert watch.foreign == []
    assert watch.errors == []


def test_schema_errors_are_shown_plainly(browser: Browser, live_server: Server, schemas: Path) -> None:
    (schemas / "broken.json").write_text(json.dumps({"type": "array"}))
    page = browser.new_page()
    watch = Watch(page, live_server.url)
    sign_in(page, live_server)
    stores = page.get_by_role("table", name="stores")
    row = stores.get_by_role("row").filter(has_text="broken")
    for _ in range(30):  # the server picks the file up within 2 s; the home view asks again each time
        page.reload()
        page.get_by_role("button", name="Sign out").wait_for()
        if row.count():
            break
        page.wait_for_timeout(100)
    expect(row).to_contain_text('schema must have "type": "object"')
    page.get_by_role("navigation", name="stores").get_by_role("link", name="broken (schema error)").click()
    expect(page.get_by_role("alert").filter(has_text="Schema error")).to_be_visible()
    (schemas / "broken.json").unlink()
    assert watch.foreign == []
    assert watch.errors == []


def test_sign_in_with_a_tenant_key(browser: Browser, live_server: Server) -> None:
    """API.md 12: the sign-in's tenant key makes the session the tenant's; the console and /docs then
    work inside the tenant's database."""
    admin = admin_headers(live_server)
    boss = {"login": "boss", "password": "boss-password-1"}
    r = httpx.post(f"{live_server.url}/api/v1/_tenants", json={"name": "browser", "admin": boss, "copy": False},
                   headers=admin)
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    token = httpx.post(f"{live_server.url}/api/v1/auth/token", json=boss, headers={"Api-Key": key}).json()["token"]
    mine = httpx.post(f"{live_server.url}/api/v1/{STORE}", json={"name": "tenant gizmo"},
                      headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 201, mine.text
    theirs = httpx.post(f"{live_server.url}/api/v1/{STORE}", json={"name": "public gizmo"}, headers=admin)
    assert theirs.status_code == 201, theirs.text

    page = browser.new_page(viewport={"width": 1200, "height": 800})
    watch = Watch(page, live_server.url)
    page.goto(live_server.url + "/")
    page.get_by_label("Login").fill("boss")
    page.get_by_label("Password").fill("boss-password-1")
    page.get_by_label("Tenant key (optional)").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.get_by_role("navigation", name="stores").get_by_role("link", name=STORE).click()
    table = page.get_by_role("table", name=f"{STORE} entities")
    expect(table.get_by_role("cell", name="tenant gizmo")).to_be_visible()
    expect(table.get_by_role("cell", name="public gizmo")).to_have_count(0)
    expect(page.locator("#live")).to_have_text("● live", timeout=5000)
    later = httpx.post(f"{live_server.url}/api/v1/{STORE}", json={"name": "tenant later"},
                       headers={"Authorization": f"Bearer {token}"})
    assert later.status_code == 201
    expect(table.get_by_role("cell", name="tenant later")).to_be_visible(timeout=5000)

    page.goto(live_server.url + "/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=15000)
    assert watch.foreign == []
    assert watch.errors == []
