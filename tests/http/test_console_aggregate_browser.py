"""The console's "group by / count" panel (API.md section 14) in headless Chromium: it asks
`GET /:store/_aggregate` with the list's filters and shows the groups as a table; a refused
request shows the server's reason."""

from __future__ import annotations

from collections import defaultdict
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
from tests.conftest import Server

SCHEMA = {"type": "object", "properties": {
    "region": {"enum": ["north", "south", "east"]},
    "amount": {"type": "number"},
    "sold": {"type": "string", "format": "date-time"},
    "note": {"type": "string", "maxLength": 100},
}}
SALES = [
    {"region": "north", "amount": 10, "sold": "2026-01-05T10:00:00Z"},
    {"region": "north", "amount": 2.5, "sold": "2026-02-01T00:00:00Z"},
    {"region": "south", "amount": 7, "sold": "2026-01-31T23:59:00Z"},
    {"region": "east", "amount": 1, "sold": "2026-02-14T12:00:00Z"},
    {"region": "south", "amount": 4, "sold": "2026-02-20T08:00:00Z", "note": "late"},
    {"amount": 3},
]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(schema_folder(tmp_path_factory, "aggregate-browser", {"sales": SCHEMA})) as server:
        admin = admin_headers(server)
        for sale in SALES:
            r = httpx.post(f"{server.url}/api/v1/sales", json=sale, headers=admin)
            assert r.status_code == 201, r.text
        yield server


def shown(page: Page) -> list[list[str]]:
    """The result table's rows, cell texts in order."""
    rows = page.get_by_role("table", name="sales groups").locator("tbody tr")
    return [row.locator("td").all_inner_texts() for row in rows.all()]


def sums_by_region(sales: list[dict[str, object]]) -> list[list[str]]:
    totals: dict[str, list[float]] = defaultdict(list)
    for sale in sales:
        totals[str(sale.get("region", "(none)"))].append(float(sale["amount"]))  # type: ignore[arg-type]
    order = ["(none)", *sorted(k for k in totals if k != "(none)")]  # null groups first, as the API orders
    return [[k, str(len(totals[k])), f"{sum(totals[k]):g}"] for k in order]


def test_group_by_count_and_sum_follow_the_list_filters(browser: Browser, live_server: Server, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    watch = Watch(page, live_server.url)
    sign_in(page, live_server)
    page.get_by_role("navigation", name="stores").get_by_role("link", name="sales").click()
    expect(page.get_by_role("table", name="sales entities").locator("tbody tr")).to_have_count(len(SALES))

    page.get_by_text("Group by / count").click()
    page.get_by_label("group by 1").select_option("region")
    page.get_by_label("compute").select_option("sum")
    expect(page.get_by_label("of field")).to_have_value("amount")  # sum offers numeric fields only
    assert page.get_by_label("of field").locator("option").all_inner_texts() == ["amount"]
    page.get_by_role("button", name="Show groups").click()
    expect(page.get_by_role("table", name="sales groups").locator("tbody tr")).to_have_count(4)
    assert shown(page) == sums_by_region(SALES)
    headers = page.get_by_role("table", name="sales groups").locator("th").all_inner_texts()
    assert headers == ["region", "count", "sum(amount)"]
    shoot(page, "aggregate", tmp_path)

    # Two group fields, a date-time by month, and the list's filter applied to the groups too.
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("filter", exact=True).fill('{"amount": {"$gte": 3}}')
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("table", name="sales entities").locator("tbody tr")).to_have_count(4)
    page.get_by_label("group by 1").select_option("sold:month")
    page.get_by_label("group by 2").select_option("region")
    page.get_by_label("compute").select_option("count")
    expect(page.get_by_label("of field")).to_be_disabled()
    page.get_by_role("button", name="Show groups").click()
    expected = [["(none)", "(none)", "1"], ["2026-01-01T00:00:00.000Z", "north", "1"],
                ["2026-01-01T00:00:00.000Z", "south", "1"], ["2026-02-01T00:00:00.000Z", "south", "1"]]
    expect(page.get_by_role("table", name="sales groups").locator("tbody tr")).to_have_count(len(expected))
    assert shown(page) == expected
    api = httpx.get(f"{live_server.url}/api/v1/sales/_aggregate", headers=admin_headers(live_server),
                    params={"group": "sold:month,region", "count": "true", "filter": '{"amount": {"$gte": 3}}'})
    assert [[g["group"]["sold:month"] or "(none)", g["group"]["region"] or "(none)", str(g["count"])]
            for g in api.json()] == expected

    # A filter the server refuses: the panel says why.
    page.get_by_label("filter", exact=True).fill('{"amount": {"$where": "1"}}')
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("button", name="Show groups").click()
    expect(page.locator(".agg-result").get_by_role("alert")).to_contain_text("$where")
    assert watch.foreign == []
    assert watch.errors == []
