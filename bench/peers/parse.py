"""Parse Server (npm `parse-server` 9.x on Node 20), started on a given MongoDB URI.

Set-up, through its REST API: the class `Item` with the bench fields (name String, price Number,
tags Array, listedAt Date), made with the master key, with class-level permissions that require an
authenticated user for every operation; a normal user signed up (no master key from then on) whose
session token the load sends. Every object is created with an ACL of that user alone (Parse's way
of owning an object; its queries for a non-master user always filter on the read permissions).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from peers._base import answers, free_port, npm_install, process, wait_until
from peers.target import LIST_SIZE, Target, fields, iso_ms

APP_ID = "bench"
AUTHENTICATED = {"requiresAuthentication": True}
CLP = {op: AUTHENTICATED for op in ("find", "count", "get", "create", "update", "delete", "addField")}
SCHEMA = {"className": "Item", "classLevelPermissions": CLP,
          "fields": {"name": {"type": "String"}, "price": {"type": "Number"}, "tags": {"type": "Array"},
                     "listedAt": {"type": "Date"}}}


def _setup(base: str, master: str) -> tuple[str, str]:
    """Make the class and a normal user; (the user's objectId, session token)."""
    app = {"X-Parse-Application-Id": APP_ID}
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/parse/schemas/Item", json=SCHEMA, headers={**app, "X-Parse-Master-Key": master})
        r.raise_for_status()
        r = http.post("/parse/users", json={"username": "bench-user", "password": secrets.token_hex(12)},
                      headers={**app, "X-Parse-Revocable-Session": "1"})
        r.raise_for_status()
        return r.json()["objectId"], r.json()["sessionToken"]


@contextlib.contextmanager
def parse_server(mongodb_uri: str, database: str = "bench_parse") -> Iterator[Target]:
    node_modules = npm_install({"parse-server": "9", "express": "5"})
    port, master = free_port(), secrets.token_hex(16)
    db_uri = mongodb_uri.replace("/?", f"/{database}?", 1)
    # Parse writes its logs under ./logs before it reads logsFolder: both go to a folder of their own.
    logs = Path(tempfile.mkdtemp(prefix="bench-parse-logs-"))
    env = {"NODE_PATH": str(node_modules), "PARSE_PORT": str(port), "PARSE_DATABASE_URI": db_uri,
           "PARSE_APP_ID": APP_ID, "PARSE_MASTER_KEY": master, "PARSE_LOGS": str(logs), "NODE_ENV": "production"}
    script = str(Path(__file__).resolve().parent / "apps" / "parse_server.js")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, logs, True)
        proc = cleanup.enter_context(process(["node", script], "parse", env, cwd=logs))
        base = f"http://127.0.0.1:{port}"
        wait_until(answers(base + "/parse/health"), proc, "parse")
        user, token = _setup(base, master)
        acl = {user: {"read": True, "write": True}}

        def body(i: int) -> dict[str, Any]:
            item = fields(i)
            return {**item, "listedAt": {"__type": "Date", "iso": iso_ms(item["listedAt"])}, "ACL": acl}

        yield Target(name="Parse Server", base=base,
                     headers={"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": token},
                     item_prefix="/parse/classes/Item/", list_path=f"/parse/classes/Item?limit={LIST_SIZE}",
                     create_path="/parse/classes/Item", body=body, new_id=lambda answer: str(answer["objectId"]),
                     listed=lambda answer: len(answer["results"]), pids=[proc.pid], stored_in=(database, "Item"),
                     setup="class-level permissions: authenticated; session token of a normal user; "
                           "objects with that user's ACL")
