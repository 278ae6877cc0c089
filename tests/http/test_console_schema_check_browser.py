"""The console's schema check in headless Chromium (Debian's package, as in test_console_browser.py):
after a schema file changes, an admin's store page says how many entities fail it and lists them
with their messages, each linked to its entity's form; a user who is not an admin sees no panel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import (
    Browser,
    Watch,
    admin_headers,
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    expect,
    schema_folder,
    serving,
    shoot,
    sign_in,
)
from tests.conftest import Server

STORE = "parts"
LOOSE = {"type": "object", "properties": {"name": {"type": "string"}, "weight": {"type": "number"}},
         "x-acl": {"read": ["authenticated"]}}
STRICT = {**LOOSE, "required": ["name", "weight"],
          "properties": {"name": {"type": "string", "minLength": 3}, "weight": {"type": "number", "minimum": 0}}}


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return schema_folder(tmp_path_factory, "check-browser", {STORE: LOOSE})


@pytest.fixture(scope="module")
def live_server(schemas: Path) -> Iterator[Server]:
    with serving(schemas) as server:
        yield server


def test_an_admin_sees_which_entities_fail_the_current_schema(browser: Browser, live_server: Server,
                                                              schemas: Path, tmp_path: Path) -> None:
    headers = admin_headers(live_server)
    bodies = [{"name": "bolt", "weight": 2}, {"name": "x", "weight": -1}, {"name": "nut"}]
    ids = []
    for body in bodies:
        r = httpx.post(f"{live_server.url}/api/v1/{STORE}", json=body, headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["_id"])
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    watch = Watch(page, live_server.url)
    sign_in(page, live_server)
    page.get_by_role("navigation", name="stores").get_by_role("link", name=STORE).click()
    panel = page.get_by_role("region", name="schema check")
    # checked when the server loaded the file, before the writes: cached, and it says so
    expect(panel.locator(".check-summary")).to_have_text(
        "The store was empty when the current schema was loaded; entities written since were checked as they "
        "were written.")

    (schemas / f"{STORE}.json").write_text(json.dumps(STRICT))
    summary = panel.locator(".check-summary")
    for _ in range(50):  # the server reloads within 2 s and checks in the background
        page.reload()
        expect(page.get_by_role("table", name=f"{STORE} entities").get_by_role("cell", name="bolt")).to_be_visible()
        summary.wait_for()
        if summary.inner_text().startswith("2 of 3 "):
            break
        page.wait_for_timeout(200)
    expect(summary).to_have_text("2 of 3 entities stored when the current schema was loaded fail it.")
    failing = panel.get_by_role("table", name=f"{STORE} entities failing the schema")
    expect(failing.get_by_role("row")).to_have_count(3)  # the header and two entities
    x_row = failing.get_by_role("row").filter(has_text=ids[1])
    expect(x_row).to_contain_text("name must be at least 3 characters")
    expect(x_row).to_contain_text("weight must be >= 0")
    expect(failing.get_by_role("row").filter(has_text=ids[2])).to_contain_text("weight is required")
    expect(failing.get_by_role("row").filter(has_text=ids[0])).to_have_count(0)
    panel.scroll_into_view_if_needed()
    shoot(page, "schema-check", tmp_path)

    failing.get_by_role("link", name=ids[1]).click()
    expect(page).to_have_url(f"{live_server.url}/#/s/{STORE}/{ids[1]}")
    expect(page.get_by_label("name", exact=True)).to_have_value("x")
    assert watch.foreign == []
    assert watch.errors == []


def test_a_user_who_is_not_an_admin_sees_no_panel(browser: Browser, live_server: Server) -> None:
    headers = admin_headers(live_server)
    r = httpx.post(f"{live_server.url}/api/v1/users", json={"login": "reader", "password": "reader-password-1"},
                   headers=headers)
    assert r.status_code == 201, r.text
    page = browser.new_page()
    watch = Watch(page, live_server.url)
    page.goto(live_server.url + "/")
    page.get_by_label("Login").fill("reader")
    page.get_by_label("Password").fill("reader-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="stores").get_by_role("link", name=STORE).click()
    expect(page.get_by_role("table", name=f"{STORE} entities")).to_be_visible()
    expect(page.get_by_role("region", name="schema check")).to_have_count(0)
    assert watch.foreign == []
    assert watch.errors == []
