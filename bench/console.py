"""The console in headless Chromium: bytes of the first load and the time to render 1,000 rows.

Budgets (issue 11): first load <= 300 KB (Swagger UI is not part of the console), a 1,000-row
page rendered in <= 500 ms. Needs Debian's `chromium` on PATH (never downloads a browser).

    .venv/bin/python bench/console.py
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

ROWS = 1000
PASSWORD = "bench-admin-password"
SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"}, "price": {"type": "number"}, "stock": {"type": "integer"},
    "active": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
    "note": {"type": "string", "maxLength": 200}}}


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "STORE_SECRET": "bench-secret-of-at-least-32-bytes!!", "STORE_ADMIN_PASSWORD": PASSWORD,
           "STORE_ARGON2_TIME_COST": "1", "STORE_ARGON2_MEMORY_KIB": "64",
           "STORE_DATA_DIR": str(folder / "data")}  # the embedded database, removed with the folder
    proc = subprocess.Popen([sys.executable, "-m", "storeengine", "serve", "--port", str(port), "--schemas",
                             str(folder), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def seed(url: str) -> None:
    token = httpx.post(url + "/api/v1/auth/token", json={"login": "admin", "password": PASSWORD}).json()["token"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(ROWS):
            body = {"name": f"item {i}", "price": i / 4, "stock": i, "active": i % 2 == 0, "tags": ["a", f"t{i % 7}"],
                    "note": "some words of text " * 3}
            client.post("/api/v1/items", json=body).raise_for_status()


def first_load(page: Page, url: str) -> tuple[int, int]:
    """Bytes on the wire (headers included) and requests, from `/` until the network is idle."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    sizes: list[float] = []
    cdp.on("Network.loadingFinished", lambda event: sizes.append(event["encodedDataLength"]))
    page.goto(url + "/", wait_until="networkidle")
    return int(sum(sizes)), len(sizes)


def sign_in(page: Page) -> None:
    page.get_by_label("Login").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


RENDER_ONLY = """async (rows) => {
  const { renderRows } = await import("/console/list.js");
  const data = await (await fetch(`/api/v1/items?limit=${rows}`)).json();
  const tbody = document.createElement("tbody");
  document.querySelector("table.grid").append(tbody);
  const columns = ["_id", "name", "price", "stock", "active", "tags", "note", "updatedAt"];
  const start = performance.now();
  renderRows(tbody, "items", columns, data);
  document.body.offsetHeight;  // force style and layout
  await new Promise((done) => requestAnimationFrame(() => done()));
  const spent = performance.now() - start;
  tbody.remove();
  return [spent, tbody.rows.length];
}"""


def page_of_1000(page: Page) -> float:
    """From choosing 1,000 per page to 1,000 rows laid out: fetch, JSON, DOM, layout."""
    page.get_by_role("navigation", name="stores").get_by_role("link", name="items").click()
    page.locator(".pager select").select_option("25")
    page.wait_for_function("document.querySelectorAll('table.grid tbody tr').length === 25")
    page.evaluate("window.__t0 = performance.now()")
    page.locator(".pager select").select_option(str(ROWS))
    page.wait_for_function(f"document.querySelectorAll('table.grid tbody tr').length === {ROWS}")
    spent: float = page.evaluate(
        "new Promise((done) => requestAnimationFrame(() => done(performance.now() - window.__t0)))")
    return spent


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("bench/console.py: no chromium on PATH (apt-get install -y chromium)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="storeengine-bench-"))
    (folder / "items.json").write_text(json.dumps(SCHEMA))
    proc, url = start_server(folder)
    try:
        seed(url)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            size, requests = first_load(page, url)
            sign_in(page)
            results: dict[str, Any] = {"end_to_end": [page_of_1000(page) for _ in range(3)]}
            results["render_only"] = [page.evaluate(RENDER_ONLY, ROWS)[0] for _ in range(5)]
            browser.close()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"first load of /: {size / 1024:.1f} KB in {requests} requests (budget 300 KB; Swagger UI not included)")
    e2e, render = min(results["end_to_end"]), min(results["render_only"])
    print(f"1,000-row page, choosing 1000 per page until laid out (fetch + meta + DOM), best of 3: {e2e:.0f} ms "
          f"(budget 500 ms); all: {', '.join(f'{v:.0f}' for v in results['end_to_end'])}")
    print(f"1,000 rows, DOM building and layout only, best of 5: {render:.0f} ms")
    ok = size <= 300 * 1024 and e2e <= 500
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
