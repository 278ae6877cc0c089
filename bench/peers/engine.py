"""storeengine itself, as users run it: `storeengine serve` in a process of its own.

Set-up: the bench store's schema file (the bench fields, the default access rules: the owner reads
its own), STORE_SECRET fixed, the bootstrap admin from STORE_ADMIN_PASSWORD, and a normal user
created through the API as that admin (POST /api/v1/users); the load sends that user's bearer token
(POST /api/v1/auth/token). Seeding goes through POST as that user, who therefore owns every entity.
`--log-level warning`: no access log line per request (none of the peers writes one either, except
PocketBase, whose request log is part of its defaults).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from _common import ADMIN_PASSWORD, SECRET, schema_folder, server_process

from peers._base import free_port
from peers.target import LIST_SIZE, Target, fields, iso_ms

STOREENGINE = Path(sys.executable).parent / "storeengine"
SCHEMA = {"type": "object", "required": ["name", "price", "listedAt"],
          "properties": {"name": {"type": "string"}, "price": {"type": "number"},
                         "tags": {"type": "array", "items": {"type": "string"}},
                         "listedAt": {"type": "string", "format": "date-time"}}}


def _user_token(base: str) -> str:
    password = secrets.token_hex(12)
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/api/v1/auth/token", json={"login": "admin", "password": ADMIN_PASSWORD})
        r.raise_for_status()
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        http.post("/api/v1/users", json={"login": "bench-user", "password": password}, headers=admin).raise_for_status()
        r = http.post("/api/v1/auth/token", json={"login": "bench-user", "password": password})
        r.raise_for_status()
        return str(r.json()["token"])


def _own_change(doc: dict[str, Any], i: int) -> None:
    """Each entity carries the change that made it (`_change`), numbered in the store's feed: a copy
    gets a number of its own, as the i-th POST would have (copies sharing the template's number made
    the feed's upkeep read all 3,000 entities every few seconds, a tenth of the server's CPU)."""
    doc["_change"] = {**doc["_change"], "seq": doc["_change"]["seq"] + i}


def _numbers_taken(database: Any, count: int) -> None:
    """The store's counter past the copies' numbers, before they go in (a POST takes its number before
    it writes; entities carrying numbers past the counter make the feed refuse to read; no `$max` on jongodb)."""
    database["_change_seqs"].update_one({"_id": "items", "seq": {"$lt": count}}, {"$set": {"seq": count}})


@contextlib.contextmanager
def storeengine(mongodb_uri: str | None = None, workers: int = 1, database: str = "bench_storeengine",
                name: str = "storeengine", source: Path | None = None) -> Iterator[Target]:
    """`storeengine serve` on the embedded database (mongodb_uri None) or on a MongoDB URI; from the
    source tree `source` when given (put first on PYTHONPATH: a baseline beside this tree)."""
    if mongodb_uri is None and os.environ.get("STORE_MONGODB_URI"):
        raise RuntimeError("STORE_MONGODB_URI is set: the embedded lane needs it unset")
    schemas = schema_folder({"items": json.dumps(SCHEMA)})
    data = tempfile.mkdtemp(prefix="bench-storeengine-data-")
    port = free_port()
    env = {"STORE_SECRET": SECRET, "STORE_ADMIN_PASSWORD": ADMIN_PASSWORD, "STORE_DATA_DIR": data,
           "STORE_DATABASE": database, **({"STORE_MONGODB_URI": mongodb_uri} if mongodb_uri else {}),
           **({"PYTHONPATH": str(source)} if source else {})}
    cmd = [str(STOREENGINE), "serve", "--host", "127.0.0.1", "--port", str(port), "--schemas", str(schemas),
           "--workers", str(workers), "--log-level", "warning"]
    try:
        with server_process(cmd, port, env) as (base, pid):

            def body(i: int) -> dict[str, Any]:
                item = fields(i)
                return {**item, "listedAt": iso_ms(item["listedAt"])}

            database_name = "MongoDB wire" if mongodb_uri else "embedded default"
            yield Target(name=name, base=base, headers={"Authorization": f"Bearer {_user_token(base)}"},
                         item_prefix="/api/v1/items/", list_path=f"/api/v1/items?limit={LIST_SIZE}",
                         create_path="/api/v1/items", body=body, new_id=lambda answer: str(answer["_id"]),
                         listed=len, pids=[pid], stored_in=(database, "items") if mongodb_uri else None,
                         copied=_own_change, before_copies=_numbers_taken,
                         setup=f"storeengine serve --workers {workers} ({database_name}); bearer token of a "
                               "normal user; read rule: owner (the default)")
    finally:
        shutil.rmtree(schemas, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
