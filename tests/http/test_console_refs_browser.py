"""The console and references (API.md section 13), in headless Chromium: a reference is a link to
its entity labelled by the expanded entity's name, and the form's picker searches the referenced
store and puts the chosen id in the field."""

from __future__ import annotations

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

ID = {"type": "string", "format": "objectid"}
SCHEMAS = {
    "makers": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 100}}},
    "gadgets": {"type": "object", "properties": {
        "title": {"type": "string", "maxLength": 100},
        "maker": {**ID, "x-ref": "makers"},
        "alsoBy": {"type": "array", "items": {**ID, "x-ref": "makers"}},
        "reviewer": {**ID, "x-ref": "users"},
    }},
}


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(schema_folder(tmp_path_factory, "refs-browser", SCHEMAS)) as server:
        yield server


def test_reference_link_label_and_picker(browser: Browser, live_server: Server, tmp_path: Path) -> None:
    admin = admin_headers(live_server)
    acme = httpx.post(f"{live_server.url}/api/v1/makers", json={"name": "Acme"}, headers=admin).json()
    bolt = httpx.post(f"{live_server.url}/api/v1/makers", json={"name": "Bolt"}, headers=admin).json()
    r = httpx.post(f"{live_server.url}/api/v1/gadgets", json={"title": "g1", "maker": acme["_id"]}, headers=admin)
    assert r.status_code == 201, r.text

    page = browser.new_page(viewport={"width": 1200, "height": 800})
    watch = Watch(page, live_server.url)
    sign_in(page, live_server)
    page.get_by_role("navigation", name="stores").get_by_role("link", name="gadgets").click()
    table = page.get_by_role("table", name="gadgets entities")
    link = table.get_by_role("link", name="Acme")
    expect(link).to_have_attribute("href", f"#/s/makers/{acme['_id']}")

    page.get_by_role("button", name="Create").click()
    page.get_by_label("title", exact=True).fill("g2")
    search = page.get_by_label("pick from makers").first
    search.focus()
    search.fill("Bol")
    expect(page.locator(f"datalist option[value='{bolt['_id']}']").first).to_have_count(1, timeout=5000)
    search.fill(bolt["_id"])  # what choosing the suggestion does
    expect(page.get_by_label("maker", exact=True)).to_have_value(bolt["_id"])
    page.get_by_role("button", name="Save").click()
    expect(table.get_by_role("link", name="Bolt")).to_be_visible()
    shoot(page, "references", tmp_path)

    table.get_by_role("link", name="Bolt").click()
    expect(page.get_by_role("heading", name=f"makers {bolt['_id']}")).to_be_visible()
    assert watch.foreign == [] and watch.errors == []


def test_live_rows_keep_reference_labels_and_array_picker(browser: Browser, live_server: Server,
                                                          tmp_path: Path) -> None:
    """A row updated by the change feed (whose entity has no `_expand`) shows labels, not ids: the
    labels seen before at once, a reference never seen through one expanded GET of that row; the
    entity page lists the references; the picker of an array of references adds a line."""
    admin = admin_headers(live_server)
    api = f"{live_server.url}/api/v1"
    made = {name: httpx.post(f"{api}/makers", json={"name": name}, headers=admin).json()["_id"]
            for name in ("Crane", "Dynamo", "Elm", "Flux")}
    gadget = httpx.post(f"{api}/gadgets", json={"title": "live-one", "maker": made["Crane"]}, headers=admin).json()

    page = browser.new_page(viewport={"width": 1200, "height": 800})
    watch = Watch(page, live_server.url)
    sign_in(page, live_server)
    page.get_by_role("navigation", name="stores").get_by_role("link", name="gadgets").click()
    row = page.get_by_role("table", name="gadgets entities").locator(f"tr[data-id='{gadget['_id']}']")
    expect(row.get_by_role("link", name="Crane")).to_be_visible()
    expect(page.get_by_text("● live")).to_be_visible()

    # Another client sets a maker this page never showed, then one array of makers it has shown.
    r = httpx.patch(f"{api}/gadgets/{gadget['_id']}", json={"maker": made["Dynamo"]}, headers=admin)
    assert r.status_code == 200, r.text
    expect(row.get_by_role("link", name="Dynamo")).to_have_attribute("href", f"#/s/makers/{made['Dynamo']}")
    r = httpx.patch(f"{api}/gadgets/{gadget['_id']}", json={"alsoBy": [made["Crane"], made["Dynamo"]]}, headers=admin)
    assert r.status_code == 200, r.text
    expect(row.locator("td").nth(3)).to_have_text("Crane, Dynamo")
    expect(row.get_by_role("link", name=made["Dynamo"])).to_have_count(0)
    expect(row.get_by_role("link", name=made["Crane"])).to_have_count(0)
    shoot(page, "references-live", tmp_path)

    # The entity page: its references as labelled links, and the array field's picker.
    row.get_by_role("link", name=gadget["_id"]).click()
    references = page.get_by_role("definition").filter(has=page.get_by_role("link", name="Dynamo"))
    expect(references.first).to_be_visible()
    expect(page.get_by_label("references").get_by_role("link", name="Crane")).to_be_visible()
    me = httpx.get(f"{api}/auth/me", headers=admin).json()
    expect(page.locator("p.meta").get_by_role("link", name=me["login"])).to_have_attribute(
        "href", f"#/s/users/{gadget['owner']}")
    search = page.get_by_label("pick from makers").nth(1)  # maker, then alsoBy
    search.focus()
    search.fill("Fl")
    expect(page.locator(f"datalist option[value='{made['Flux']}']")).to_have_count(1)
    shoot(page, "references-entity", tmp_path)
    search.fill(made["Flux"])  # what choosing the suggestion does
    expect(page.get_by_label("alsoBy", exact=True)).to_have_value(f"{made['Crane']}\n{made['Dynamo']}\n{made['Flux']}")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("references").get_by_role("link", name="Flux")).to_be_visible()
    assert httpx.get(f"{api}/gadgets/{gadget['_id']}", headers=admin).json()["alsoBy"] == \
        [made["Crane"], made["Dynamo"], made["Flux"]]
    assert watch.foreign == [] and watch.errors == []


def test_users_groups_as_links_and_a_picker_of_users_by_login(browser: Browser, live_server: Server,
                                                               tmp_path: Path) -> None:
    """`users.groups` refers to groups: the users list shows each group by its name, linked. A
    picker of users finds a user by login (a user may have no name)."""
    admin = admin_headers(live_server)
    api = f"{live_server.url}/api/v1"
    crew = httpx.post(f"{api}/groups", json={"name": "crew"}, headers=admin).json()["_id"]
    r = httpx.post(f"{api}/users", json={"login": "dana", "password": "password-123", "groups": [crew]},
                   headers=admin)
    assert r.status_code == 201, r.text

    page = browser.new_page(viewport={"width": 1200, "height": 800})
    watch = Watch(page, live_server.url)
    sign_in(page, live_server)
    page.get_by_role("link", name="users", exact=True).click()
    row = page.get_by_role("table", name="users entities").locator(f"tr[data-id='{r.json()['_id']}']")
    expect(row.get_by_role("link", name="crew")).to_have_attribute("href", f"#/s/groups/{crew}")
    shoot(page, "references-users", tmp_path)

    page.get_by_role("navigation", name="stores").get_by_role("link", name="gadgets").click()
    page.get_by_role("button", name="Create").click()
    search = page.get_by_label("pick from users")
    search.focus()
    search.fill("dan")
    expect(page.locator(f"datalist option[value='{r.json()['_id']}']")).to_have_count(1)
    expect(page.locator("datalist option")).to_have_count(1)  # not admin
    assert watch.foreign == [] and watch.errors == []
